package wsqueue

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

// listenForTest starts a standalone server on a free loopback port; it is shut
// down when the test ends (a second Shutdown is harmless).
func listenForTest(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.ReactorThreads == 0 {
		cfg.ReactorThreads = 2
	}
	s, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// acceptLoop runs fn on every accepted connection until the server closes.
func acceptLoop(s *Server, fn func(c *Conn)) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(c)
			}()
		}
	}()
	return &wg
}

func wsURL(s *Server, path string) string { return "ws://" + s.Addr().String() + path }

func TestListenAcceptEchoWithGorillaAndCoderClients(t *testing.T) {
	s := listenForTest(t, Config{})
	if a, ok := s.Addr().(*net.TCPAddr); !ok || a.Port == 0 || !a.IP.IsLoopback() {
		t.Fatalf("Addr() = %v, want the loopback address with the picked port", s.Addr())
	}
	paths := make(chan string, 2)
	acceptLoop(s, func(c *Conn) {
		paths <- c.Path()
		echoLoop(c)
	})

	g := dial(t, wsURL(s, "/gorilla?x=1"))
	for _, m := range []struct {
		mt   int
		data []byte
	}{{gorilla.TextMessage, []byte("héllo")}, {gorilla.BinaryMessage, bytes.Repeat([]byte{0, 255}, 100000)}, {gorilla.TextMessage, nil}} {
		if err := g.WriteMessage(m.mt, m.data); err != nil {
			t.Fatal(err)
		}
		mt, p, err := g.ReadMessage()
		if err != nil || mt != m.mt || !bytes.Equal(p, m.data) {
			t.Fatalf("gorilla echo: type %d, %d bytes, %v; want type %d, %d bytes", mt, len(p), err, m.mt, len(m.data))
		}
	}
	if p := <-paths; p != "/gorilla?x=1" {
		t.Fatalf("Path() = %q", p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, wsURL(s, "/coder"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, coder.MessageText, []byte("from coder")); err != nil {
		t.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != coder.MessageText || string(p) != "from coder" {
		t.Fatalf("coder echo: %v %q %v", typ, p, err)
	}
	if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
		t.Fatalf("coder close handshake: %v", err)
	}
}

func TestShutdownWithClientsConnectedClosesThemWith1001(t *testing.T) {
	s := listenForTest(t, Config{})
	serverSide := make(chan error, 8)
	accepted := make(chan struct{}, 8)
	wg := acceptLoop(s, func(c *Conn) {
		accepted <- struct{}{}
		_, _, err := c.ReadMessage() // blocks until the shutdown's close
		serverSide <- err
	})
	const clients = 5
	conns := make([]*gorilla.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, wsURL(s, "/"))
		<-accepted
	}
	// The engine completes each client's closing handshake only when the
	// client answers, so the clients read (and answer) while Shutdown waits.
	clientErrs := make(chan error, clients)
	for _, c := range conns {
		go func(c *gorilla.Conn) {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					clientErrs <- err
					c.Close() // the engine reports a close once TCP is closed too
					return
				}
			}
		}(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i := 0; i < clients; i++ {
		if err := <-clientErrs; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
			t.Fatalf("client %d: %v, want close 1001", i, err)
		}
	}
	wg.Wait()
	for i := 0; i < clients; i++ {
		if err := <-serverSide; !IsCloseError(err, CloseGoingAway) {
			t.Fatalf("server-side reader %d: %v, want close 1001", i, err)
		}
	}
}

func TestAcceptAfterShutdownReturnsErrServerClosed(t *testing.T) {
	s := listenForTest(t, Config{})
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Accept()
		blocked <- err
	}()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("blocked Accept: %v, want ErrServerClosed", err)
	}
	if _, err := s.Accept(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Accept after Shutdown: %v", err)
	}
	if err := s.Shutdown(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("second Shutdown: %v, want ErrServerClosed", err)
	}
	// The port is released: a client is refused at the TCP level.
	if _, _, err := gorilla.DefaultDialer.Dial(wsURL(s, "/"), nil); err == nil {
		t.Fatal("dial after Shutdown succeeded")
	}
}

func TestConnectionNeverAcceptedIsClosedByShutdown(t *testing.T) {
	s := listenForTest(t, Config{})
	c := dial(t, wsURL(s, "/"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		done <- err
		c.Close()
	}()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("client of a never-accepted connection: %v, want close 1001", err)
	}
}

func TestListenBadAddressesReturnErrors(t *testing.T) {
	for _, addr := range []string{"", "not an address", "256.1.1.1:80", "127.0.0.1:99999"} {
		if s, err := Listen(addr, Config{}); err == nil {
			s.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	s := listenForTest(t, Config{})
	if s2, err := Listen(s.Addr().String(), Config{}); err == nil {
		s2.Close()
		t.Error("Listen on a port in use succeeded")
	}
	if _, err := ListenHandler("127.0.0.1:0", Config{}, nil); err == nil {
		t.Error("ListenHandler with a nil Handler succeeded")
	}
}

func TestListenNegotiatesSubprotocolAndChecksOrigin(t *testing.T) {
	s := listenForTest(t, Config{Subprotocols: "chat,superchat", AllowedOrigins: "http://good.example"})
	got := make(chan string, 1)
	acceptLoop(s, func(c *Conn) {
		got <- c.Subprotocol()
		echoLoop(c)
	})
	d := gorilla.Dialer{Subprotocols: []string{"superchat", "other"}}
	c, _, err := d.Dial(wsURL(s, "/"), http.Header{"Origin": {"http://good.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "superchat" || <-got != "superchat" {
		t.Fatalf("subprotocol: client %q", c.Subprotocol())
	}
	_, resp, err := gorilla.DefaultDialer.Dial(wsURL(s, "/"), http.Header{"Origin": {"http://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v, want HTTP 403", err, resp)
	}
}

func TestListenAppliesHeadLimitsAndRefusesBadSettings(t *testing.T) {
	s := listenForTest(t, Config{MaxHeadBytes: 1024})
	acceptLoop(s, echoLoop)
	big := http.Header{"X-Padding": {strings.Repeat("p", 2000)}}
	_, resp, err := gorilla.DefaultDialer.Dial(wsURL(s, "/"), big)
	if err == nil || resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("2 KB head against MaxHeadBytes 1024: %v %v, want HTTP 431", err, resp)
	}
	dial(t, wsURL(s, "/")) // a normal head still passes
	for _, cfg := range []Config{{DeflateWindowBits: 20}, {DeflateLevel: 10}, {SendQueueSoftLimit: 2 << 20, SendQueueHardLimit: 1 << 20}} {
		s2, err := Listen("127.0.0.1:0", cfg)
		if err == nil {
			s2.Close()
			t.Errorf("Listen with %+v succeeded", cfg)
			continue
		}
		// The engine's detail names the kind itself; the message says it once.
		if n := strings.Count(err.Error(), "invalid argument"); n != 1 {
			t.Errorf("%q names the kind %d times", err, n)
		}
	}
}
