package wsqueue

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HandshakeError describes a request that is not a valid WebSocket upgrade.
type HandshakeError struct{ message string }

func (e HandshakeError) Error() string { return e.message }

// ErrBadHandshake is returned when the engine refused the upgrade.
var ErrBadHandshake = errors.New("websocket: bad handshake")

// Upgrader takes HTTP requests over from net/http, as gorilla's does. The
// checks that depend on the Upgrader (origin, subprotocol) run in Go before the
// socket is hijacked; the socket and the bytes net/http already read then go
// to the engine (wsq_adopt), which validates the handshake again, writes the
// 101 response and runs the connection.
type Upgrader struct {
	// HandshakeTimeout bounds the wait for the engine to finish the handshake.
	HandshakeTimeout time.Duration
	// ReadBufferSize and WriteBufferSize are accepted for compatibility; the
	// engine sizes its own buffers.
	ReadBufferSize, WriteBufferSize int
	// WriteBufferPool is accepted for compatibility and unused.
	WriteBufferPool interface{}
	// Subprotocols lists the server's subprotocols in order of preference.
	Subprotocols []string
	// Error writes the HTTP error response (default: http.Error).
	Error func(w http.ResponseWriter, r *http.Request, status int, reason error)
	// CheckOrigin returns true to accept the request's Origin (default: same
	// host as the request, as in gorilla).
	CheckOrigin func(r *http.Request) bool
	// EnableCompression lets the engine negotiate permessage-deflate (RFC
	// 7692) with a client that offers it, by the engine's policy
	// (SetUpgradeConfig's Deflate: by default without context takeover, as
	// gorilla does); without it the offer is not passed on and messages go
	// uncompressed, as with gorilla.
	EnableCompression bool
}

var (
	defaultEngineMu  sync.Mutex
	defaultEngine    *engine
	defaultEngineCfg Config
)

// SetUpgradeConfig sets the engine settings used by Upgrade (limits, timeouts,
// threads). It must be called before the first Upgrade; later it returns an
// error.
func SetUpgradeConfig(cfg Config) error {
	defaultEngineMu.Lock()
	defer defaultEngineMu.Unlock()
	if defaultEngine != nil {
		return errors.New("wsqueue: the upgrade engine is already running")
	}
	defaultEngineCfg = cfg
	return nil
}

func upgradeEngine() (*engine, error) {
	defaultEngineMu.Lock()
	defer defaultEngineMu.Unlock()
	if defaultEngine != nil {
		return defaultEngine, nil
	}
	cfg := defaultEngineCfg
	// The engine needs one listener; this one is on a loopback port nobody is
	// told about. Origins and subprotocols are the Upgrader's business.
	cfg.Listen = "127.0.0.1:0"
	cfg.AllowedOrigins, cfg.Subprotocols, cfg.StaticDir = "", "", ""
	e, err := startEngine(cfg, true)
	if err != nil {
		return nil, err
	}
	defaultEngine = e
	return e, nil
}

func (u *Upgrader) returnError(w http.ResponseWriter, r *http.Request, status int, reason string) (*Conn, error) {
	err := HandshakeError{reason}
	if u.Error != nil {
		u.Error(w, r, status, err)
	} else {
		w.Header().Set("Sec-Websocket-Version", "13")
		http.Error(w, http.StatusText(status), status)
	}
	return nil, err
}

func checkSameOrigin(r *http.Request) bool {
	origin := r.Header["Origin"]
	if len(origin) == 0 {
		return true
	}
	u, err := url.Parse(origin[0])
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func (u *Upgrader) selectSubprotocol(r *http.Request, responseHeader http.Header) string {
	if u.Subprotocols != nil {
		offered := Subprotocols(r)
		for _, s := range u.Subprotocols {
			for _, o := range offered {
				if o == s {
					return s
				}
			}
		}
		return ""
	}
	if responseHeader != nil {
		return responseHeader.Get("Sec-Websocket-Protocol")
	}
	return ""
}

// Upgrade upgrades the HTTP connection to a WebSocket connection. On failure
// before the hijack it answers with an HTTP error (through u.Error).
//
// The work is split into functions that run one after another, each with a
// small frame, on purpose: Upgrade runs on net/http's goroutine for the
// connection, whose stack stays as large as it once grew (and net/http's own
// frame is 1.1 KiB of it) for the connection's whole life in the
// goroutine-per-connection style.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	if _, err := u.check(w, r, responseHeader); err != nil {
		return nil, err
	}
	return u.handOver(w, r, responseHeader)
}

// check answers (through u.Error) a request that Upgrade refuses before the
// hijack, and returns the error; nil, nil for a request it takes.
//
//go:noinline
func (u *Upgrader) check(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	const badHandshake = "websocket: the client is not using the websocket protocol: "
	if !tokenListContainsValue(r.Header, "Connection", "upgrade") {
		return u.returnError(w, r, http.StatusBadRequest, badHandshake+"'upgrade' token not found in 'Connection' header")
	}
	if !tokenListContainsValue(r.Header, "Upgrade", "websocket") {
		return u.returnError(w, r, http.StatusBadRequest, badHandshake+"'websocket' token not found in 'Upgrade' header")
	}
	if r.Method != http.MethodGet {
		return u.returnError(w, r, http.StatusMethodNotAllowed, badHandshake+"request method is not GET")
	}
	if !tokenListContainsValue(r.Header, "Sec-Websocket-Version", "13") {
		return u.returnError(w, r, http.StatusBadRequest, "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header")
	}
	if _, ok := responseHeader["Sec-Websocket-Extensions"]; ok {
		return u.returnError(w, r, http.StatusInternalServerError, "websocket: application specific 'Sec-WebSocket-Extensions' headers are unsupported")
	}
	checkOrigin := u.CheckOrigin
	if checkOrigin == nil {
		checkOrigin = checkSameOrigin
	}
	if !checkOrigin(r) {
		return u.returnError(w, r, http.StatusForbidden, "websocket: request origin not allowed by Upgrader.CheckOrigin")
	}
	if r.Header.Get("Sec-Websocket-Key") == "" {
		return u.returnError(w, r, http.StatusBadRequest, "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is missing or blank")
	}
	if _, ok := w.(http.Hijacker); !ok {
		return u.returnError(w, r, http.StatusInternalServerError, "websocket: response does not implement http.Hijacker")
	}
	return nil, nil
}

// handOver hijacks the checked request's connection, gives it to the engine
// and completes the handshake there.
//
//go:noinline
func (u *Upgrader) handOver(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	eng, c, err := u.adoptHijacked(w, r)
	if err != nil {
		return nil, err
	}
	return u.completeHandshake(eng, c, u.selectSubprotocol(r, responseHeader), responseHeader)
}

// adoptHijacked hijacks the connection and hands its socket, with the request
// head and any bytes already read, to the engine.
//
//go:noinline
func (u *Upgrader) adoptHijacked(w http.ResponseWriter, r *http.Request) (*engine, *Conn, error) {
	eng, err := upgradeEngine()
	if err != nil {
		_, err = u.returnError(w, r, http.StatusServiceUnavailable, "websocket: "+err.Error())
		return nil, nil, err
	}
	netConn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		_, err = u.returnError(w, r, http.StatusInternalServerError, err.Error())
		return nil, nil, err
	}
	remote, local := netConn.RemoteAddr(), netConn.LocalAddr()
	initial := requestHead(r, u.EnableCompression)
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent after its request head (its first frames).
		b, _ := brw.Reader.Peek(n)
		initial = append(initial, b...)
	}
	releaseHijackBuffers(brw, netConn)
	fd, err := dupSocket(netConn)
	netConn.Close()
	if err != nil {
		return nil, nil, err
	}
	c, err := eng.adopt(fd, initial)
	if err != nil {
		return nil, nil, err
	}
	// The dispatcher may be filling in the Open event's details meanwhile.
	c.mu.Lock()
	c.remote, c.local = remote, local
	c.mu.Unlock()
	return eng, c, nil
}

// completeHandshake answers the engine's upgrade request for c and waits until
// the connection is open.
//
//go:noinline
func (u *Upgrader) completeHandshake(eng *engine, c *Conn, subprotocol string, responseHeader http.Header) (*Conn, error) {
	var deadline int64
	if u.HandshakeTimeout > 0 {
		deadline = time.Now().Add(u.HandshakeTimeout).UnixNano()
	}
	for {
		ev, err := c.next(deadline)
		if err != nil {
			eng.reject(c.id, http.StatusServiceUnavailable, "")
			c.Close()
			return nil, err
		}
		switch ev.typ {
		case evUpgrade:
			// The subprotocol goes as its own argument, not as a header.
			if err := eng.accept(c.id, subprotocol, responseHeader, "Sec-Websocket-Protocol"); err != nil {
				eng.reject(c.id, http.StatusBadRequest, "")
				c.Close()
				return nil, err
			}
		case evOpen:
			return c, nil
		case evClose:
			c.Close()
			return nil, ErrBadHandshake
		}
	}
}

// releaseHijackBuffers swaps the 8 KiB of buffers behind the hijacked reader
// and writer (net/http's own, which it keeps reachable from its connection for
// as long as the handler runs, that is for the connection's whole life in the
// goroutine-per-connection style) for tiny ones over the closed socket. The
// engine reads and writes the socket from now on, and net/http never touches a
// hijacked connection's buffers again; without this they are most of what an
// idle connection costs.
func releaseHijackBuffers(brw *bufio.ReadWriter, closed net.Conn) {
	*brw.Reader = *bufio.NewReaderSize(closed, 16)
	*brw.Writer = *bufio.NewWriterSize(closed, 1)
}

// requestHead rebuilds the request head net/http parsed, for the engine to
// validate and answer.
func requestHead(r *http.Request, offerExtensions bool) []byte {
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(r.RequestURI)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(r.Host)
	b.WriteString("\r\n")
	for k, vs := range r.Header {
		if !offerExtensions && strings.EqualFold(k, "Sec-Websocket-Extensions") {
			continue // the engine then declines compression for this one
		}
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// dupSocket returns a duplicate of the connection's descriptor for the engine
// (the original is closed by the caller through net.Conn).
func dupSocket(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("websocket: hijacked connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	err = raw.Control(func(s uintptr) {
		fd, dupErr = syscall.Dup(int(s))
		if dupErr == nil {
			syscall.CloseOnExec(fd)
		}
	})
	if err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	return fd, nil
}

func closeFD(fd int) { syscall.Close(fd) }

// Subprotocols returns the subprotocols the client offered.
func Subprotocols(r *http.Request) []string {
	h := strings.TrimSpace(r.Header.Get("Sec-Websocket-Protocol"))
	if h == "" {
		return nil
	}
	ps := strings.Split(h, ",")
	for i := range ps {
		ps[i] = strings.TrimSpace(ps[i])
	}
	return ps
}

// IsWebSocketUpgrade reports whether the request asks for a WebSocket upgrade.
func IsWebSocketUpgrade(r *http.Request) bool {
	return tokenListContainsValue(r.Header, "Connection", "upgrade") &&
		tokenListContainsValue(r.Header, "Upgrade", "websocket")
}

func tokenListContainsValue(h http.Header, name, value string) bool {
	for _, v := range h[name] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), value) {
				return true
			}
		}
	}
	return false
}
