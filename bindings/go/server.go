package wsqueue

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrServerClosed is returned by Accept once Shutdown or Close has begun.
var ErrServerClosed = errors.New("wsqueue: server closed")

// errHandlerServer is returned by Accept on a server whose connections go to a
// Handler (ListenHandler): they are never handed out one by one.
var errHandlerServer = errors.New("wsqueue: Accept on a server that runs a Handler")

// defaultShutdownTimeoutMs bounds the engine's graceful stop when Shutdown's
// context has no deadline: the engine needs a bound to drop peers that never
// answer its close.
const defaultShutdownTimeoutMs = 5000

// Server is a WebSocket server on the engine's own listeners (no net/http): the
// engine accepts TCP connections and runs the handshake itself, including the
// Config's Subprotocols and AllowedOrigins.
type Server struct {
	eng  *engine
	pool *workerPool // nil unless the server runs a Handler

	mu      sync.Mutex
	addr    net.Addr      // set once the engine is up
	pending []*Conn       // opened, not yet returned by Accept
	ready   chan struct{} // a token when pending gains a connection
	closed  chan struct{} // closed when Shutdown or Close begins
	once    sync.Once
}

// Listen starts a server on addr ("host:port"; a comma-separated list listens
// on each; port 0 picks a free one, see Addr). cfg.Listen is ignored in favour
// of addr. Connections are handed out by Accept.
func Listen(addr string, cfg Config) (*Server, error) {
	return listen(addr, cfg, nil)
}

// ListenHandler starts a server on addr whose connections are run by h on a
// bounded pool of cfg.HandlerWorkers goroutines (see Handler); Accept is not
// used.
func ListenHandler(addr string, cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("wsqueue: nil Handler")
	}
	return listen(addr, cfg, h)
}

func listen(addr string, cfg Config, h Handler) (*Server, error) {
	if addr == "" && cfg.TLSListen == "" {
		return nil, errors.New("wsqueue: empty listen address")
	}
	cfg.Listen = addr
	s := &Server{ready: make(chan struct{}, 1), closed: make(chan struct{})}
	if h != nil {
		s.pool = startWorkerPool(cfg.HandlerWorkers)
	}
	// The engine starts dispatching at once, so the open hook is set first.
	onOpen := s.queueForAccept
	if s.pool != nil {
		onOpen = func(c *Conn) { c.attach(s.pool, h) }
	}
	eng, err := startEngineWith(cfg, false, onOpen)
	if err != nil {
		if s.pool != nil {
			s.pool.stop()
		}
		return nil, err
	}
	s.mu.Lock() // the dispatcher may already be handing out connections
	s.eng = eng
	s.addr = parseAddr(eng.localAddr())
	s.mu.Unlock()
	return s, nil
}

// Addr returns the first listen address (with the port the system picked for
// port 0).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Addrs returns every listen address: addr's, then cfg.TLSListen's (wss://),
// each in order, with the ports the system picked for port 0.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	var out []net.Addr
	for i := 0; ; i++ {
		a := eng.localAddrAt(i)
		if a == "" {
			return out
		}
		out = append(out, parseAddr(a))
	}
}

// queueForAccept runs on the dispatcher: it never blocks. The queue is bounded
// by the engine's MaxConnections.
func (s *Server) queueForAccept(c *Conn) {
	s.mu.Lock()
	local := s.addr
	s.pending = append(s.pending, c)
	s.mu.Unlock()
	c.mu.Lock()
	if c.local == nil {
		c.local = local
	}
	c.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Accept waits for the next connection whose handshake the engine completed.
// After Shutdown or Close it returns ErrServerClosed.
func (s *Server) Accept() (*Conn, error) {
	if s.pool != nil {
		return nil, errHandlerServer
	}
	for {
		select {
		case <-s.closed:
			return nil, ErrServerClosed
		default:
		}
		s.mu.Lock()
		if len(s.pending) > 0 {
			c := s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
			s.mu.Unlock()
			return c, nil
		}
		s.mu.Unlock()
		select {
		case <-s.ready:
		case <-s.closed:
			return nil, ErrServerClosed
		}
	}
}

// Shutdown stops accepting, closes every connection with 1001 (going away)
// after the messages already sent to it, and waits for the peers to complete
// the closing handshake until ctx's deadline (5 s without one); the rest are
// dropped. Readers then see the close, handlers get OnClose, and the engine's
// threads, sockets and goroutines are released before it returns. It returns
// ctx.Err() if ctx ends before the handlers have finished.
func (s *Server) Shutdown(ctx context.Context) error {
	timeoutMs := uint32(defaultShutdownTimeoutMs)
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d < 0 {
			d = 0
		}
		timeoutMs = uint32(d / time.Millisecond)
	}
	return s.shutdown(ctx, timeoutMs)
}

// Close stops the server at once: connections are dropped without waiting for
// their closing handshakes (their readers and handlers still see the close).
func (s *Server) Close() error {
	return s.shutdown(context.Background(), 0)
}

func (s *Server) shutdown(ctx context.Context, timeoutMs uint32) error {
	first := false
	s.once.Do(func() {
		first = true
		close(s.closed)
	})
	if !first {
		return ErrServerClosed
	}
	// stop returns once the dispatcher has routed the last event (every
	// connection's close), so no connection can join pending afterwards.
	s.eng.stop(timeoutMs)
	s.mu.Lock()
	never := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, c := range never {
		c.Close()
	}
	if s.pool == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		s.pool.stop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// The engine's stop may have used up ctx's time on peers that never
		// answered (they were dropped: not an error). Only callbacks still
		// running or queued make it one.
		if s.pool.idle() {
			<-done
			return nil
		}
		return ctx.Err()
	}
}
