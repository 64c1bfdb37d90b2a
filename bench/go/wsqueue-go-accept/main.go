// Echo server on the wsqueue Go binding in gorilla's goroutine-per-connection
// style, without net/http: the engine's own listener (Listen) hands out
// connections with Accept, and a goroutine per connection reads a message and
// writes it back (gorilla's echo loop, unchanged).
//
//	wsqueue-go-accept [PORT=0]   prints "listening on 127.0.0.1:PORT"
//
// Thread count: set GOMAXPROCS.
package main

import (
	"fmt"
	"log"
	"os"

	websocket "wsqueue"
)

func echo(c *websocket.Conn) {
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
	srv, err := websocket.Listen("127.0.0.1:"+port, websocket.Config{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", srv.Addr())
	for {
		c, err := srv.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go echo(c)
	}
}
