// Echo server on lxzan/gws, a peer for bench/go/run.sh: gws's event handlers
// (OnMessage writes the message back) with its own upgrader over net/http and
// one ReadLoop goroutine per connection, as its README's server does.
//
//	gws-echo [PORT=0]   prints "listening on 127.0.0.1:PORT"
//
// Thread count: set GOMAXPROCS.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/lxzan/gws"
)

type echo struct{ gws.BuiltinEventHandler }

func (echo) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.WriteMessage(m.Opcode, m.Bytes())
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	upgrader := gws.NewUpgrader(echo{}, &gws.ServerOption{})
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})))
}
