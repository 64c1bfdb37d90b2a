// Command echo sends every WebSocket message back to its sender, unchanged (text
// as text, binary as binary): the Go twin of examples/c/echo_server.c, with the
// same contract, run in the binding's event style (a Handler, no goroutine per
// connection). The callbacks run on the binding's dispatcher itself
// (HandlerWorkers -1), inside the engine's poll batch, so the echoes of a batch
// are corked and written once per connection, as in the C example;
// WSQUEUE_ECHO_WORKERS=N runs them on a pool of N goroutines instead (0: the
// default size), for comparison.
//
//	echo [port=9002] [static_dir]
//
// It listens on 127.0.0.1 (port 0 picks a free port), prints
// "listening on 127.0.0.1:PORT" once ready, and runs until SIGINT or SIGTERM,
// then shuts down gracefully (close 1001 to every client) and exits 0. Messages
// may be up to 64 MiB; up to 19,000 clients at once (the open-file limit is
// raised to its hard limit for them).
//
// Backpressure, as in the C example: the engine buffers every echo. Over the
// soft limit (three maximal messages) the engine stops reading that client until
// its echoes drain to the low-water mark (on a worker pool the echo also waits);
// past the hard limit the client has stopped reading for good and is closed
// with 1008 (SlowConsumerClose), so no echo is ever lost in silence.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"wsqueue"
)

const (
	defaultPort      = 9002
	mib              = 1 << 20
	maxMessageSize   = 64 * mib
	softLimit        = 3 * maxMessageSize
	hardLimit        = softLimit + 4*maxMessageSize
	maxBufferedBytes = 1024 * mib
	maxConnections   = 19000
	stopTimeout      = 2 * time.Second // for clients to answer our close, as in C
)

// echo is the Handler: each message goes back as it came.
type echo struct{}

func (echo) OnOpen(*wsqueue.Conn) {}

func (echo) OnMessage(c *wsqueue.Conn, messageType int, data []byte) {
	if err := c.WriteMessage(messageType, data); err != nil && !errors.Is(err, wsqueue.ErrCloseSent) {
		fmt.Fprintf(os.Stderr, "echo: %v: echo of %d bytes: %v\n", c.RemoteAddr(), len(data), err)
	}
}

func (echo) OnClose(*wsqueue.Conn, error) {}

func parseArgs(args []string) (port int, staticDir string, ok bool) {
	port = defaultPort
	if len(args) > 2 {
		return 0, "", false
	}
	if len(args) == 2 {
		staticDir = args[1]
	}
	if len(args) >= 1 {
		p, err := strconv.Atoi(args[0])
		if err != nil || p < 0 || p > 65535 {
			return 0, "", false
		}
		port = p
	}
	return port, staticDir, true
}

// raiseFileLimit lifts the open-file limit to its hard limit, one descriptor
// per client.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func main() {
	port, staticDir, ok := parseArgs(os.Args[1:])
	if !ok {
		fmt.Fprintf(os.Stderr, "usage: %s [port=%d] [static_dir]\n", os.Args[0], defaultPort)
		os.Exit(2)
	}
	workers := -1
	if v := os.Getenv("WSQUEUE_ECHO_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "echo: WSQUEUE_ECHO_WORKERS=%q: want a number of goroutines (0: default)\n", v)
			os.Exit(2)
		}
		workers = n
	}
	raiseFileLimit()
	// Signals are caught before the "listening" line, so a stop right after
	// it is a clean one.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	srv, err := wsqueue.ListenHandler(fmt.Sprintf("127.0.0.1:%d", port), wsqueue.Config{
		MaxConnections:     maxConnections,
		MaxMessageSize:     maxMessageSize,
		SendQueueSoftLimit: softLimit,
		SendQueueLowWater:  softLimit / 2,
		SendQueueHardLimit: hardLimit,
		SlowConsumerClose:  true,
		MaxBufferedBytes:   maxBufferedBytes,
		// Received messages wait for the handler in Go: room for what a client
		// may send before the engine stops reading it (the soft limit) and more.
		MaxQueuedReadBytes: hardLimit,
		StaticDir:          staticDir,
		HandlerWorkers:     workers,
	}, echo{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo: listen on 127.0.0.1:%d: %v\n", port, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", srv.Addr())

	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "echo: shutdown: %v\n", err)
		os.Exit(1)
	}
}
