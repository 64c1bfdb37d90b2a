package wsqueue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

// echoHandler echoes every message and records the callbacks it saw, checking
// that the calls for one connection never overlap.
type echoHandler struct {
	opens, closes atomic.Int64
	overlaps      atomic.Int64
	pings         atomic.Int64
	busy          sync.Map // *Conn -> *atomic.Bool
	mu            sync.Mutex
	closeErrs     []error
	closed        chan struct{} // a token per OnClose
}

func newEchoHandler() *echoHandler { return &echoHandler{closed: make(chan struct{}, 1024)} }

func (h *echoHandler) enter(c *Conn) func() {
	v, _ := h.busy.LoadOrStore(c, new(atomic.Bool))
	b := v.(*atomic.Bool)
	if !b.CompareAndSwap(false, true) {
		h.overlaps.Add(1)
	}
	return func() { b.Store(false) }
}

func (h *echoHandler) OnOpen(c *Conn) {
	defer h.enter(c)()
	h.opens.Add(1)
}

func (h *echoHandler) OnMessage(c *Conn, mt int, data []byte) {
	defer h.enter(c)()
	c.WriteMessage(mt, data)
}

func (h *echoHandler) OnClose(c *Conn, err error) {
	defer h.enter(c)()
	h.closes.Add(1)
	h.mu.Lock()
	h.closeErrs = append(h.closeErrs, err)
	h.mu.Unlock()
	h.closed <- struct{}{}
}

func (h *echoHandler) OnPing(c *Conn, data []byte) {
	defer h.enter(c)()
	h.pings.Add(1)
	c.WriteMessage(TextMessage, append([]byte("saw ping "), data...))
}

func (h *echoHandler) OnPong(c *Conn, data []byte) {}

func (h *echoHandler) waitCloses(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-h.closed:
		case <-time.After(20 * time.Second):
			t.Fatalf("OnClose called %d times, want %d", i, n)
		}
	}
}

func listenHandlerForTest(t *testing.T, h Handler, workers int) *Server {
	t.Helper()
	s, err := ListenHandler("127.0.0.1:0", Config{ReactorThreads: 2, HandlerWorkers: workers}, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pipelinedEcho sends n numbered messages without waiting, then checks that
// the echoes come back complete and in order.
func pipelinedEcho(c *gorilla.Conn, n int) error {
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := c.WriteMessage(gorilla.TextMessage, []byte(strconv.Itoa(i))); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < n; i++ {
		_, p, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d echoes: %v", i, err)
		}
		if string(p) != strconv.Itoa(i) {
			return fmt.Errorf("echo %d is %q: out of order", i, p)
		}
	}
	return <-errc
}

func TestHandlerEchoesInOrderOnManyConnections(t *testing.T) {
	t.Run("workers", func(t *testing.T) { handlerEchoesInOrder(t, 4) })
	t.Run("on the dispatcher", func(t *testing.T) { handlerEchoesInOrder(t, -1) })
}

func handlerEchoesInOrder(t *testing.T, workers int) {
	h := newEchoHandler()
	s := listenHandlerForTest(t, h, workers)
	if _, err := s.Accept(); err == nil {
		t.Fatal("Accept on a Handler server succeeded")
	}
	const clients, each = 40, 300
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := gorilla.DefaultDialer.Dial(wsURL(s, "/"), nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := pipelinedEcho(c, each); err != nil {
				errs <- err
				return
			}
			c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(4000+i, "bye"))
			_, _, err = c.ReadMessage()
			if !gorilla.IsCloseError(err, 4000+i) {
				errs <- fmt.Errorf("client %d close: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.waitCloses(t, clients)
	if h.opens.Load() != clients || h.closes.Load() != clients {
		t.Fatalf("OnOpen %d, OnClose %d; want %d each", h.opens.Load(), h.closes.Load(), clients)
	}
	if n := h.overlaps.Load(); n != 0 {
		t.Fatalf("%d callbacks of one connection overlapped", n)
	}
	seen := map[int]bool{}
	for _, err := range h.closeErrs {
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Text != "bye" {
			t.Fatalf("OnClose error %v, want the client's close", err)
		}
		seen[ce.Code] = true
	}
	if len(seen) != clients {
		t.Fatalf("%d distinct close codes, want %d", len(seen), clients)
	}
}

func TestHandlerNeedsNoGoroutinePerConnection(t *testing.T) {
	h := newEchoHandler()
	const workers = 3
	s := listenHandlerForTest(t, h, workers)
	before := runtime.NumGoroutine()
	const clients = 200
	conns := make([]*gorilla.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, wsURL(s, "/"))
		if err := pipelinedEcho(conns[i], 1); err != nil {
			t.Fatal(err)
		}
	}
	// gorilla's client runs no goroutine of its own, so any growth is ours.
	if grown := runtime.NumGoroutine() - before; grown > 2 {
		t.Fatalf("%d goroutines more with %d connections open", grown, clients)
	}
}

func TestHandlerGetsPingsAndCanCloseTheConnection(t *testing.T) {
	h := &closingHandler{echoHandler: newEchoHandler()}
	s := listenHandlerForTest(t, h, 2)
	c := dial(t, wsURL(s, "/"))
	if err := c.WriteControl(gorilla.PingMessage, []byte("hi"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, p, err := c.ReadMessage()
	if err != nil || string(p) != "saw ping hi" {
		t.Fatalf("after a ping: %q %v", p, err)
	}
	c.WriteMessage(gorilla.TextMessage, []byte("close me"))
	_, _, err = c.ReadMessage()
	if !gorilla.IsCloseError(err, 4321) {
		t.Fatalf("client: %v, want close 4321 from the handler", err)
	}
	c.Close()
	h.waitCloses(t, 1)
	if !IsCloseError(h.closeErrs[0], 4321) {
		t.Fatalf("OnClose: %v, want the handler's 4321 completed by the client", h.closeErrs[0])
	}
}

// closingHandler closes the connection with 4321 when told to.
type closingHandler struct{ *echoHandler }

func (h *closingHandler) OnMessage(c *Conn, mt int, data []byte) {
	if string(data) == "close me" {
		c.WriteControl(CloseMessage, FormatCloseMessage(4321, "as asked"), time.Time{})
		return
	}
	h.echoHandler.OnMessage(c, mt, data)
}

func TestHandlerShutdownClosesEveryConnectionWith1001(t *testing.T) {
	t.Run("workers", func(t *testing.T) { handlerShutdownCloses(t, 0) })
	t.Run("on the dispatcher", func(t *testing.T) { handlerShutdownCloses(t, -1) })
}

func handlerShutdownCloses(t *testing.T, workers int) {
	h := newEchoHandler()
	s, err := ListenHandler("127.0.0.1:0", Config{ReactorThreads: 2, HandlerWorkers: workers}, h)
	if err != nil {
		t.Fatal(err)
	}
	const clients = 10
	clientErrs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		c := dial(t, wsURL(s, "/"))
		if err := pipelinedEcho(c, 5); err != nil {
			t.Fatal(err)
		}
		go func() {
			_, _, err := c.ReadMessage()
			clientErrs <- err
			c.Close()
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returns after the last OnClose.
	if h.closes.Load() != clients {
		t.Fatalf("OnClose called %d times before Shutdown returned, want %d", h.closes.Load(), clients)
	}
	for _, err := range h.closeErrs {
		if !IsCloseError(err, CloseGoingAway) {
			t.Fatalf("OnClose: %v, want 1001", err)
		}
	}
	for i := 0; i < clients; i++ {
		if err := <-clientErrs; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
			t.Fatalf("client: %v, want 1001", err)
		}
	}
}

func TestUpgradeHandlerWithCoderAndGorillaClients(t *testing.T) {
	h := newEchoHandler()
	var u Upgrader
	url := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.UpgradeHandler(w, r, nil, h)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := coder.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := 0; i < 100; i++ {
		want := fmt.Sprintf("coder %d", i)
		if err := c.Write(ctx, coder.MessageText, []byte(want)); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != want {
			t.Fatalf("coder echo %d: %q %v", i, p, err)
		}
	}
	if err := c.Close(coder.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("coder close handshake: %v", err)
	}
	g := dial(t, url)
	if err := pipelinedEcho(g, 500); err != nil {
		t.Fatal(err)
	}
	g.Close() // dropped without a close frame
	h.waitCloses(t, 2)
	// The two closes may be reported in either order: coder's Close returns once the
	// close frames are exchanged, and its connection's Close event comes at its TCP EOF.
	normal, abnormal := 0, 0
	for _, err := range h.closeErrs {
		if IsCloseError(err, CloseNormalClosure) {
			normal++
		}
		if IsCloseError(err, CloseAbnormalClosure) {
			abnormal++
		}
	}
	if normal != 1 || abnormal != 1 {
		t.Fatalf("OnClose errors %v, want one 1000 (coder) and one 1006 (gorilla dropped)", h.closeErrs)
	}
	// A connection run by a Handler cannot also be read.
	conns := make(chan *Conn, 1)
	url2 := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.UpgradeHandler(w, r, nil, &grabHandler{echoHandler: newEchoHandler(), conns: conns})
	}))
	dial(t, url2)
	if _, _, err := (<-conns).ReadMessage(); err == nil {
		t.Fatal("ReadMessage on a Handler's connection succeeded")
	}
}

type grabHandler struct {
	*echoHandler
	conns chan *Conn
}

func (h *grabHandler) OnOpen(c *Conn) { h.conns <- c }

func TestUpgradeHandlerRefusesBadRequestsLikeUpgrade(t *testing.T) {
	errc := make(chan error, 1)
	u := Upgrader{CheckOrigin: func(*http.Request) bool { return false }}
	url := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errc <- u.UpgradeHandler(w, r, nil, newEchoHandler())
	}))
	_, resp, err := gorilla.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v %v, want 403", err, resp)
	}
	if err := <-errc; err == nil {
		t.Fatal("UpgradeHandler returned no error for a refused origin")
	}
}

// flooder sends to every connection it opens until told to stop, from its
// OnMessage, and records what the writes returned.
type flooder struct {
	*echoHandler
	results chan error
}

func (f *flooder) OnMessage(c *Conn, mt int, data []byte) {
	msg := make([]byte, 64<<10)
	for i := 0; i < 2000; i++ { // 128 MiB, over the 64 MiB hard limit
		if err := c.WriteMessage(BinaryMessage, msg); err != nil {
			f.results <- err
			return
		}
	}
	f.results <- nil
}

func TestHandlerOnTheDispatcherNeverWaitsForADrain(t *testing.T) {
	f := &flooder{echoHandler: newEchoHandler(), results: make(chan error, 1)}
	s := listenHandlerForTest(t, f, -1)
	c := dial(t, wsURL(s, "/"))
	c.WriteMessage(gorilla.TextMessage, []byte("go")) // and never read
	select {
	case err := <-f.results:
		// The client reads nothing: the engine's queue reaches its hard limit
		// and the write says so instead of waiting on the dispatcher.
		if !errors.Is(err, ErrWriteQueueFull) {
			t.Fatalf("flood to a client that does not read: %v, want ErrWriteQueueFull", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write on the dispatcher blocked")
	}
	// The dispatcher still serves the other connections.
	other := dial(t, wsURL(s, "/"))
	other.WriteControl(gorilla.PingMessage, []byte("x"), time.Time{})
	other.SetReadDeadline(time.Now().Add(10 * time.Second))
	other.SetPongHandler(func(string) error { return errors.New("pong") })
	if _, _, err := other.ReadMessage(); err == nil || err.Error() != "pong" {
		t.Fatalf("second connection: %v, want its pong", err)
	}
}
