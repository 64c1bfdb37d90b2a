package wsqueue

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// Leak checks: after a server's Shutdown, or once every connection of the
// Upgrade engine is closed, the process is back to the goroutines and file
// descriptors it had before (the engine's threads, sockets, epoll and event
// descriptors included).

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(entries)
}

// expectBackTo waits for goroutines and descriptors to fall back to the
// baseline: peers and goroutines finish their last steps concurrently, so the
// check waits for the condition (up to a generous bound) instead of sampling
// once. It fails with the goroutine dump when they do not.
func expectBackTo(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines && f <= fds {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("leak: %d goroutines (baseline %d), %d descriptors (baseline %d)\n%s", g, goroutines, f, fds, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exercise opens n gorilla clients to url, echoes a few messages on each and
// returns them open.
func exercise(t *testing.T, url string, n int) []*gorilla.Conn {
	t.Helper()
	conns := make([]*gorilla.Conn, n)
	for i := range conns {
		c, _, err := gorilla.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pipelinedEcho(c, 3); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns
}

// closeClients reads each client's close from the server (answering it), then
// closes the socket.
func closeClients(conns []*gorilla.Conn) {
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		c.Close()
	}
}

func TestNoLeakAfterShutdownOfAcceptServer(t *testing.T) {
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	s, err := Listen("127.0.0.1:0", Config{ReactorThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	wg := acceptLoop(s, echoLoop)
	conns := exercise(t, wsURL(s, "/"), 30)
	done := make(chan struct{})
	go func() {
		closeClients(conns)
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	<-done
	expectBackTo(t, goroutines, fds)
}

func TestNoLeakAfterShutdownOfHandlerServer(t *testing.T) {
	t.Run("workers", func(t *testing.T) { noLeakAfterShutdownOfHandlerServer(t, 4) })
	t.Run("on the dispatcher", func(t *testing.T) { noLeakAfterShutdownOfHandlerServer(t, -1) })
}

func noLeakAfterShutdownOfHandlerServer(t *testing.T, workers int) {
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	s, err := ListenHandler("127.0.0.1:0", Config{ReactorThreads: 2, HandlerWorkers: workers}, newEchoHandler())
	if err != nil {
		t.Fatal(err)
	}
	conns := exercise(t, wsURL(s, "/"), 30)
	done := make(chan struct{})
	go func() {
		closeClients(conns)
		close(done)
	}()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	expectBackTo(t, goroutines, fds)
}

func TestNoLeakAfterUpgradedConnectionsClose(t *testing.T) {
	var u Upgrader
	mux := http.NewServeMux()
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		if c, err := u.Upgrade(w, r, nil); err == nil {
			echoLoop(c)
		}
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		u.UpgradeHandler(w, r, nil, newEchoHandler())
	})
	url := serveHandler(t, mux)
	// The Upgrade engine and the handler pool live as long as the process:
	// start them before the baseline.
	closeAll := func(conns []*gorilla.Conn) {
		for _, c := range conns {
			c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""))
		}
		closeClients(conns)
	}
	closeAll(exercise(t, url+"/loop", 1))
	closeAll(exercise(t, url+"/events", 1))
	time.Sleep(100 * time.Millisecond) // let the warm-up's goroutines end before the baseline
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	closeAll(append(exercise(t, url+"/loop", 30), exercise(t, url+"/events", 30)...))
	expectBackTo(t, goroutines, fds)
}
