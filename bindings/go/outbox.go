package wsqueue

/*
#include <stdlib.h>
#include "wsqueue.h"

#define WSQGO_NOT_SENT 0xFFFFFFFFu
#define WSQGO_MAX_REFUSED 32

// Hands a batch to the engine corked, in one crossing of the boundary (the
// cork belongs to the calling OS thread, and one C call stays on one thread):
// each connection is then written once, with every frame queued for it. After
// a connection's message is refused (WSQ_ERR_QUEUE_FULL) its later messages in
// the batch are not attempted (WSQGO_NOT_SENT), so that they cannot overtake
// it; past WSQGO_MAX_REFUSED refused connections, nothing more is attempted.
static wsq_result_t wsqgo_send_corked(const wsq_server_t *srv, wsq_send_item_t *items, size_t n) {
	uint64_t refused[WSQGO_MAX_REFUSED];
	size_t nrefused = 0;
	int stop = 0;
	wsq_result_t r = wsq_cork(srv);
	if (r != WSQ_OK) return r;
	for (size_t i = 0; i < n; i++) {
		int skip = stop;
		for (size_t j = 0; j < nrefused && !skip; j++) skip = refused[j] == items[i].conn;
		if (skip) {
			items[i].result = WSQGO_NOT_SENT;
			continue;
		}
		items[i].result = wsq_send(srv, items[i].conn, items[i].kind, items[i].data, items[i].len);
		if (items[i].result == WSQ_ERR_QUEUE_FULL) {
			if (nrefused < WSQGO_MAX_REFUSED) refused[nrefused++] = items[i].conn;
			else stop = 1;
		}
	}
	wsq_uncork(srv);
	return WSQ_OK;
}
*/
import "C"

import (
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Small writes from goroutines (the goroutine-per-connection style, a Handler's
// workers) go through an outbox: WriteMessage copies the message and
// returns, and a flusher goroutine hands everything written meanwhile to the
// engine in one corked wsq_send_batch. One system call per connection then
// carries all the replies to a batch of messages, as on the dispatcher, instead
// of one cgo call and one system call per message.
//
// Order: a connection's messages reach the engine in the order its writers
// wrote them; anything that must come after them (a large message, a close, a
// ping) flushes the outbox first (Conn.flushOutbox).
//
// Backpressure: the flush tells each connection whether it is now over its soft
// limit, and its next write waits for the drain, as a direct write would. A
// connection takes the outbox only while it is under the soft limit and has at
// most outboxMaxConnBytes waiting there, and the engine must be configured with
// at least outboxMinHeadroom between its soft and hard limits, so that its own
// hard limit does not refuse an outbox message. The server-wide budget
// (MaxBufferedBytes) still may: the refused message and the connection's later
// ones then wait, in order, in the connection's stall list, which a goroutine
// retries until the engine takes them (or the connection is gone), and the
// connection's writers wait meanwhile, as a direct write waits at the budget.
const (
	// outboxMaxMessage is the largest message that takes the outbox: larger
	// ones cost more to copy than the system call saved (the engine's cork
	// stops at 16 KiB too).
	outboxMaxMessage = 16 << 10
	// outboxMaxBytes is what may wait for the flusher before a writer flushes
	// itself.
	outboxMaxBytes = 1 << 20
	// outboxMaxConnBytes bounds one connection's bytes in the outbox.
	outboxMaxConnBytes = 64 << 10
	// outboxMinHeadroom is the least hard-minus-soft limit that keeps the
	// per-connection limit from refusing an outbox message.
	outboxMinHeadroom = 1 << 20
)

type outItem struct {
	c    *Conn
	kind int
	off  int
	n    int
}

// outBuffer is one generation of the outbox: payload bytes in C memory (the
// engine reads them during the batch call) and the items that point into them.
type outBuffer struct {
	mem   unsafe.Pointer
	cap   int
	len   int
	items []outItem
}

func (b *outBuffer) append(p []byte) int {
	if b.len+len(p) > b.cap {
		n := 2 * b.cap
		if n < 64<<10 {
			n = 64 << 10
		}
		for n < b.len+len(p) {
			n *= 2
		}
		b.mem = C.realloc(b.mem, C.size_t(n))
		if b.mem == nil {
			panic("wsqueue: out of memory")
		}
		b.cap = n
	}
	off := b.len
	copy(unsafe.Slice((*byte)(b.mem), b.cap)[off:], p)
	b.len += len(p)
	return off
}

type outbox struct {
	eng *engine

	mu      sync.Mutex
	front   outBuffer // being filled by writers
	kicked  bool      // the flusher was told about front's items
	stopped bool

	flushMu sync.Mutex // one flush at a time, so that flushes keep writers' order
	back    outBuffer  // being sent (under flushMu)
	citems  *C.wsq_send_item_t
	ccap    int

	kick chan struct{}
	done chan struct{}
}

func newOutbox(e *engine) *outbox {
	o := &outbox{eng: e, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go o.flusher()
	return o
}

// put queues a message for c. False when the outbox cannot take it (stopped):
// the caller sends it directly.
func (o *outbox) put(c *Conn, kind int, p []byte) bool {
	o.mu.Lock()
	if o.stopped {
		o.mu.Unlock()
		return false
	}
	off := o.front.append(p)
	o.front.items = append(o.front.items, outItem{c: c, kind: kind, off: off, n: len(p)})
	c.outPending.Add(1)
	c.outBytes.Add(int32(len(p)))
	full := o.front.len >= outboxMaxBytes
	if !o.kicked && !full {
		o.kicked = true
		// Under mu, so that stop cannot close the channel meanwhile.
		select {
		case o.kick <- struct{}{}:
		default:
		}
	}
	o.mu.Unlock()
	if full {
		o.flush()
	}
	return true
}

// flusher hands the outbox to the engine whenever a writer has put something.
func (o *outbox) flusher() {
	defer close(o.done)
	for range o.kick {
		// Let the goroutines that are runnable now (readers woken by the same
		// batch of events) write their replies first, so that one flush
		// carries them all.
		runtime.Gosched()
		o.flush()
	}
}

// flush hands everything queued so far to the engine, corked, and returns once
// it has.
func (o *outbox) flush() {
	o.flushMu.Lock()
	defer o.flushMu.Unlock()
	o.mu.Lock()
	o.front, o.back = o.back, o.front
	o.kicked = false
	o.mu.Unlock()
	b := &o.back
	n := len(b.items)
	if n == 0 {
		return
	}
	if n > o.ccap {
		C.free(unsafe.Pointer(o.citems))
		o.ccap = 2 * n
		o.citems = (*C.wsq_send_item_t)(C.calloc(C.size_t(o.ccap), C.size_t(unsafe.Sizeof(C.wsq_send_item_t{}))))
		if o.citems == nil {
			panic("wsqueue: out of memory")
		}
	}
	cs := unsafe.Slice(o.citems, n)
	payload := func(it outItem) []byte { return unsafe.Slice((*byte)(unsafe.Add(b.mem, it.off)), it.n) }
	done := func(it outItem) {
		it.c.outBytes.Add(-int32(it.n))
		it.c.outPending.Add(-1)
	}
	m := 0
	for _, it := range b.items {
		if it.c.stalled() {
			// Behind its stalled messages, in order.
			it.c.stallAppend(it.kind, payload(it))
			done(it)
			continue
		}
		cs[m].conn = C.uint64_t(it.c.id)
		cs[m].kind = C.uint32_t(it.kind)
		cs[m].result = 0
		cs[m].data = unsafe.Add(b.mem, it.off)
		cs[m].len = C.size_t(it.n)
		b.items[m] = it
		m++
	}
	var r C.wsq_result_t = C.WSQ_OK
	if m > 0 {
		r = C.wsqgo_send_corked(o.eng.srv, o.citems, C.size_t(m))
	}
	for i, it := range b.items[:m] {
		code := uint32(cs[i].result)
		if r != C.WSQ_OK {
			code = uint32(r)
		}
		if code == resQueueFull || code == notSent {
			it.c.stallAppend(it.kind, payload(it))
		} else {
			it.c.sent(code)
		}
		done(it)
	}
	clear(b.items)
	b.items = b.items[:0]
	b.len = 0
}

const notSent = uint32(C.WSQGO_NOT_SENT)

// stop flushes what is queued and ends the flusher; later puts are refused.
func (o *outbox) stop() {
	o.mu.Lock()
	already := o.stopped
	o.stopped = true
	if !already {
		close(o.kick)
	}
	o.mu.Unlock()
	if already {
		return
	}
	<-o.done
	o.flush()
}

// free releases the C memory once the engine is gone (after stop).
func (o *outbox) free() {
	o.flushMu.Lock()
	defer o.flushMu.Unlock()
	for _, b := range []*outBuffer{&o.front, &o.back} {
		C.free(b.mem)
		b.mem, b.cap, b.len = nil, 0, 0
	}
	C.free(unsafe.Pointer(o.citems))
	o.citems, o.ccap = nil, 0
}

// sent records what the engine said to one of c's outbox messages: the
// writer has returned already, so the news waits for c's next write.
func (c *Conn) sent(code uint32) {
	switch code {
	case resOK:
	case resBackpressure:
		c.overSoft.Store(true)
	default:
		c.setWriteErr(c.sendError(code))
	}
}

// A send refused at the server-wide budget is retried after budgetRetryFirst,
// then after twice as long each time up to budgetRetryMax: nothing announces
// that the budget freed.
const (
	budgetRetryFirst = time.Millisecond
	budgetRetryMax   = 50 * time.Millisecond
)

// connStall holds a connection's outbox messages that the engine refused at
// its server-wide budget, and those written after them.
type connStall struct {
	msgs []stalledMsg
	done chan struct{} // closed once they are all sent (or dropped with the connection)
}

type stalledMsg struct {
	kind int
	data []byte
}

func (c *Conn) stalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stall != nil
}

// stallAppend copies a message into c's stall list, starting the goroutine
// that retries them if it is the first.
func (c *Conn) stallAppend(kind int, p []byte) {
	m := stalledMsg{kind: kind, data: append([]byte(nil), p...)}
	c.mu.Lock()
	start := c.stall == nil
	if start {
		c.stall = &connStall{done: make(chan struct{})}
	}
	c.stall.msgs = append(c.stall.msgs, m)
	c.mu.Unlock()
	if start {
		go c.resendStalled()
	}
}

// resendStalled sends c's stalled messages in order, retrying while the
// engine's budget refuses them: the budget frees as other connections'
// sockets drain, which no event announces, hence the polling.
func (c *Conn) resendStalled() {
	backoff := budgetRetryFirst
	for {
		c.mu.Lock()
		st := c.stall
		if len(st.msgs) == 0 || c.isClosed() || c.gone {
			c.stall = nil
			close(st.done)
			c.mu.Unlock()
			return
		}
		m := st.msgs[0]
		c.mu.Unlock()
		bp, code := c.eng.send(c.id, m.kind, m.data)
		if code == resQueueFull {
			time.Sleep(backoff)
			backoff = min(2*backoff, budgetRetryMax)
			continue
		}
		backoff = budgetRetryFirst
		if bp {
			c.overSoft.Store(true)
		}
		c.setWriteErr(c.sendError(code))
		c.mu.Lock()
		st.msgs[0] = stalledMsg{}
		st.msgs = st.msgs[1:]
		c.mu.Unlock()
	}
}

// waitStall waits until c has no stalled messages, or the deadline (Unix
// nanoseconds, 0: none) passes.
func (c *Conn) waitStall(deadline int64) error {
	c.mu.Lock()
	st := c.stall
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	if deadline == 0 {
		<-st.done
		return nil
	}
	d := time.Until(time.Unix(0, deadline))
	if d <= 0 {
		return timeoutError{}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-st.done:
		return nil
	case <-t.C:
		return timeoutError{}
	}
}

func (c *Conn) setWriteErr(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	if c.writeErr == nil {
		c.writeErr = err
	}
	c.mu.Unlock()
}

// flushOutbox makes sure that c's messages in the outbox have reached the
// engine, before something that must follow them.
func (c *Conn) flushOutbox() {
	if c.outPending.Load() > 0 {
		c.eng.out.flush()
	}
}

// outboxUsable is whether the engine's limits leave room for the outbox.
func outboxUsable(soft, hard uint64) bool {
	return hard >= soft && hard-soft >= outboxMinHeadroom
}
