// Interop: gorilla/websocket against build/echo_server, whose ws:// address comes from
// WSQ_ECHO_URL (tests/interop/run.sh starts the server and sets it).
package interop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const (
	mib = 1 << 20
	// Hang guard for every read and write; never a speed requirement.
	hangGuard = 60 * time.Second
)

func echoURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("WSQ_ECHO_URL")
	if u == "" {
		t.Fatal("WSQ_ECHO_URL is not set (run tests/interop/run.sh)")
	}
	return u
}

func dial(t *testing.T, dialer *websocket.Dialer) *websocket.Conn {
	t.Helper()
	if dialer == nil {
		dialer = &websocket.Dialer{HandshakeTimeout: hangGuard}
	}
	c, resp, err := dialer.Dial(echoURL(t), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("handshake status %d", resp.StatusCode)
	}
	c.SetReadLimit(64 * mib)
	t.Cleanup(func() { c.Close() })
	return c
}

func deadline() time.Time { return time.Now().Add(hangGuard) }

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, c *websocket.Conn, kind int, data []byte) {
	t.Helper()
	c.SetWriteDeadline(deadline())
	if err := c.WriteMessage(kind, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func read(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	c.SetReadDeadline(deadline())
	kind, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return kind, data
}

func expectEcho(t *testing.T, c *websocket.Conn, kind int, want []byte) {
	t.Helper()
	gotKind, got := read(t, c)
	if gotKind != kind {
		t.Fatalf("message kind %d, want %d", gotKind, kind)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs: %d bytes back for %d sent", len(got), len(want))
	}
}

// closeCleanly runs the closing handshake: our close frame, the server's reply.
func closeCleanly(t *testing.T, c *websocket.Conn, code int, reason string) *websocket.CloseError {
	t.Helper()
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline()); err != nil {
		t.Fatalf("write close: %v", err)
	}
	c.SetReadDeadline(deadline())
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // an echo still in flight
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("expected the server's close frame, got %v", err)
		}
		return ce
	}
}

func TestBinaryMessagesOfManySizesEchoByteForByte(t *testing.T) {
	c := dial(t, nil)
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 65537, mib} {
		want := randomBytes(t, n)
		write(t, c, websocket.BinaryMessage, want)
		expectEcho(t, c, websocket.BinaryMessage, want)
	}
}

func TestTextMessagesEchoAsText(t *testing.T) {
	c := dial(t, nil)
	for _, s := range []string{"", "hello", "héllo wörld €", strings.Repeat("日本語", 30000), "nul\x00byte"} {
		write(t, c, websocket.TextMessage, []byte(s))
		expectEcho(t, c, websocket.TextMessage, []byte(s))
	}
}

func TestSixteenMiBMessagesEchoIntact(t *testing.T) {
	c := dial(t, nil)
	bin := randomBytes(t, 16*mib)
	text := []byte(strings.Repeat("wsqueue interop ", 16*mib/16))
	// Both sent before either is read: echo_server keeps reading while its echoes
	// wait for us (its send queue holds 128 MiB), so this cannot deadlock on TCP
	// buffers. A server that stopped reading under backpressure would hang here.
	write(t, c, websocket.BinaryMessage, bin)
	write(t, c, websocket.TextMessage, text)
	expectEcho(t, c, websocket.BinaryMessage, bin)
	expectEcho(t, c, websocket.TextMessage, text)
}

func TestNextWriterFragmentsAreReassembledIntoOneMessage(t *testing.T) {
	// A 1 KiB write buffer makes gorilla flush each full buffer as one frame of a
	// fragmented message, so about 200 KB goes out as about 200 frames. Frame
	// boundaries fall at byte offsets, so they cut the 2-byte "é" of the text now and
	// then: UTF-8 must be checked across fragments, not per frame (RFC 6455 §5.6).
	c := dial(t, &websocket.Dialer{HandshakeTimeout: hangGuard, WriteBufferSize: 1024})
	for _, kind := range []int{websocket.BinaryMessage, websocket.TextMessage} {
		var want []byte
		c.SetWriteDeadline(deadline())
		w, err := c.NextWriter(kind)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			chunk := []byte(strings.Repeat(fmt.Sprintf("%d-é-", i), 150))
			if kind == websocket.BinaryMessage {
				chunk = randomBytes(t, 1000+i)
			}
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
			want = append(want, chunk...)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// A marker proves the fragments were not echoed one by one.
		write(t, c, websocket.TextMessage, []byte("marker"))
		expectEcho(t, c, kind, want)
		expectEcho(t, c, websocket.TextMessage, []byte("marker"))
	}
}

func TestPingIsAnsweredByPongWithSamePayload(t *testing.T) {
	c := dial(t, nil)
	pongs := make(chan string, 8)
	c.SetPongHandler(func(data string) error {
		pongs <- data
		return nil
	})
	// gorilla runs the pong handler inside reads, so a goroutine keeps reading; the
	// echoes it collects show data messages are undisturbed by pings between them.
	type msg struct {
		kind int
		data []byte
		err  error
	}
	inbox := make(chan msg, 8)
	go func() {
		for {
			c.SetReadDeadline(deadline())
			kind, data, err := c.ReadMessage()
			inbox <- msg{kind, data, err}
			if err != nil {
				return
			}
		}
	}()
	for i, payload := range []string{"", "ping one", strings.Repeat("p", 125)} {
		text := []byte(fmt.Sprintf("between pings %d", i))
		write(t, c, websocket.TextMessage, text)
		if err := c.WriteControl(websocket.PingMessage, []byte(payload), deadline()); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-pongs:
			if got != payload {
				t.Fatalf("pong payload %q, want %q", got, payload)
			}
		case <-time.After(hangGuard):
			t.Fatal("no pong for our ping")
		}
		select {
		case m := <-inbox:
			if m.err != nil || m.kind != websocket.TextMessage || !bytes.Equal(m.data, text) {
				t.Fatalf("echo %d: kind %d %q err %v", i, m.kind, m.data, m.err)
			}
		case <-time.After(hangGuard):
			t.Fatal("no echo")
		}
	}
	c.Close() // ends the reader
}

func TestCloseHandshakeEchoesCodeAndServerClosesTCP(t *testing.T) {
	for _, code := range []int{websocket.CloseNormalClosure, websocket.CloseGoingAway, 4000} {
		c := dial(t, nil)
		write(t, c, websocket.TextMessage, []byte("bye soon"))
		ce := closeCleanly(t, c, code, "done here")
		if ce.Code != code {
			t.Fatalf("server answered close %d with %d (%q)", code, ce.Code, ce.Text)
		}
		// RFC 6455 §7.1.1: the server closes the TCP connection after the handshake.
		conn := c.UnderlyingConn()
		conn.SetReadDeadline(deadline())
		n, err := conn.Read(make([]byte, 16))
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("after the close handshake: read %d bytes, err %v; want EOF", n, err)
		}
	}
}

func TestConcurrentClientsEachGetTheirOwnEchoes(t *testing.T) {
	const clients, messages = 50, 100
	echoURL(t) // fail once here, not 50 times below
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for n := 0; n < clients; n++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			errs <- oneClient(n, messages)
		}(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// oneClient returns errors instead of calling t.Fatal, which must not run off the
// test's goroutine.
func oneClient(n, messages int) error {
	c, _, err := websocket.DefaultDialer.Dial(os.Getenv("WSQ_ECHO_URL"), nil)
	if err != nil {
		return fmt.Errorf("client %d: dial: %w", n, err)
	}
	defer c.Close()
	for i := 0; i < messages; i++ {
		kind := websocket.TextMessage
		msg := []byte(fmt.Sprintf("client %d message %d", n, i))
		if i%2 == 1 {
			kind = websocket.BinaryMessage
			msg = bytes.Repeat(msg, i)
		}
		c.SetWriteDeadline(deadline())
		if err := c.WriteMessage(kind, msg); err != nil {
			return fmt.Errorf("client %d: write %d: %w", n, i, err)
		}
		c.SetReadDeadline(deadline())
		gotKind, got, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("client %d: read %d: %w", n, i, err)
		}
		if gotKind != kind || !bytes.Equal(got, msg) {
			return fmt.Errorf("client %d: message %d came back as kind %d, %d bytes", n, i, gotKind, len(got))
		}
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline())
	c.SetReadDeadline(deadline())
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		return fmt.Errorf("client %d: close reply: %v", n, err)
	}
	return nil
}
