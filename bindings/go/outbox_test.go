package wsqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	s := listenWithSmallBudget(t)
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
	// The client reads only once the engine has refused some of the messages
	// at the budget: outbox ones (they stall) or a direct write (it waits).
	for !sc.stalled() && s.eng.budgetRefusals() == 0 {
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
	s := listenWithSmallBudget(t)
	conns := make(chan *Conn, 1)
	closeErr := make(chan error, 1)
	acceptLoop(s, func(c *Conn) {
		conns <- c
		msg := make([]byte, 1024)
		// Writes until outbox messages stall at the budget. Writes fail once
		// their deadline passes (nothing frees the budget); one that reached
		// the budget on the direct path fails without stalling anything, and
		// the next ones go to the outbox again, whose flush stalls them.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		for i := 0; i < 64<<10 && !c.stalled(); i++ {
			_ = c.WriteMessage(BinaryMessage, msg)
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

// A write that goes to the engine directly (larger than the outbox takes) and
// is refused at the server-wide budget waits only until its deadline: the
// connection itself is under its soft limit, so there is no drain to wait for,
// and with a client that never reads the budget never frees.
func TestDirectWriteAtTheBudgetKeepsItsDeadline(t *testing.T) {
	s := listenWithSmallBudget(t)
	writeErr := make(chan error, 1)
	acceptLoop(s, func(c *Conn) {
		msg := make([]byte, outboxMaxMessage+1)
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		// 64 MiB: far more than the socket buffers and the budget hold.
		for i := 0; i < (64<<20)/len(msg); i++ {
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- errors.New("64 MiB written to a client that never reads")
	})
	client := dial(t, wsURL(s, "/")) // never reads
	_ = client
	select {
	case err := <-writeErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the write ended with %v, want its deadline's timeout", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the write is still retrying at the budget after a minute")
	}
	if s.eng.budgetRefusals() == 0 {
		t.Fatal("the writes never reached the server's budget")
	}
}

// Two goroutines writing small messages to one connection through the outbox
// keep each one's order: the reader echoes bursts of 1 to 8 messages (sent in
// one write each, so that a burst is read whole and its replies meet in the
// outbox), while a second goroutine streams numbered messages.
func TestConcurrentSmallWritersKeepEachWritersOrder(t *testing.T) {
	const echoes, pushes = 3000, 3000
	s := listenForTest(t, Config{})
	if s.eng.out == nil {
		t.Fatal("the outbox is off with the default soft and hard limits")
	}
	acceptLoop(s, func(c *Conn) {
		go func() {
			msg := make([]byte, 5)
			msg[0] = 'p'
			for i := 0; i < pushes; i++ {
				binary.BigEndian.PutUint32(msg[1:], uint32(i))
				if c.WriteMessage(BinaryMessage, msg) != nil {
					return
				}
			}
		}()
		echoLoop(c)
	})
	c := dial(t, wsURL(s, "/"))
	readErr := make(chan error, 1)
	replied := make(chan struct{}, echoes)
	go func() {
		nextEcho, nextPush := uint32(0), uint32(0)
		for nextEcho < echoes || nextPush < pushes {
			_, p, err := c.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			if len(p) != 5 {
				readErr <- errors.New("a message of the wrong length")
				return
			}
			got := binary.BigEndian.Uint32(p[1:])
			switch p[0] {
			case 'e':
				if got != nextEcho {
					readErr <- fmt.Errorf("echo %d arrived when %d was due", got, nextEcho)
					return
				}
				nextEcho++
				replied <- struct{}{}
			case 'p':
				if got != nextPush {
					readErr <- fmt.Errorf("pushed message %d arrived when %d was due", got, nextPush)
					return
				}
				nextPush++
			}
		}
		readErr <- nil
	}()
	// A burst goes in one write of the socket, so that the engine reads it
	// whole and the reader finds the burst's later messages queued: masked
	// binary frames of 5 bytes, with a zero masking key (the client's writer
	// is not used, so nothing else writes to the socket).
	frame := []byte{0x82, 0x80 | 5, 0, 0, 0, 0, 'e', 0, 0, 0, 0}
	var burstBytes []byte
	for sent, burst := 0, 1; sent < echoes; burst = burst%8 + 1 {
		k := min(burst, echoes-sent)
		burstBytes = burstBytes[:0]
		for j := 0; j < k; j++ {
			binary.BigEndian.PutUint32(frame[7:], uint32(sent+j))
			burstBytes = append(burstBytes, frame...)
		}
		if _, err := c.NetConn().Write(burstBytes); err != nil {
			t.Fatal(err)
		}
		sent += k
		for j := 0; j < k; j++ {
			select {
			case <-replied:
			case err := <-readErr:
				if err != nil {
					t.Fatalf("client: %v", err)
				}
				readErr <- nil // all read: this reply is in replied
				<-replied
			}
		}
	}
	if err := <-readErr; err != nil {
		t.Fatalf("client: %v", err)
	}
}

// listenWithSmallBudget starts a server whose server-wide budget
// (MaxBufferedBytes, 256 KiB) is reached long before any connection's soft
// limit, with the outbox on.
func listenWithSmallBudget(t *testing.T) *Server {
	t.Helper()
	s := listenForTest(t, Config{MaxBufferedBytes: 256 << 10})
	if s.eng.out == nil {
		t.Fatal("the outbox is off with the default soft and hard limits")
	}
	return s
}
