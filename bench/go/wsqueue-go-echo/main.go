// Echo server on the wsqueue Go binding: gorilla-echo's code with the import changed.
//
//	wsqueue-go-echo [PORT=0]   prints "listening on 127.0.0.1:PORT"
//
// The package's own echo example: net/http serves the upgrade, then one goroutine per
// connection reads a message and writes it back. Thread count: set GOMAXPROCS.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	websocket "wsqueue"
)

// Default settings: the load generator sends no Origin, which the default check allows.
var upgrader = websocket.Upgrader{}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, http.HandlerFunc(echo)))
}
