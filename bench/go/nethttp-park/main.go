// The floor of the goroutine-per-connection style over net/http, for
// bench/idle/run.sh: a handler that hijacks the connection, answers the
// WebSocket handshake (RFC 6455 §4.2.2) and then parks its goroutine for the
// connection's life, holding nothing of its own. No WebSocket library is
// involved; what an idle connection costs here is net/http's per-connection
// state, the handler goroutine's stack and the hijacked socket, which every
// library that upgrades through net/http pays as well. The hijacked buffers are
// dropped as the wsqueue binding's Upgrade drops them.
//
//	nethttp-park [PORT=0]   prints "listening on 127.0.0.1:PORT"
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

var forever = make(chan struct{})

func park(w http.ResponseWriter, r *http.Request) {
	nc, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	*brw.Reader = *bufio.NewReaderSize(nc, 16)
	*brw.Writer = *bufio.NewWriterSize(nc, 1)
	sum := sha1.Sum([]byte(r.Header.Get("Sec-Websocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if _, err := nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")); err != nil {
		nc.Close()
		return
	}
	<-forever
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
	log.Fatal(http.Serve(ln, http.HandlerFunc(park)))
}
