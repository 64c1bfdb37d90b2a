package wsqueue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

func TestEchoWithCoderClient(t *testing.T) {
	url := serve(t, &Upgrader{}, echoLoop)
	ctx := context.Background()
	c, _, err := coder.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	for i, want := range [][]byte{[]byte("héllo"), bytes.Repeat([]byte{7}, 70000), {}} {
		typ := coder.MessageText
		if i == 1 {
			typ = coder.MessageBinary
		}
		if err := c.Write(ctx, typ, want); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gotTyp != typ || !bytes.Equal(got, want) {
			t.Fatalf("message %d: got type %v len %d, want type %v len %d", i, gotTyp, len(got), typ, len(want))
		}
	}
	if err := c.Close(coder.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

func TestLargeMessageEchoesExactly(t *testing.T) {
	url := serve(t, &Upgrader{}, echoLoop)
	c := dial(t, url)
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	if err := c.WriteMessage(gorilla.BinaryMessage, want); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("8 MiB echo differs (got %d bytes)", len(got))
	}
}

func TestConcurrentWritersNeverInterleave(t *testing.T) {
	const writers, each = 8, 200
	url := serve(t, &Upgrader{}, func(c *Conn) {
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					msg := fmt.Sprintf("%d:%d:%s", w, i, strings.Repeat("x", 1000*(i%5)))
					if err := c.WriteMessage(TextMessage, []byte(msg)); err != nil {
						return
					}
				}
			}(w)
		}
		wg.Wait()
		c.ReadMessage() // until the client closes
		c.Close()
	})
	c := dial(t, url)
	next := make([]int, writers)
	for n := 0; n < writers*each; n++ {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		var w, i int
		var pad string
		if _, err := fmt.Sscanf(string(p), "%d:%d:%s", &w, &i, &pad); err != nil && !strings.HasSuffix(string(p), ":") {
			t.Fatalf("garbled message %q", p[:min(len(p), 40)])
		}
		if w < 0 || w >= writers || i != next[w] {
			t.Fatalf("writer %d: got message %d, want %d", w, i, next[w])
		}
		if len(pad) != 1000*(i%5) {
			t.Fatalf("writer %d message %d: padding %d bytes", w, i, len(pad))
		}
		next[w]++
	}
}

func TestPeerCloseCodeReachesReaderAndCloseHandler(t *testing.T) {
	type result struct {
		err           error
		code          int
		text          string
		handlerCalled bool
	}
	got := make(chan result, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		var r result
		c.SetCloseHandler(func(code int, text string) error {
			r.handlerCalled, r.code, r.text = true, code, text
			return nil
		})
		_, _, r.err = c.ReadMessage()
		c.Close()
		got <- r
	})
	c := dial(t, url)
	if err := c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(4001, "bye")); err != nil {
		t.Fatal(err)
	}
	// The engine answered the close: the client sees the echo, and closes TCP
	// (the engine waits for that before it reports the connection gone).
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, 4001) {
		t.Fatalf("client: %v, want the close echoed", err)
	}
	c.Close()
	r := <-got
	var ce *CloseError
	if !errors.As(r.err, &ce) || ce.Code != 4001 || ce.Text != "bye" {
		t.Fatalf("read error %v, want close 4001 bye", r.err)
	}
	if !r.handlerCalled || r.code != 4001 || r.text != "bye" {
		t.Fatalf("close handler: called %v with %d %q", r.handlerCalled, r.code, r.text)
	}
	if !IsCloseError(r.err, 4001) || IsUnexpectedCloseError(r.err, 4001) || !IsUnexpectedCloseError(r.err, 1000) {
		t.Fatal("IsCloseError / IsUnexpectedCloseError disagree with the code")
	}
}

func TestServerCloseCodeReachesClient(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		if err := c.WriteMessage(CloseMessage, FormatCloseMessage(4002, "server says bye")); err != nil {
			serverErr <- err
			return
		}
		if err := c.WriteMessage(TextMessage, []byte("late")); !errors.Is(err, ErrCloseSent) {
			serverErr <- fmt.Errorf("write after close: %v, want ErrCloseSent", err)
			return
		}
		_, _, err := c.ReadMessage()
		c.Close()
		serverErr <- err
	})
	c := dial(t, url)
	_, _, err := c.ReadMessage()
	var ce *gorilla.CloseError
	if !errors.As(err, &ce) || ce.Code != 4002 || ce.Text != "server says bye" {
		t.Fatalf("client read: %v, want close 4002", err)
	}
	c.Close()
	if err := <-serverErr; !IsCloseError(err, 4002) {
		t.Fatalf("server read after close: %v, want the close 4002 echoed", err)
	}
}

func TestReadLimitClosesWith1009(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		c.SetReadLimit(10)
		_, p, err := c.ReadMessage()
		if err == nil && string(p) != "0123456789" {
			err = fmt.Errorf("first message %q", p)
		}
		if err == nil {
			_, _, err = c.ReadMessage()
		}
		c.Close()
		serverErr <- err
	})
	c := dial(t, url)
	c.WriteMessage(gorilla.TextMessage, []byte("0123456789"))
	c.WriteMessage(gorilla.TextMessage, []byte("0123456789a"))
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseMessageTooBig) {
		t.Fatalf("client: %v, want close 1009", err)
	}
	if err := <-serverErr; !errors.Is(err, ErrReadLimit) {
		t.Fatalf("server: %v, want ErrReadLimit", err)
	}
}

func TestReadDeadlineTimesOutAndStays(t *testing.T) {
	serverErr := make(chan error, 2)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, _, err := c.ReadMessage()
		serverErr <- err
		_, _, err = c.ReadMessage()
		serverErr <- err
	})
	c := dial(t, url)
	_ = c
	for i := 0; i < 2; i++ {
		err := <-serverErr
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read %d: %v, want a timeout", i, err)
		}
	}
}

func TestWriteBlocksOnBackpressureUntilDeadline(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		msg := make([]byte, 64<<10)
		for i := 0; i < 20000; i++ {
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				serverErr <- err
				return
			}
		}
		serverErr <- errors.New("1.3 GB accepted without backpressure")
	})
	c := dial(t, url) // never reads
	_ = c
	err := <-serverErr
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write: %v, want a timeout while over the soft limit", err)
	}
}

func TestWriterResumesAfterDrain(t *testing.T) {
	const n = 400
	done := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		msg := make([]byte, 32<<10)
		for i := 0; i < n; i++ {
			msg[0] = byte(i)
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
		c.ReadMessage()
		c.Close()
	})
	c := dial(t, url)
	for i := 0; i < n; i++ {
		_, p, err := c.ReadMessage()
		if err != nil || len(p) != 32<<10 || p[0] != byte(i) {
			t.Fatalf("message %d: len %d err %v", i, len(p), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

func TestPingPongHandlers(t *testing.T) {
	pings := make(chan string, 1)
	pongs := make(chan string, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		c.SetPingHandler(func(s string) error { pings <- s; return nil })
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		if err := c.WriteControl(PingMessage, []byte("from server"), time.Now().Add(time.Second)); err != nil {
			pongs <- "WriteControl: " + err.Error()
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	c := dial(t, url)
	clientPong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { clientPong <- s; return nil })
	if err := c.WriteControl(gorilla.PingMessage, []byte("from client"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	if s := <-pings; s != "from client" {
		t.Fatalf("server ping handler got %q", s)
	}
	if s := <-clientPong; s != "from client" {
		t.Fatalf("client pong handler got %q (the engine answers pings)", s)
	}
	if s := <-pongs; s != "from server" {
		t.Fatalf("server pong handler got %q", s)
	}
}

func TestPreparedMessageToManyConnections(t *testing.T) {
	pm, err := NewPreparedMessage(TextMessage, []byte("prepared"))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		if err := c.WritePreparedMessage(pm); err != nil {
			return
		}
		c.ReadMessage()
	})
	for i := 0; i < 3; i++ {
		c := dial(t, url)
		mt, p, err := c.ReadMessage()
		if err != nil || mt != gorilla.TextMessage || string(p) != "prepared" {
			t.Fatalf("conn %d: %d %q %v", i, mt, p, err)
		}
	}
}

func TestBadInputReturnsErrors(t *testing.T) {
	if _, err := NewPreparedMessage(42, nil); err == nil {
		t.Error("NewPreparedMessage(42) accepted")
	}
	if _, err := NewPreparedMessage(TextMessage, []byte{0xff}); err == nil {
		t.Error("NewPreparedMessage with invalid UTF-8 accepted")
	}
	errs := make(chan []error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		var out []error
		out = append(out, c.WriteMessage(42, []byte("x")))
		out = append(out, c.WriteMessage(TextMessage, []byte{0xff, 0xfe}))
		out = append(out, c.WriteControl(PingMessage, make([]byte, 126), time.Time{}))
		out = append(out, c.WriteControl(CloseMessage, []byte{3}, time.Time{}))
		out = append(out, c.WriteControl(CloseMessage, []byte{0x03, 0xED, 'x'}, time.Time{}))
		out = append(out, c.WriteControl(CloseMessage, FormatCloseMessage(999, ""), time.Time{}))
		out = append(out, c.WritePreparedMessage(nil))
		_, werr := c.NextWriter(CloseMessage)
		out = append(out, werr)
		errs <- out
		// Still usable after all that:
		c.WriteMessage(TextMessage, []byte("still open"))
		c.ReadMessage()
	})
	c := dial(t, url)
	for i, err := range <-errs {
		if err == nil {
			t.Errorf("bad call %d returned nil", i)
		}
	}
	_, p, err := c.ReadMessage()
	if err != nil || string(p) != "still open" {
		t.Fatalf("after bad calls: %q %v", p, err)
	}
}

func TestOperationsAfterCloseReturnErrors(t *testing.T) {
	errs := make(chan []error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		var out []error
		out = append(out, c.Close())
		_, _, err := c.ReadMessage()
		out = append(out, err)
		out = append(out, c.WriteMessage(TextMessage, []byte("x")))
		_, err = c.NextWriter(TextMessage)
		out = append(out, err)
		out = append(out, c.WriteControl(PingMessage, nil, time.Time{}))
		out = append(out, c.Close())
		errs <- out
	})
	c := dial(t, url)
	out := <-errs
	if out[0] != nil {
		t.Fatalf("first Close: %v", out[0])
	}
	for i, err := range out[1:] {
		if err == nil {
			t.Errorf("call %d after Close returned nil", i+1)
		}
	}
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Fatalf("client: %v, want close 1000 from Close", err)
	}
}

func TestNextWriterAndNextReader(t *testing.T) {
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		for {
			mt, r, err := c.NextReader()
			if err != nil {
				return
			}
			w, err := c.NextWriter(mt)
			if err != nil {
				return
			}
			w.Write([]byte("re: "))
			if _, err := bytes.NewBuffer(nil).ReadFrom(r); err != nil {
				return
			}
			w.Write([]byte("ok"))
			if err := w.Close(); err != nil {
				return
			}
			if _, err := w.Write([]byte("x")); err == nil {
				c.WriteMessage(TextMessage, []byte("write after writer close accepted"))
			}
		}
	})
	c := dial(t, url)
	c.WriteMessage(gorilla.TextMessage, []byte("hi"))
	_, p, err := c.ReadMessage()
	if err != nil || string(p) != "re: ok" {
		t.Fatalf("got %q %v", p, err)
	}
}

func TestSubprotocolNegotiation(t *testing.T) {
	got := make(chan string, 1)
	url := serve(t, &Upgrader{Subprotocols: []string{"chat.v2", "chat.v1"}}, func(c *Conn) {
		got <- c.Subprotocol()
		c.Close()
	})
	d := gorilla.Dialer{Subprotocols: []string{"chat.v1", "chat.v2"}}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "chat.v2" {
		t.Fatalf("client got %q", c.Subprotocol())
	}
	if s := <-got; s != "chat.v2" {
		t.Fatalf("server got %q", s)
	}
}

func TestOriginRejectedBeforeHijack(t *testing.T) {
	url := serve(t, &Upgrader{}, echoLoop)
	_, resp, err := gorilla.DefaultDialer.Dial(url, http.Header{"Origin": {"http://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin dial: err %v resp %v, want 403", err, resp)
	}
	allowAll := &Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	url = serve(t, allowAll, echoLoop)
	c, _, err := gorilla.DefaultDialer.Dial(url, http.Header{"Origin": {"http://evil.example"}})
	if err != nil {
		t.Fatalf("CheckOrigin allowing all: %v", err)
	}
	c.Close()
}

func TestResponseHeaderAndErrorCallback(t *testing.T) {
	srvURL := serve(t, &Upgrader{}, echoLoop)
	_ = srvURL
	var calledStatus int
	u := &Upgrader{Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		calledStatus = status
		http.Error(w, "nope", status)
	}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, http.Header{"Set-Cookie": {"k=v"}})
		if err != nil {
			return
		}
		echoLoop(c)
	})
	url := serveHandler(t, h)
	c, resp, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp.Header.Get("Set-Cookie") != "k=v" {
		t.Fatalf("response header lost: %v", resp.Header)
	}
	r, err := http.Get(strings.Replace(url, "ws", "http", 1))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || calledStatus != http.StatusBadRequest {
		t.Fatalf("plain GET: status %d, Error callback saw %d", r.StatusCode, calledStatus)
	}
}

func TestRemoteAddrIsTheClient(t *testing.T) {
	got := make(chan [2]string, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		got <- [2]string{c.RemoteAddr().String(), c.LocalAddr().String()}
		c.Close()
	})
	c := dial(t, url)
	a := <-got
	if a[0] != c.LocalAddr().String() || a[1] != c.RemoteAddr().String() {
		t.Fatalf("server sees remote %s local %s; client is %s -> %s", a[0], a[1], c.LocalAddr(), c.RemoteAddr())
	}
}
