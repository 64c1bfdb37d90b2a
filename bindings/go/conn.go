package wsqueue

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Message types, as in RFC 6455 §11.8 (and gorilla/websocket).
const (
	TextMessage   = 1
	BinaryMessage = 2
	CloseMessage  = 8
	PingMessage   = 9
	PongMessage   = 10
)

// Close codes, RFC 6455 §11.7.
const (
	CloseNormalClosure           = 1000
	CloseGoingAway               = 1001
	CloseProtocolError           = 1002
	CloseUnsupportedData         = 1003
	CloseNoStatusReceived        = 1005
	CloseAbnormalClosure         = 1006
	CloseInvalidFramePayloadData = 1007
	ClosePolicyViolation         = 1008
	CloseMessageTooBig           = 1009
	CloseMandatoryExtension      = 1010
	CloseInternalServerErr       = 1011
	CloseServiceRestart          = 1012
	CloseTryAgainLater           = 1013
	CloseTLSHandshake            = 1015
)

var (
	// ErrCloseSent is returned by writes after a close message was sent (or
	// the connection is gone).
	ErrCloseSent = errors.New("websocket: close sent")
	// ErrReadLimit is returned when a message is larger than SetReadLimit's
	// limit (the connection is closed with 1009).
	ErrReadLimit = errors.New("websocket: read limit exceeded")
	// ErrWriteQueueFull is returned by a write from a callback that runs on
	// the dispatcher (HandlerWorkers < 0) when the connection is at its hard
	// send limit: such a write cannot wait for the queue to drain.
	ErrWriteQueueFull = errors.New("wsqueue: send queue full")
	// errConnClosed is returned by every operation after Close.
	errConnClosed = errors.New("websocket: use of closed connection")
	errBadMsgType = errors.New("websocket: bad message type")
	errBadClose   = errors.New("websocket: invalid close payload")
	errInvalidCtl = errors.New("websocket: invalid control frame")
	errWriterOpen = errors.New("websocket: writer closed")
)

// CloseError is returned by reads once the peer closed the connection.
type CloseError struct {
	Code int
	Text string
}

var closeNames = map[int]string{
	CloseNormalClosure: "normal", CloseGoingAway: "going away",
	CloseProtocolError: "protocol error", CloseUnsupportedData: "unsupported data",
	CloseNoStatusReceived: "no status", CloseAbnormalClosure: "abnormal closure",
	CloseInvalidFramePayloadData: "invalid payload data", ClosePolicyViolation: "policy violation",
	CloseMessageTooBig: "message too big", CloseMandatoryExtension: "mandatory extension missing",
	CloseInternalServerErr: "internal server error", CloseTLSHandshake: "TLS handshake error",
}

func (e *CloseError) Error() string {
	s := "websocket: close " + itoa(e.Code)
	if n, ok := closeNames[e.Code]; ok {
		s += " (" + n + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// IsCloseError reports whether err is a *CloseError with one of the codes.
func IsCloseError(err error, codes ...int) bool {
	var e *CloseError
	if errors.As(err, &e) {
		for _, c := range codes {
			if e.Code == c {
				return true
			}
		}
	}
	return false
}

// IsUnexpectedCloseError reports whether err is a *CloseError with a code not
// in expectedCodes.
func IsUnexpectedCloseError(err error, expectedCodes ...int) bool {
	var e *CloseError
	if errors.As(err, &e) {
		for _, c := range expectedCodes {
			if e.Code == c {
				return false
			}
		}
		return true
	}
	return false
}

// FormatCloseMessage formats a close message payload; CloseNoStatusReceived
// gives an empty payload.
func FormatCloseMessage(closeCode int, text string) []byte {
	if closeCode == CloseNoStatusReceived {
		return []byte{}
	}
	buf := make([]byte, 2+len(text))
	buf[0] = byte(closeCode >> 8)
	buf[1] = byte(closeCode)
	copy(buf[2:], text)
	return buf
}

// timeoutError is what a read or write past its deadline returns.
type timeoutError struct{}

func (timeoutError) Error() string   { return "websocket: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var _ net.Error = timeoutError{}

type inEvent struct {
	typ   uint32
	kind  int
	data  []byte
	code  int
	clean bool
	text  string
}

// Conn is one WebSocket connection run by the engine. It is safe for one
// reader and any number of concurrent writers.
//
// An idle connection in the goroutine-per-connection style is this struct and
// one small channel that its blocked reader sleeps on: the channels for writers
// waiting on a drain are made only when a writer has to wait, and nothing else
// is allocated until a message arrives.
type Conn struct {
	eng *engine
	id  uint64

	mu          sync.Mutex
	queue       []inEvent
	queuedBytes int
	wake        chan struct{} // a token for the blocked reader; made by the first reader that waits
	drainCh     chan struct{} // made by a writer that waits; closed at WSQ_EVENT_DRAIN, the close and Close
	gone        bool          // the engine's WSQ_EVENT_CLOSE was queued
	subprotocol string
	path        string
	remote      net.Addr
	local       net.Addr

	// Event style (Handler): set once by attach, before any worker runs.
	pool      *workerPool
	handler   Handler
	scheduled bool // in pool's run queue or being run (guarded by mu)

	closed atomic.Bool // set by Close, which then wakes every blocked reader and writer
	// Writes through the outbox (outbox.go): how many of this
	// connection's messages and bytes wait there, whether the last flush left
	// it over its soft limit, and a failure found by a flush (guarded by mu),
	// returned by the next write.
	outPending  atomic.Int32
	outBytes    atomic.Int32
	overSoft    atomic.Bool
	writeErr    error
	stall       *connStall // messages refused at the server-wide budget (guarded by mu)
	closeSentMu sync.Mutex
	closeSent   atomic.Bool // written under closeSentMu

	// Deadlines in Unix nanoseconds (0: none), set from any goroutine.
	readDeadline  atomic.Int64
	writeDeadline atomic.Int64

	// Reader state: one reader at a time, as in gorilla.
	readErr      error
	readLimit    int64
	pingHandler  func(string) error
	pongHandler  func(string) error
	closeHandler func(int, string) error
}

func newConn(e *engine, id uint64) *Conn {
	return &Conn{eng: e, id: id}
}

// push queues an event for the reader; false when the reader is too far behind.
// Called by the dispatcher only; never blocks.
func (c *Conn) push(ev inEvent) bool {
	c.mu.Lock()
	if ev.typ == evClose {
		c.gone = true
	} else if c.isClosed() {
		// Closed by the application: nobody will read it.
		c.mu.Unlock()
		return true
	} else if c.queuedBytes+len(ev.data) > c.eng.maxQueue && len(c.queue) > 0 {
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, ev)
	c.queuedBytes += len(ev.data)
	pool := c.pool
	inline := pool != nil && pool.inline
	schedule := pool != nil && !inline && !c.scheduled
	if schedule {
		c.scheduled = true
	}
	c.mu.Unlock()
	if inline {
		c.runEvents() // on the dispatcher, inside the poll batch
	} else if schedule {
		pool.schedule(c)
	} else if pool == nil {
		c.wakeReader()
	}
	if ev.typ == evClose {
		// Writers waiting for a drain that will never come.
		c.drained()
	}
	return true
}

// wakeReader gives the blocked reader (if any) a token.
func (c *Conn) wakeReader() {
	c.mu.Lock()
	w := c.wake
	c.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// drained wakes every writer waiting for the connection to drain.
func (c *Conn) drained() {
	c.mu.Lock()
	if c.drainCh != nil {
		close(c.drainCh)
		c.drainCh = nil
	}
	c.mu.Unlock()
}

// drainSignal returns the channel that the next drain closes.
func (c *Conn) drainSignal() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drainCh == nil {
		c.drainCh = make(chan struct{})
	}
	return c.drainCh
}

// next waits for the next event until the deadline (Unix nanoseconds, 0:
// none). Its frame and the one it parks in are small on purpose: a grown
// goroutine stack is shrunk by the garbage collector only while less than a
// quarter of it is in use, and the idle goroutine of the goroutine-per-
// connection style sits here.
func (c *Conn) next(deadline int64) (inEvent, error) {
	for {
		c.mu.Lock()
		if c.pool != nil {
			c.mu.Unlock()
			return inEvent{}, errHandlerConn
		}
		if len(c.queue) > 0 {
			ev := c.queue[0]
			c.queue[0] = inEvent{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil
			}
			c.queuedBytes -= len(ev.data)
			c.mu.Unlock()
			return ev, nil
		}
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		wake := c.wake
		c.mu.Unlock()
		if c.closed.Load() {
			return inEvent{}, errConnClosed
		}
		if deadline != 0 {
			if err := waitUntil(wake, deadline); err != nil {
				return inEvent{}, err
			}
			continue
		}
		<-wake
	}
}

// waitUntil waits for a token on wake until the deadline (Unix nanoseconds).
//
//go:noinline
func waitUntil(wake chan struct{}, deadline int64) error {
	d := time.Until(time.Unix(0, deadline))
	if d <= 0 {
		return timeoutError{}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
		return nil
	case <-t.C:
		return timeoutError{}
	}
}

// deadlineNanos turns a deadline into Unix nanoseconds (0 for none).
func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ReadMessage returns the next data message. Pings, pongs and the peer's close
// run their handlers on the way. After an error every later read returns it.
func (c *Conn) ReadMessage() (messageType int, p []byte, err error) {
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	for {
		ev, err := c.next(c.readDeadline.Load())
		if err != nil {
			c.readErr = err
			return 0, nil, err
		}
		switch ev.typ {
		case evMessage:
			if c.readLimit > 0 && int64(len(ev.data)) > c.readLimit {
				c.sendClose(CloseMessageTooBig, "", 0)
				c.readErr = ErrReadLimit
				return 0, nil, ErrReadLimit
			}
			return ev.kind, ev.data, nil
		case evPing:
			if h := c.pingHandler; h != nil {
				if err := h(string(ev.data)); err != nil {
					c.readErr = err
					return 0, nil, err
				}
			}
		case evPong:
			if h := c.pongHandler; h != nil {
				if err := h(string(ev.data)); err != nil {
					c.readErr = err
					return 0, nil, err
				}
			}
		case evClose:
			ce := &CloseError{Code: ev.code, Text: ev.text}
			if ev.code == CloseAbnormalClosure {
				ce.Text = io.ErrUnexpectedEOF.Error()
			} else if h := c.closeHandler; h != nil {
				if err := h(ev.code, ev.text); err != nil {
					c.readErr = err
					return 0, nil, err
				}
			}
			c.readErr = ce
			return 0, nil, ce
		}
	}
}

// NextReader returns the next data message as a reader.
func (c *Conn) NextReader() (messageType int, r io.Reader, err error) {
	mt, p, err := c.ReadMessage()
	if err != nil {
		return 0, nil, err
	}
	return mt, bytes.NewReader(p), nil
}

// SetReadLimit sets the largest message the reader accepts; a larger one
// closes the connection with 1009 and the read returns ErrReadLimit. The
// engine's own MaxMessageSize (default 16 MiB) applies on top.
func (c *Conn) SetReadLimit(limit int64) { c.readLimit = limit }

// SetReadDeadline sets when blocked and future reads fail with a timeout
// (zero: never). As in gorilla, a timed-out connection stays failed.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(deadlineNanos(t))
	return nil
}

// SetWriteDeadline sets how long writes may wait for a connection over its
// soft send limit to drain (zero: as long as it takes).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(deadlineNanos(t))
	return nil
}

// SetPingHandler sets the handler for pings (nil: none). The engine has already
// answered each ping with a pong carrying its payload (RFC 6455 §5.5.2).
func (c *Conn) SetPingHandler(h func(appData string) error) { c.pingHandler = h }

// PingHandler returns the ping handler.
func (c *Conn) PingHandler() func(appData string) error {
	if c.pingHandler == nil {
		return func(string) error { return nil }
	}
	return c.pingHandler
}

// SetPongHandler sets the handler for pongs (nil: none).
func (c *Conn) SetPongHandler(h func(appData string) error) { c.pongHandler = h }

// PongHandler returns the pong handler.
func (c *Conn) PongHandler() func(appData string) error {
	if c.pongHandler == nil {
		return func(string) error { return nil }
	}
	return c.pongHandler
}

// SetCloseHandler sets the handler run when the peer's close arrives (nil:
// none). The engine has already completed the closing handshake.
func (c *Conn) SetCloseHandler(h func(code int, text string) error) { c.closeHandler = h }

// CloseHandler returns the close handler.
func (c *Conn) CloseHandler() func(code int, text string) error {
	if c.closeHandler == nil {
		return func(int, string) error { return nil }
	}
	return c.closeHandler
}

// Subprotocol returns the negotiated subprotocol ("" for none).
func (c *Conn) Subprotocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subprotocol
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remote
}

// LocalAddr returns the local address (nil when the engine did not say).
func (c *Conn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// Path returns the request target of the upgrade.
func (c *Conn) Path() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.path
}

func (c *Conn) isClosed() bool { return c.closed.Load() }

// WriteMessage sends one message. Data messages are accepted at once (up to
// 16 KiB into the outbox, which the engine gets corked with the other writers'
// messages; larger ones by the engine directly); while the connection is over
// its soft send limit, or the server over MaxBufferedBytes, the call blocks
// until there is room (or the write deadline passes). A failure found when the outbox is flushed is returned by the next
// write. Close, ping and pong go through WriteControl.
func (c *Conn) WriteMessage(messageType int, data []byte) error {
	switch messageType {
	case TextMessage, BinaryMessage:
	case CloseMessage, PingMessage, PongMessage:
		return c.WriteControl(messageType, data, time.Time{})
	default:
		return errBadMsgType
	}
	if c.isClosed() {
		return errConnClosed
	}
	dl := c.writeDeadline.Load()
	c.mu.Lock()
	inline := c.pool != nil && c.pool.inline
	werr := c.writeErr
	if werr == nil && (c.gone || c.closeSent.Load()) {
		// What the engine would answer; the outbox answers later.
		werr = ErrCloseSent
	}
	stalled := c.stall != nil
	c.mu.Unlock()
	if werr != nil {
		return werr
	}
	if stalled {
		// Messages refused at the server-wide budget go first.
		if err := c.waitStall(dl); err != nil {
			return err
		}
	}
	if c.overSoft.Load() && !inline {
		// An outbox message left the connection over its soft limit.
		if err := c.waitDrain(dl); err != nil {
			return err
		}
		c.overSoft.Store(false)
	}
	out := c.eng.out
	if out != nil && !inline && len(data) <= outboxMaxMessage &&
		int(c.outBytes.Load())+len(data) <= outboxMaxConnBytes {
		// The engine checks text when the outbox is flushed, after this
		// call has returned: check it here, with the engine's answer.
		if messageType == TextMessage && !utf8.Valid(data) {
			return codeError(resInvalidArgument)
		}
		if out.put(c, messageType, data) {
			return nil
		}
	}
	c.flushOutbox()
	if err := c.waitStall(dl); err != nil {
		return err
	}
	// Text is checked by the engine (WSQ_ERR_INVALID_ARGUMENT), not twice.
	backoff := budgetRetryFirst
	for {
		bp, code := c.eng.send(c.id, messageType, data)
		if inline {
			// A callback on the dispatcher must not wait for a drain that only
			// the dispatcher can deliver: the message is accepted (the engine
			// stops reading the peer meanwhile), or refused at the hard limit.
			if code == resQueueFull {
				return ErrWriteQueueFull
			}
			return c.sendError(code)
		}
		if code == resQueueFull {
			if err := c.waitRoom(dl, &backoff); err != nil {
				return err
			}
			continue
		}
		if err := c.sendError(code); err != nil {
			return err
		}
		if bp {
			return c.waitDrain(dl)
		}
		return nil
	}
}

func (c *Conn) sendError(code uint32) error {
	if code == resOK {
		return nil
	}
	if code == resClosed || code == resNotFound || code == resStopped || code == resBadHandle {
		if c.isClosed() {
			return errConnClosed
		}
		return ErrCloseSent
	}
	return codeError(code)
}

// waitRoom waits after a send was refused with WSQ_ERR_QUEUE_FULL, until the
// deadline (Unix nanoseconds, 0: none). Over its soft limit the connection's own
// hard limit refused it: its drain is announced, so waitDrain. Under it, the
// server-wide budget refused it, which frees as other connections drain and no
// event announces: wait *backoff (doubled for the next retry), as
// resendStalled does.
func (c *Conn) waitRoom(deadline int64, backoff *time.Duration) error {
	n, ok := c.eng.buffered(c.id)
	if !ok {
		return ErrCloseSent
	}
	if n > c.eng.softLim {
		return c.waitDrain(deadline)
	}
	wait := *backoff
	if deadline != 0 {
		left := time.Until(time.Unix(0, deadline))
		if left <= 0 {
			return timeoutError{}
		}
		wait = min(wait, left)
	}
	time.Sleep(wait)
	*backoff = min(2**backoff, budgetRetryMax)
	if c.isClosed() {
		return errConnClosed
	}
	return nil
}

// waitDrain blocks while the connection is over its soft limit, until the
// deadline (Unix nanoseconds, 0: none).
func (c *Conn) waitDrain(deadline int64) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var timeout <-chan time.Time
	for {
		// Taken before the buffered amount is read, so that a drain after
		// the read is never missed.
		drain := c.drainSignal()
		if c.isClosed() {
			return errConnClosed
		}
		n, ok := c.eng.buffered(c.id)
		if !ok {
			return ErrCloseSent
		}
		if n <= c.eng.softLim {
			return nil
		}
		if deadline != 0 && timer == nil {
			d := time.Until(time.Unix(0, deadline))
			if d <= 0 {
				return timeoutError{}
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		select {
		case <-drain:
		case <-timeout:
			return timeoutError{}
		}
	}
}

// WriteControl sends a close or ping (payload at most 125 bytes). The engine
// answers every ping itself (RFC 6455 §5.5.3), so a pong written here is
// checked and not sent again. Control frames are queued at once; the deadline
// bounds only the wait for messages stalled at the server-wide budget, which
// go first (for a close: zero means the write deadline, then
// closeStallWait; once it passes, the close goes ahead of them and they fail).
func (c *Conn) WriteControl(messageType int, data []byte, deadline time.Time) error {
	if c.isClosed() {
		return errConnClosed
	}
	if len(data) > 125 {
		return errInvalidCtl
	}
	switch messageType {
	case CloseMessage:
		code, reason := CloseNormalClosure, ""
		if len(data) == 1 {
			return errBadClose
		}
		if len(data) >= 2 {
			code = int(data[0])<<8 | int(data[1])
			reason = string(data[2:])
		}
		return c.sendClose(code, reason, deadlineNanos(deadline))
	case PingMessage:
		c.flushOutbox()
		if err := c.waitStall(deadlineNanos(deadline)); err != nil {
			return err
		}
		return c.sendError(c.eng.ping(c.id, data))
	case PongMessage:
		c.mu.Lock()
		gone := c.gone
		c.mu.Unlock()
		if gone {
			return ErrCloseSent
		}
		return nil
	}
	return errBadMsgType
}

// closeStallWait is how long a close waits for the connection's messages
// stalled at the server-wide budget when neither its own deadline nor the
// write deadline is set: the budget frees only as other connections drain,
// which may be never (a peer that stopped reading), and a close must end.
const closeStallWait = 5 * time.Second

// sendClose starts the closing handshake once; later calls get ErrCloseSent.
// deadline (Unix nanoseconds, 0: the write deadline, else closeStallWait)
// bounds the wait for stalled messages.
func (c *Conn) sendClose(code int, reason string, deadline int64) error {
	c.closeSentMu.Lock()
	defer c.closeSentMu.Unlock()
	if c.closeSent.Load() {
		return ErrCloseSent
	}
	// The close follows every message written before it (after Close, the
	// stalled ones are dropped at once). A callback on the dispatcher does not
	// wait for messages stalled at the server-wide budget: it would hold up
	// every connection's events; the close then goes first and they fail.
	c.flushOutbox()
	c.mu.Lock()
	inline := c.pool != nil && c.pool.inline
	c.mu.Unlock()
	if !inline {
		if deadline == 0 {
			deadline = c.writeDeadline.Load()
		}
		if deadline == 0 {
			deadline = time.Now().Add(closeStallWait).UnixNano()
		}
		_ = c.waitStall(deadline)
	}
	r := c.eng.close(c.id, code, reason)
	if r == resOK {
		c.closeSent.Store(true)
		return nil
	}
	if r == resClosed || r == resNotFound || r == resStopped || r == resBadHandle {
		c.closeSent.Store(true)
		return ErrCloseSent
	}
	return codeError(r)
}

// Close releases the connection: blocked and later reads and writes fail, and
// unless a close was already sent the engine closes it with 1000 (after the
// messages already accepted). A second Close returns an error.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return errConnClosed
	}
	_ = c.sendClose(CloseNormalClosure, "", 0)
	c.mu.Lock()
	if c.pool == nil {
		c.queue = nil
		c.queuedBytes = 0
	} // else a worker delivers what is queued: OnClose is still due
	c.mu.Unlock()
	c.wakeReader()
	c.drained()
	return nil
}

// NextWriter returns a writer for one message, sent when it is closed.
func (c *Conn) NextWriter(messageType int) (io.WriteCloser, error) {
	if messageType != TextMessage && messageType != BinaryMessage {
		return nil, errBadMsgType
	}
	if c.isClosed() {
		return nil, errConnClosed
	}
	return &messageWriter{c: c, mt: messageType}, nil
}

type messageWriter struct {
	c      *Conn
	mt     int
	buf    []byte
	closed bool
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterOpen
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *messageWriter) WriteString(s string) (int, error) {
	if w.closed {
		return 0, errWriterOpen
	}
	w.buf = append(w.buf, s...)
	return len(s), nil
}

func (w *messageWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.closed {
		return 0, errWriterOpen
	}
	var n int64
	for {
		if len(w.buf) == cap(w.buf) {
			w.buf = append(w.buf, 0)[:len(w.buf)]
		}
		m, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+m]
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (w *messageWriter) Close() error {
	if w.closed {
		return errWriterOpen
	}
	w.closed = true
	return w.c.WriteMessage(w.mt, w.buf)
}

// PreparedMessage is a message checked once, to be sent to many connections.
type PreparedMessage struct {
	messageType int
	data        []byte
}

// NewPreparedMessage returns a message that WritePreparedMessage sends.
func NewPreparedMessage(messageType int, data []byte) (*PreparedMessage, error) {
	switch messageType {
	case TextMessage:
		if !utf8.Valid(data) {
			return nil, errors.New("websocket: invalid UTF-8 in text message")
		}
	case BinaryMessage:
	case PingMessage, PongMessage, CloseMessage:
		if len(data) > 125 {
			return nil, errInvalidCtl
		}
	default:
		return nil, errBadMsgType
	}
	return &PreparedMessage{messageType: messageType, data: append([]byte(nil), data...)}, nil
}

// WritePreparedMessage sends a prepared message.
func (c *Conn) WritePreparedMessage(pm *PreparedMessage) error {
	if pm == nil {
		return errors.New("websocket: nil prepared message")
	}
	return c.WriteMessage(pm.messageType, pm.data)
}

func parseAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil
	}
	return a
}
