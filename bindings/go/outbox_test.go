package wsqueue

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// Small messages go through the outbox and larger ones straight to the engine;
// a writer's messages, and the close after them, must still arrive in order.
func TestSmallAndLargeWritesKeepTheirOrderAndTheCloseComesLast(t *testing.T) {
	const n = 600
	sizes := []int{8, outboxMaxMessage + 1, 100, 200 << 10, 0}
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		for i := 0; i < n; i++ {
			msg := make([]byte, max(sizes[i%len(sizes)], 4))
			binary.BigEndian.PutUint32(msg, uint32(i))
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				serverErr <- err
				return
			}
		}
		serverErr <- c.WriteControl(CloseMessage, FormatCloseMessage(4001, "done"), time.Time{})
	})
	c := dial(t, url)
	for i := 0; i < n; i++ {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := max(sizes[i%len(sizes)], 4); len(p) != want || binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("message %d: %d bytes, number %d; want %d bytes, number %d", i, len(p), binary.BigEndian.Uint32(p), want, i)
		}
	}
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, 4001) {
		t.Fatalf("after the messages: %v, want close 4001", err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// A flood of small messages to a client that does not read ends at the soft
// limit like large ones do: the writer blocks until its deadline.
func TestSmallWritesBlockOnBackpressureUntilDeadline(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		msg := make([]byte, 1024)
		for i := 0; i < 1<<20; i++ {
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				serverErr <- err
				return
			}
		}
		serverErr <- errors.New("1 GiB of small messages accepted without backpressure")
	})
	c := dial(t, url) // never reads
	_ = c
	err := <-serverErr
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write: %v, want a timeout while over the soft limit", err)
	}
}

// At the server-wide budget (MaxBufferedBytes) the engine refuses outbox
// messages: they wait, in order, with the ones written after them, and the
// writer waits; nothing is lost once the client reads.
func TestSmallWritesAtTheServerBudgetWaitInOrder(t *testing.T) {
	const n = 24 << 10 // 24 MiB of 1 KiB messages: more than the sockets and the budget hold
	s := listenForTest(t, Config{MaxBufferedBytes: 256 << 10})
	if s.eng.out == nil {
		t.Fatal("the outbox is off with the default soft and hard limits")
	}
	conns := make(chan *Conn, 1)
	writerErr := make(chan error, 1)
	acceptLoop(s, func(c *Conn) {
		conns <- c
		msg := make([]byte, 1024)
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(msg, uint32(i))
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				writerErr <- err
				return
			}
		}
		writerErr <- c.WriteControl(CloseMessage, FormatCloseMessage(4002, "all sent"), time.Time{})
	})
	client := dial(t, wsURL(s, "/"))
	sc := <-conns
	// The client reads only once the engine has refused some of the messages.
	for !sc.stalled() {
		select {
		case err := <-writerErr:
			t.Fatalf("the writer finished (%v) without reaching the server's budget", err)
		default:
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < n; i++ {
		_, p, err := client.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(p) != 1024 || binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("message %d: %d bytes, number %d", i, len(p), binary.BigEndian.Uint32(p))
		}
	}
	if _, _, err := client.ReadMessage(); !gorilla.IsCloseError(err, 4002) {
		t.Fatalf("after the messages: %v, want close 4002", err)
	}
	if err := <-writerErr; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// Invalid UTF-8 in a small text message is refused at once, as the engine
// refuses it on the direct path.
func TestSmallInvalidTextIsRefusedByTheWrite(t *testing.T) {
	serverErr := make(chan error, 1)
	url := serve(t, &Upgrader{}, func(c *Conn) {
		defer c.Close()
		err := c.WriteMessage(TextMessage, []byte{0xff, 0xfe})
		if err == nil {
			serverErr <- errors.New("invalid UTF-8 accepted")
			return
		}
		serverErr <- c.WriteMessage(TextMessage, []byte("still open"))
	})
	c := dial(t, url)
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "still open" {
		t.Fatalf("read: %q, %v", p, err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// A close written while messages wait at the server-wide budget waits for
// them only until its deadline: with a client that never reads, the budget
// never frees, and the close must still return (and go out first).
func TestCloseBehindStalledMessagesKeepsItsDeadline(t *testing.T) {
	s := listenForTest(t, Config{MaxBufferedBytes: 256 << 10})
	if s.eng.out == nil {
		t.Fatal("the outbox is off with the default soft and hard limits")
	}
	conns := make(chan *Conn, 1)
	closeErr := make(chan error, 1)
	acceptLoop(s, func(c *Conn) {
		conns <- c
		msg := make([]byte, 1024)
		// Writes until one of them waits on the stalled messages (its
		// deadline passes: nothing frees the budget).
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		for i := 0; i < 64<<10; i++ {
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				break
			}
		}
		if !c.stalled() {
			closeErr <- errors.New("the writes ended without reaching the server's budget")
			return
		}
		closeErr <- c.WriteControl(CloseMessage, FormatCloseMessage(4003, "bye"), time.Now().Add(100*time.Millisecond))
	})
	client := dial(t, wsURL(s, "/")) // never reads
	_ = client
	sc := <-conns
	// Without a bound the close waits for the stalled messages forever; the
	// test's own timeout is the only other way out.
	select {
	case err := <-closeErr:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the close is still waiting for the stalled messages after a minute")
	}
	if !sc.closeSent.Load() {
		t.Fatal("the close returned without being sent")
	}
}
