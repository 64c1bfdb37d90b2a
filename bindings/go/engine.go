package wsqueue

/*
#include <stdlib.h>
#include "wsqueue.h"
*/
import "C"

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Config mirrors the engine's wsq_config_t (docs/CONFIG.md, include/wsqueue.h);
// durations are in milliseconds. Zero fields take the engine's defaults (so a
// setting whose C value 0 means "off" cannot be set to 0 here, except through
// its default). An out-of-range value makes Listen (or the first Upgrade) fail
// with the engine's explanation.
type Config struct {
	// Listen is a comma-separated list of addresses ("127.0.0.1:0" picks a free
	// port). Only Listen uses it; the engine behind Upgrade listens on a private
	// loopback port that nobody is told about.
	Listen             string
	ReactorThreads     uint32
	MaxConnections     uint32
	MaxMessageSize     uint64
	SendQueueSoftLimit uint64
	SendQueueHardLimit uint64
	SendQueueLowWater  uint64
	HandshakeTimeoutMs uint32
	IdleTimeoutMs      uint32
	PingIntervalMs     uint32
	PongTimeoutMs      uint32
	CloseTimeoutMs     uint32
	FailureGraceMs     uint32
	MaxHeadBytes       uint32
	MaxHeaders         uint32
	EventQueueCapacity uint32
	DeflateWindowBits  uint32
	DeflateMinSize     uint64
	DeflateLevel       uint32
	// Deflate chooses how permessage-deflate (RFC 7692) is answered to clients
	// that offer it on Listen (Upgrade decides per request, by
	// Upgrader.EnableCompression, on an engine with the default).
	Deflate DeflateMode
	// MaxBufferedBytes bounds the bytes queued for writing over all
	// connections (default 1 GiB); over it writes wait (retrying, until the
	// write deadline) for other connections to drain.
	MaxBufferedBytes uint64
	// SlowConsumerClose closes (1008) a connection whose send would pass
	// SendQueueHardLimit, instead of only refusing the send.
	SlowConsumerClose bool
	// StaticDir is served to plain HTTP GET requests (Listen only); "" answers 404.
	StaticDir string
	// Subprotocols and AllowedOrigins are comma-separated (Listen only; Upgrade
	// decides both in Go through the Upgrader).
	Subprotocols   string
	AllowedOrigins string
	// HandlerWorkers is the number of goroutines that run a Handler's
	// callbacks (ListenHandler, UpgradeHandler); 0: 2 x GOMAXPROCS, at least 4.
	// Negative (ListenHandler only): no workers, the dispatcher runs the
	// callbacks itself, inside its poll batch, so that replies are corked and
	// written once per connection per batch. Callbacks must then never block,
	// and writes do not wait for a drain (ErrWriteQueueFull at the hard limit).
	HandlerWorkers int
	// TLSListen is a comma-separated list of wss:// addresses (Listen and
	// ListenHandler only: behind Upgrade, net/http does TLS), bound after the
	// plain ones (see Server.Addrs), each presenting the certificate chain
	// (leaf first) and private key below: PEM files, or PEM bytes, which win
	// when set. TLS 1.2 and 1.3, ALPN http/1.1. A certificate or key that
	// cannot be read or used makes Listen fail (WSQ_ERR_TLS). With TLSListen
	// set, Listen's addr may be "" for a wss://-only server.
	TLSListen         string
	TLSCertChainFile  string
	TLSPrivateKeyFile string
	TLSCertChainPEM   []byte
	TLSPrivateKeyPEM  []byte
	// MaxQueuedReadBytes bounds the bytes of received messages waiting for a
	// connection's reader in Go. A connection over it is closed with 1008: the
	// dispatcher serves every connection and must never wait for one reader.
	// Default 64 MiB.
	MaxQueuedReadBytes int
}

const defaultMaxQueuedReadBytes = 64 << 20

// DeflateMode is Config.Deflate: wsq_config_t.deflate.
type DeflateMode uint32

const (
	// DeflateDefault is the engine's default, DeflateShared.
	DeflateDefault DeflateMode = iota
	// DeflateOff declines permessage-deflate.
	DeflateOff
	// DeflateShared compresses without context takeover, with one compressor
	// shared per reactor: little memory per connection.
	DeflateShared
	// DeflateDedicated keeps a compression context per connection where the
	// client allows it: better ratios, more memory.
	DeflateDedicated
)

// resultError is a failed wsq_ call: the engine's code and its detail text.
type resultError struct {
	code   uint32
	detail string
}

func (e *resultError) Error() string {
	kind := C.GoString(C.wsq_strerror(C.uint32_t(e.code)))
	switch {
	case e.detail == "":
		return "wsqueue: " + kind
	case strings.HasPrefix(e.detail, kind): // the engine's own errors name their kind
		return "wsqueue: " + e.detail
	default:
		return "wsqueue: " + kind + ": " + e.detail
	}
}

// check turns a wsq_result_t into an error (nil for WSQ_OK and WSQ_BACKPRESSURE).
// It must run on the thread that made the call, for wsq_last_error.
func check(r C.wsq_result_t) error {
	if r == C.WSQ_OK || r == C.WSQ_BACKPRESSURE {
		return nil
	}
	return &resultError{code: uint32(r), detail: C.GoString(C.wsq_last_error())}
}

// engine is one wsqueue server and the goroutine that dispatches its events.
type engine struct {
	srv      *C.wsq_server_t
	softLim  uint64
	maxQueue int

	mu    sync.RWMutex // guards conns; held for writing around wsq_adopt
	conns map[uint64]*Conn

	// onOpen receives connections the engine accepted on its own listeners
	// (Listen), on the dispatcher (it must not block); nil for the Upgrade engine.
	onOpen func(c *Conn)

	events   *eventWaiter
	out      *outbox // nil when the limits leave no room for it (outboxUsable)
	stopping atomic.Bool
	stopOnce sync.Once
	done     chan struct{} // closed when the dispatcher has returned
}

const pollBatch = 256

func startEngine(cfg Config, manualAccept bool) (*engine, error) {
	return startEngineWith(cfg, manualAccept, nil)
}

// startEngineWith starts an engine whose dispatcher hands every connection the
// engine opened on its own (not adopted) to onOpen, from the dispatcher.
func startEngineWith(cfg Config, manualAccept bool, onOpen func(c *Conn)) (*engine, error) {
	var c C.wsq_config_t
	if err := check(C.wsq_config_init(&c)); err != nil {
		return nil, err
	}
	var cstrs []*C.char
	defer func() {
		for _, p := range cstrs {
			C.free(unsafe.Pointer(p))
		}
	}()
	str := func(s string) *C.char {
		p := C.CString(s)
		cstrs = append(cstrs, p)
		return p
	}
	listen := cfg.Listen
	if listen == "" && cfg.TLSListen == "" {
		listen = "127.0.0.1:0"
	}
	c.listen = str(listen)
	if cfg.TLSListen != "" {
		c.tls_listen = str(cfg.TLSListen)
		if cfg.TLSCertChainFile != "" {
			c.tls_cert_chain_file = str(cfg.TLSCertChainFile)
		}
		if cfg.TLSPrivateKeyFile != "" {
			c.tls_private_key_file = str(cfg.TLSPrivateKeyFile)
		}
		// Copied into C memory: the engine reads them during wsq_server_start only.
		if len(cfg.TLSCertChainPEM) > 0 {
			p := C.CBytes(cfg.TLSCertChainPEM)
			cstrs = append(cstrs, (*C.char)(p))
			c.tls_cert_chain_pem = (*C.uint8_t)(p)
			c.tls_cert_chain_pem_len = C.size_t(len(cfg.TLSCertChainPEM))
		}
		if len(cfg.TLSPrivateKeyPEM) > 0 {
			p := C.CBytes(cfg.TLSPrivateKeyPEM)
			cstrs = append(cstrs, (*C.char)(p))
			c.tls_private_key_pem = (*C.uint8_t)(p)
			c.tls_private_key_pem_len = C.size_t(len(cfg.TLSPrivateKeyPEM))
		}
	}
	setU32 := func(dst *C.uint32_t, v uint32) {
		if v != 0 {
			*dst = C.uint32_t(v)
		}
	}
	setU64 := func(dst *C.uint64_t, v uint64) {
		if v != 0 {
			*dst = C.uint64_t(v)
		}
	}
	setU32(&c.reactor_threads, cfg.ReactorThreads)
	setU32(&c.max_connections, cfg.MaxConnections)
	setU64(&c.max_message_size, cfg.MaxMessageSize)
	setU64(&c.max_frame_size, cfg.MaxMessageSize)
	setU64(&c.send_queue_soft_limit, cfg.SendQueueSoftLimit)
	setU64(&c.send_queue_hard_limit, cfg.SendQueueHardLimit)
	setU64(&c.send_queue_low_water, cfg.SendQueueLowWater)
	setU32(&c.handshake_timeout_ms, cfg.HandshakeTimeoutMs)
	setU32(&c.idle_timeout_ms, cfg.IdleTimeoutMs)
	setU32(&c.ping_interval_ms, cfg.PingIntervalMs)
	setU32(&c.close_timeout_ms, cfg.CloseTimeoutMs)
	setU32(&c.pong_timeout_ms, cfg.PongTimeoutMs)
	setU32(&c.failure_grace_ms, cfg.FailureGraceMs)
	setU32(&c.max_head_bytes, cfg.MaxHeadBytes)
	setU32(&c.max_headers, cfg.MaxHeaders)
	setU32(&c.event_queue_capacity, cfg.EventQueueCapacity)
	setU32(&c.deflate_window_bits, cfg.DeflateWindowBits)
	setU64(&c.deflate_min_size, cfg.DeflateMinSize)
	setU32(&c.deflate_level, cfg.DeflateLevel)
	setU64(&c.max_buffered_bytes, cfg.MaxBufferedBytes)
	switch cfg.Deflate {
	case DeflateOff:
		c.deflate = C.WSQ_DEFLATE_OFF
	case DeflateShared:
		c.deflate = C.WSQ_DEFLATE_SHARED
	case DeflateDedicated:
		c.deflate = C.WSQ_DEFLATE_DEDICATED
	}
	if cfg.SlowConsumerClose {
		c.slow_consumer = C.WSQ_SLOW_CONSUMER_CLOSE
	}
	if cfg.StaticDir != "" {
		c.static_dir = str(cfg.StaticDir)
	}
	if cfg.Subprotocols != "" {
		c.subprotocols = str(cfg.Subprotocols)
	}
	if cfg.AllowedOrigins != "" {
		c.allowed_origins = str(cfg.AllowedOrigins)
	}
	c.manual_accept = C.bool(manualAccept)
	// Ping and pong handlers need the frames; the engine still answers pings.
	c.deliver_ping_pong = true

	runtime.LockOSThread() // wsq_last_error is per thread
	var srv *C.wsq_server_t
	err := check(C.wsq_server_start(&c, &srv))
	runtime.UnlockOSThread()
	if err != nil {
		return nil, err
	}
	e := &engine{
		srv:      srv,
		softLim:  uint64(c.send_queue_soft_limit),
		maxQueue: cfg.MaxQueuedReadBytes,
		conns:    make(map[uint64]*Conn),
		onOpen:   onOpen,
		done:     make(chan struct{}),
	}
	if e.maxQueue <= 0 {
		e.maxQueue = defaultMaxQueuedReadBytes
	}
	var fd C.int
	if err := check(C.wsq_server_event_fd(srv, &fd)); err != nil {
		C.wsq_server_free(srv)
		return nil, err
	}
	w, err := newEventWaiter(int(fd))
	if err != nil {
		C.wsq_server_free(srv)
		return nil, err
	}
	e.events = w
	if outboxUsable(uint64(c.send_queue_soft_limit), uint64(c.send_queue_hard_limit)) {
		e.out = newOutbox(e)
	}
	go e.dispatch()
	return e, nil
}

// localAddr returns the engine's first listen address as "ip:port".
func (e *engine) localAddr() string {
	return e.localAddrAt(0)
}

// localAddrAt returns listen address number i ("" past the last one).
func (e *engine) localAddrAt(i int) string {
	var buf [64]C.char
	if C.wsq_server_local_addr(e.srv, C.size_t(i), &buf[0], C.size_t(len(buf))) != C.WSQ_OK {
		return ""
	}
	return C.GoString(&buf[0])
}

// stop closes every connection (1001 after their queued messages, waiting up to
// timeoutMs), lets the dispatcher deliver the last events, then frees the server.
func (e *engine) stop(timeoutMs uint32) {
	e.stopOnce.Do(func() {
		if e.out != nil {
			e.out.stop() // what was written goes before the engine's 1001
		}
		C.wsq_server_stop(e.srv, C.uint32_t(timeoutMs))
		// The last events (every connection's close) are queued now: the
		// dispatcher drains them, sees the flag and returns.
		e.stopping.Store(true)
		e.events.wake()
		<-e.done
		C.wsq_server_free(e.srv)
		e.events.close()
		if e.out != nil {
			e.out.free()
		}
	})
}

// dispatch is the one goroutine that polls the engine: it copies each event out
// of library memory and routes it to its connection's queue, never blocking on a
// connection (a reader that falls behind by MaxQueuedReadBytes is closed).
func (e *engine) dispatch() {
	defer close(e.done)
	evs := (*[pollBatch]C.wsq_event_t)(C.calloc(pollBatch, C.size_t(unsafe.Sizeof(C.wsq_event_t{}))))
	defer C.free(unsafe.Pointer(evs))
	for {
		if e.pollOnce(evs) > 0 {
			// Let the goroutines this batch woke run (and write their
			// replies into the outbox) before the next poll: with few
			// threads, and one message in flight per connection, the next
			// poll then finds more events and the flusher more replies, so
			// the hand-overs between the engine's reactor thread and Go's
			// are paid per larger batch (A/B in bench/RESULTS.md,
			// 2026-12-05).
			runtime.Gosched()
			continue
		}
		if e.stopping.Load() {
			// The flag was set once the last events were queued: an empty poll
			// from before it may have missed them, one from now on cannot.
			for e.pollOnce(evs) > 0 {
			}
			return
		}
		e.events.wait()
	}
}

// pollOnce routes one batch of waiting events, without waiting for any.
func (e *engine) pollOnce(evs *[pollBatch]C.wsq_event_t) int {
	// The engine corks the sends of the thread that polled until that thread
	// releases the batch. Holding the thread from poll to release keeps every
	// other goroutine off it meanwhile, so their sends are never caught in the
	// cork, and the release comes from the thread that polled.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n C.size_t
	if C.wsq_poll(e.srv, &evs[0], pollBatch, 0, &n) != C.WSQ_OK || n == 0 {
		return 0
	}
	for i := 0; i < int(n); i++ {
		e.route(&evs[i])
	}
	C.wsq_events_release(&evs[0], n)
	return int(n)
}

func (e *engine) route(ev *C.wsq_event_t) {
	id := uint64(ev.conn)
	typ := uint32(ev.event_type)
	e.mu.RLock()
	c := e.conns[id]
	e.mu.RUnlock()
	if c == nil {
		if typ == C.WSQ_EVENT_OPEN && e.onOpen != nil {
			c = newConn(e, id)
			c.fillOpen(ev)
			e.mu.Lock()
			e.conns[id] = c
			e.mu.Unlock()
			e.onOpen(c)
		}
		return
	}
	switch typ {
	case C.WSQ_EVENT_DRAIN:
		c.drained()
		return
	case C.WSQ_EVENT_CLOSE:
		e.mu.Lock()
		delete(e.conns, id)
		e.mu.Unlock()
		c.push(inEvent{typ: typ, code: int(ev.close_code), clean: bool(ev.clean),
			text: C.GoStringN(ev.reason, C.int(ev.reason_len))})
		return
	case C.WSQ_EVENT_OPEN, C.WSQ_EVENT_UPGRADE_REQUEST:
		c.fillOpen(ev)
		c.push(inEvent{typ: typ})
		return
	}
	var data []byte
	if ev.len > 0 {
		data = C.GoBytes(unsafe.Pointer(ev.data), C.int(ev.len))
	}
	if !c.push(inEvent{typ: typ, kind: int(ev.message_kind), data: data}) {
		// The reader fell too far behind: a defined outcome, like the engine's
		// slow-consumer policy on the sending side.
		e.close(id, ClosePolicyViolation, "reader too slow")
	}
}

// Calls into the engine. Each returns a Go error for a failure (nil for
// WSQ_OK) and says whether the connection is now over its soft limit.

func (e *engine) send(id uint64, kind int, data []byte) (backpressure bool, code uint32) {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	r := C.wsq_send(e.srv, C.uint64_t(id), C.uint32_t(kind), p, C.size_t(len(data)))
	runtime.KeepAlive(data)
	return r == C.WSQ_BACKPRESSURE, uint32(r)
}

func (e *engine) buffered(id uint64) (uint64, bool) {
	var n C.uint64_t
	if C.wsq_buffered_amount(e.srv, C.uint64_t(id), &n) != C.WSQ_OK {
		return 0, false
	}
	return uint64(n), true
}

// budgetRefusals is how many sends the engine has refused at the server-wide
// budget (MaxBufferedBytes), on any path; 0 if the counters cannot be read.
func (e *engine) budgetRefusals() uint64 {
	var st C.wsq_stats_t
	if C.wsq_stats(e.srv, &st) != C.WSQ_OK {
		return 0
	}
	return uint64(st.budget_refusals)
}

func (e *engine) ping(id uint64, data []byte) uint32 {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	r := C.wsq_ping(e.srv, C.uint64_t(id), p, C.size_t(len(data)))
	runtime.KeepAlive(data)
	return uint32(r)
}

func (e *engine) close(id uint64, code int, reason string) uint32 {
	var p *C.char
	if reason != "" {
		p = C.CString(reason)
		defer C.free(unsafe.Pointer(p))
	}
	return uint32(C.wsq_close(e.srv, C.uint64_t(id), C.uint16_t(code), p, C.size_t(len(reason))))
}

// accept completes a manual-accept handshake with the chosen subprotocol and
// extra response headers (but the one named skip, compared without case).
func (e *engine) accept(id uint64, subprotocol string, header map[string][]string, skip string) error {
	var cstrs []*C.char
	defer func() {
		for _, p := range cstrs {
			C.free(unsafe.Pointer(p))
		}
	}()
	str := func(s string) *C.char {
		p := C.CString(s)
		cstrs = append(cstrs, p)
		return p
	}
	var sp *C.char
	if subprotocol != "" {
		sp = str(subprotocol)
	}
	var hs *C.wsq_header_t
	count := 0
	for k, vs := range header {
		if !strings.EqualFold(k, skip) {
			count += len(vs)
		}
	}
	if count > 0 {
		hs = (*C.wsq_header_t)(C.calloc(C.size_t(count), C.size_t(unsafe.Sizeof(C.wsq_header_t{}))))
		defer C.free(unsafe.Pointer(hs))
		arr := unsafe.Slice(hs, count)
		i := 0
		for k, vs := range header {
			if strings.EqualFold(k, skip) {
				continue
			}
			for _, v := range vs {
				arr[i].name = str(k)
				arr[i].value = str(v)
				i++
			}
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(C.wsq_accept(e.srv, C.uint64_t(id), sp, hs, C.size_t(count)))
}

func (e *engine) reject(id uint64, status int, body string) {
	var p *C.char
	if body != "" {
		p = C.CString(body)
		defer C.free(unsafe.Pointer(p))
	}
	C.wsq_reject(e.srv, C.uint64_t(id), C.uint16_t(status), p, C.size_t(len(body)))
}

// adopt hands the engine a socket and the bytes already read from it, and
// registers the connection before the dispatcher can see any of its events.
func (e *engine) adopt(fd int, initial []byte) (*Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var id C.uint64_t
	runtime.LockOSThread()
	r := C.wsq_adopt(e.srv, C.int(fd), unsafe.Pointer(&initial[0]), C.size_t(len(initial)), &id)
	err := check(r)
	runtime.UnlockOSThread()
	runtime.KeepAlive(initial)
	if err != nil {
		if r == C.WSQ_ERR_INVALID_ARGUMENT || r == C.WSQ_ERR_BAD_HANDLE {
			closeFD(fd) // still ours
		}
		return nil, err
	}
	c := newConn(e, uint64(id))
	e.conns[uint64(id)] = c
	return c, nil
}

func (c *Conn) fillOpen(ev *C.wsq_event_t) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.subprotocol != nil {
		c.subprotocol = C.GoString(ev.subprotocol)
	} else {
		c.subprotocol = ""
	}
	if c.remote == nil && ev.remote_addr != nil {
		c.remote = parseAddr(C.GoString(ev.remote_addr))
	}
	if c.path == "" && ev.path != nil {
		c.path = C.GoString(ev.path)
	}
}

// Version is the engine library's version.
func Version() string { return C.GoString(C.wsq_version()) }

func codeError(code uint32) error {
	switch code {
	case C.WSQ_OK, C.WSQ_BACKPRESSURE:
		return nil
	case C.WSQ_ERR_CLOSED, C.WSQ_ERR_NOT_FOUND, C.WSQ_ERR_STOPPED, C.WSQ_ERR_BAD_HANDLE:
		return ErrCloseSent
	}
	return &resultError{code: code}
}

const (
	resQueueFull       = uint32(C.WSQ_ERR_QUEUE_FULL)
	resClosed          = uint32(C.WSQ_ERR_CLOSED)
	resNotFound        = uint32(C.WSQ_ERR_NOT_FOUND)
	resStopped         = uint32(C.WSQ_ERR_STOPPED)
	resBadHandle       = uint32(C.WSQ_ERR_BAD_HANDLE) // the server was shut down and freed
	resOK              = uint32(C.WSQ_OK)
	resBackpressure    = uint32(C.WSQ_BACKPRESSURE)
	resInvalidArgument = uint32(C.WSQ_ERR_INVALID_ARGUMENT)

	evOpen    = uint32(C.WSQ_EVENT_OPEN)
	evMessage = uint32(C.WSQ_EVENT_MESSAGE)
	evClose   = uint32(C.WSQ_EVENT_CLOSE)
	evUpgrade = uint32(C.WSQ_EVENT_UPGRADE_REQUEST)
	evPing    = uint32(C.WSQ_EVENT_PING)
	evPong    = uint32(C.WSQ_EVENT_PONG)
)

func canonicalHeaderKey(k string) string {
	// textproto's canonical form, without importing net/textproto here.
	b := []byte(strings.ToLower(k))
	up := true
	for i, ch := range b {
		if up && ch >= 'a' && ch <= 'z' {
			b[i] = ch - 'a' + 'A'
		}
		up = ch == '-'
	}
	return string(b)
}
