package wsqueue

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync"
)

// Handler runs connections in the event style (like lxzan/gws): no goroutine
// per connection. A bounded pool of worker goroutines calls the methods; the
// calls for one connection never overlap and come in the order the engine
// delivered its events: OnOpen first, then its messages, then OnClose once.
// Callbacks may write to any connection. A callback that blocks (a write to a
// connection over its soft send limit waits for it to drain) holds one worker,
// so keep them short; hand long work to a goroutine of your own.
type Handler interface {
	OnOpen(c *Conn)
	// OnMessage gets a complete message (TextMessage or BinaryMessage); data is
	// the callee's to keep.
	OnMessage(c *Conn, messageType int, data []byte)
	// OnClose is the connection's last call: err is a *CloseError with the
	// peer's code and reason (1006, CloseAbnormalClosure, when the connection
	// was lost without a close; 1001 after Shutdown).
	OnClose(c *Conn, err error)
}

// PingPongHandler is implemented by a Handler that wants pings and pongs. The
// engine has already answered each ping (RFC 6455 §5.5.2).
type PingPongHandler interface {
	OnPing(c *Conn, data []byte)
	OnPong(c *Conn, data []byte)
}

// errHandlerConn is returned by reads on a connection run by a Handler.
var errHandlerConn = errors.New("wsqueue: read on a connection run by a Handler")

// workerPool runs connections' queued events on a fixed set of goroutines. A
// connection is in the run queue at most once (Conn.scheduled), so the queue is
// bounded by the number of connections and the dispatcher never waits on it.
type workerPool struct {
	// inline: no workers; the dispatcher runs the callbacks itself
	// (HandlerWorkers < 0 on ListenHandler).
	inline bool

	mu       sync.Mutex
	wake     *sync.Cond
	runq     []*Conn
	running  int // workers inside a connection's callbacks
	stopping bool
	wg       sync.WaitGroup
}

func startWorkerPool(workers int) *workerPool {
	if workers < 0 {
		return &workerPool{inline: true}
	}
	if workers == 0 {
		workers = defaultHandlerWorkers()
	}
	p := &workerPool{}
	p.wake = sync.NewCond(&p.mu)
	p.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go p.work()
	}
	return p
}

// defaultHandlerWorkers leaves room for a few callbacks blocked on
// backpressure without stalling the others.
func defaultHandlerWorkers() int {
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	return n
}

func (p *workerPool) schedule(c *Conn) {
	p.mu.Lock()
	p.runq = append(p.runq, c)
	p.mu.Unlock()
	p.wake.Signal()
}

func (p *workerPool) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.runq) == 0 && !p.stopping {
			p.wake.Wait()
		}
		if len(p.runq) == 0 {
			p.mu.Unlock()
			return
		}
		c := p.runq[0]
		p.runq[0] = nil
		p.runq = p.runq[1:]
		p.running++
		p.mu.Unlock()
		c.runEvents()
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}
}

// idle reports whether no callback runs and none is queued: after stop began,
// the workers then return without calling user code again.
func (p *workerPool) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.runq) == 0 && p.running == 0
}

// stop lets the workers finish what is queued, then waits for them to return.
// Call it once nothing can be scheduled any more (the dispatcher has ended).
func (p *workerPool) stop() {
	if p.inline {
		return
	}
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.wake.Broadcast()
	p.wg.Wait()
}

// attach hands the connection to the pool: OnOpen, then whatever is queued.
func (c *Conn) attach(p *workerPool, h Handler) {
	c.mu.Lock()
	c.pool, c.handler = p, h
	c.wake = nil // Upgrade's wait made it; no reader waits on a Handler's connection
	c.queue = append([]inEvent{{typ: evOpen}}, c.queue...)
	c.scheduled = true
	c.mu.Unlock()
	if p.inline {
		c.runEvents() // attach runs on the dispatcher (ListenHandler's open hook)
		return
	}
	p.schedule(c)
}

// runEvents delivers the connection's queued events, on a worker.
func (c *Conn) runEvents() {
	c.mu.Lock()
	evs := c.queue
	c.queue = nil
	c.queuedBytes = 0
	c.mu.Unlock()
	for i := range evs {
		c.deliver(evs[i])
		evs[i] = inEvent{}
	}
	if c.pool.inline {
		return // only the dispatcher queues events, and it is here
	}
	c.mu.Lock()
	if len(c.queue) > 0 {
		// More arrived meanwhile: back of the line, so one busy connection
		// does not starve the others.
		c.mu.Unlock()
		c.pool.schedule(c)
		return
	}
	c.scheduled = false
	c.mu.Unlock()
}

func (c *Conn) deliver(ev inEvent) {
	h := c.handler
	if ev.typ != evClose && c.isClosed() {
		return // closed by the application: only OnClose is still due
	}
	switch ev.typ {
	case evOpen:
		h.OnOpen(c)
	case evMessage:
		if c.readLimit > 0 && int64(len(ev.data)) > c.readLimit {
			c.sendClose(CloseMessageTooBig, "", 0)
			return
		}
		h.OnMessage(c, ev.kind, ev.data)
	case evPing:
		if pp, ok := h.(PingPongHandler); ok {
			pp.OnPing(c, ev.data)
		}
	case evPong:
		if pp, ok := h.(PingPongHandler); ok {
			pp.OnPong(c, ev.data)
		}
	case evClose:
		ce := &CloseError{Code: ev.code, Text: ev.text}
		if ev.code == CloseAbnormalClosure {
			ce.Text = io.ErrUnexpectedEOF.Error()
		}
		h.OnClose(c, ce)
	}
}

var (
	upgradePoolOnce sync.Once
	upgradePool     *workerPool
)

// UpgradeHandler upgrades the request like Upgrade and runs the connection with
// h on the pool shared by every UpgradeHandler of the process
// (Config.HandlerWorkers of SetUpgradeConfig). On failure it has answered the
// request like Upgrade and returns the error; h is not called.
func (u *Upgrader) UpgradeHandler(w http.ResponseWriter, r *http.Request, responseHeader http.Header, h Handler) error {
	if h == nil {
		return errors.New("wsqueue: nil Handler")
	}
	c, err := u.Upgrade(w, r, responseHeader)
	if err != nil {
		return err
	}
	upgradePoolOnce.Do(func() {
		defaultEngineMu.Lock()
		workers := defaultEngineCfg.HandlerWorkers
		defaultEngineMu.Unlock()
		if workers < 0 {
			workers = 0 // inline needs the open on the dispatcher: ListenHandler only
		}
		upgradePool = startWorkerPool(workers)
	})
	c.attach(upgradePool, h)
	return nil
}
