// Package xnet offers the server side of golang.org/x/net/websocket on the
// wsqueue engine, for code written against that package: import it as
//
//	import websocket "wsqueue/xnet"
//
// and Handler, Server, Conn (an io.ReadWriteCloser), Message and JSON work as
// before. Every protocol rule is the engine's (RFC 6455, UTF-8 checks, the
// closing handshake), as for the gorilla-style package it is built on.
package xnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"wsqueue"
)

// Frame payload types, as in x/net/websocket.
const (
	ContinuationFrame = 0
	TextFrame         = 1
	BinaryFrame       = 2
	CloseFrame        = 8
	PingFrame         = 9
	PongFrame         = 10
	UnknownFrame      = 255

	// DefaultMaxPayloadBytes is Receive's limit when Conn.MaxPayloadBytes is 0.
	DefaultMaxPayloadBytes = 32 << 20

	// ProtocolVersionHybi13 is the only version spoken (RFC 6455).
	ProtocolVersionHybi13 = 13
)

var (
	// ErrFrameTooLarge is returned by Receive for a message over MaxPayloadBytes.
	ErrFrameTooLarge = errors.New("websocket: frame payload size exceeds limit")
	// ErrNotSupported is returned by the codecs for a value they cannot carry.
	ErrNotSupported = errors.New("websocket: not supported")
)

// Config is the handshake's view of a connection, as in x/net/websocket.
type Config struct {
	// Location is the WebSocket URL the client asked for.
	Location *url.URL
	// Origin is the client's Origin header.
	Origin *url.URL
	// Protocol is the subprotocols offered; a Handshake may narrow it to the
	// one to answer with (at most one).
	Protocol []string
	// Version is ProtocolVersionHybi13.
	Version int
	// Header is added to the 101 response.
	Header http.Header
}

// Addr is a WebSocket location or origin as a net.Addr.
type Addr struct{ *url.URL }

// Network returns "websocket".
func (a *Addr) Network() string { return "websocket" }

// Origin parses the request's Origin header (nil when there is none).
func Origin(config *Config, req *http.Request) (*url.URL, error) {
	origin := req.Header.Get("Origin")
	if origin == "" {
		return nil, nil
	}
	return url.ParseRequestURI(origin)
}

// Server runs Handler on each upgraded request after Handshake (nil: accept
// any origin) has accepted it; an error from Handshake answers 403.
type Server struct {
	Config
	Handshake func(*Config, *http.Request) error
	Handler
}

// Handler is an http.Handler that upgrades and runs the function, accepting a
// request only with a valid Origin, as x/net/websocket's does.
type Handler func(*Conn)

func checkOrigin(config *Config, req *http.Request) (err error) {
	config.Origin, err = Origin(config, req)
	if err == nil && config.Origin == nil {
		return fmt.Errorf("null origin")
	}
	return err
}

// ServeHTTP implements http.Handler.
func (h Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	Server{Handler: h, Handshake: checkOrigin}.ServeHTTP(w, req)
}

// ServeHTTP implements http.Handler.
func (s Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	config := s.Config // a copy per connection
	config.Version = ProtocolVersionHybi13
	config.Protocol = wsqueue.Subprotocols(req)
	scheme := "ws"
	if req.TLS != nil {
		scheme = "wss"
	}
	config.Location = &url.URL{Scheme: scheme, Host: req.Host, Path: req.URL.Path, RawQuery: req.URL.RawQuery}
	if s.Handshake != nil {
		if err := s.Handshake(&config, req); err != nil {
			http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
			return
		}
	} else if o, err := Origin(&config, req); err == nil {
		config.Origin = o
	}
	if len(config.Protocol) > 1 {
		// x/net answers with at most one subprotocol, which a Handshake picks.
		http.Error(w, "websocket: more than one subprotocol to answer with", http.StatusBadRequest)
		return
	}
	header := http.Header{}
	for k, vs := range config.Header {
		header[k] = vs
	}
	if len(config.Protocol) == 1 {
		header.Set("Sec-Websocket-Protocol", config.Protocol[0])
	}
	u := wsqueue.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := u.Upgrade(w, req, header)
	if err != nil {
		return // Upgrade has answered
	}
	ws := &Conn{c: c, config: &config, request: req, PayloadType: TextFrame}
	defer ws.Close()
	s.Handler(ws)
}

// Conn is one server-side WebSocket connection, an io.ReadWriteCloser: Write
// sends one message of PayloadType, Read reads messages as a byte stream.
type Conn struct {
	// PayloadType is the type Write sends: TextFrame (default) or BinaryFrame.
	PayloadType byte
	// MaxPayloadBytes limits the messages Receive takes (0: DefaultMaxPayloadBytes).
	MaxPayloadBytes int

	c       *wsqueue.Conn
	config  *Config
	request *http.Request

	rio     sync.Mutex
	pending []byte // the rest of the message Read is in
	closeMu sync.Mutex
	closed  bool
}

// readMessage returns the next data message; the peer's close is io.EOF.
func (ws *Conn) readMessage() (byte, []byte, error) {
	mt, p, err := ws.c.ReadMessage()
	if err != nil {
		var ce *wsqueue.CloseError
		if errors.As(err, &ce) {
			return 0, nil, io.EOF
		}
		return 0, nil, err
	}
	return byte(mt), p, nil
}

// Read reads message bytes: the rest of the current message, else the next one.
func (ws *Conn) Read(msg []byte) (int, error) {
	ws.rio.Lock()
	defer ws.rio.Unlock()
	for len(ws.pending) == 0 {
		_, p, err := ws.readMessage()
		if err != nil {
			return 0, err
		}
		ws.pending = p
		if len(p) == 0 && len(msg) > 0 {
			continue // an empty message adds nothing to the stream
		}
		break
	}
	n := copy(msg, ws.pending)
	ws.pending = ws.pending[n:]
	return n, nil
}

// Write sends msg as one message of PayloadType.
func (ws *Conn) Write(msg []byte) (int, error) {
	mt := wsqueue.TextMessage
	if ws.PayloadType == BinaryFrame {
		mt = wsqueue.BinaryMessage
	}
	if err := ws.c.WriteMessage(mt, msg); err != nil {
		return 0, err
	}
	return len(msg), nil
}

// Close starts the closing handshake (1000) and releases the connection.
func (ws *Conn) Close() error {
	ws.closeMu.Lock()
	defer ws.closeMu.Unlock()
	if ws.closed {
		return nil
	}
	ws.closed = true
	return ws.c.Close()
}

// IsServerConn reports true: this package serves connections only.
func (ws *Conn) IsServerConn() bool { return true }

// IsClientConn reports false.
func (ws *Conn) IsClientConn() bool { return false }

// LocalAddr returns the WebSocket location, as x/net does for a server.
func (ws *Conn) LocalAddr() net.Addr { return &Addr{ws.config.Location} }

// RemoteAddr returns the client's origin, as x/net does for a server.
func (ws *Conn) RemoteAddr() net.Addr { return &Addr{ws.config.Origin} }

// Config returns the handshake's configuration.
func (ws *Conn) Config() *Config { return ws.config }

// Request returns the upgraded HTTP request.
func (ws *Conn) Request() *http.Request { return ws.request }

// SetDeadline sets the read and write deadlines.
func (ws *Conn) SetDeadline(t time.Time) error {
	ws.c.SetReadDeadline(t)
	return ws.c.SetWriteDeadline(t)
}

// SetReadDeadline sets when reads fail with a timeout.
func (ws *Conn) SetReadDeadline(t time.Time) error { return ws.c.SetReadDeadline(t) }

// SetWriteDeadline sets how long writes may wait for a slow client.
func (ws *Conn) SetWriteDeadline(t time.Time) error { return ws.c.SetWriteDeadline(t) }

// Codec sends and receives values as whole messages.
type Codec struct {
	Marshal   func(v interface{}) (data []byte, payloadType byte, err error)
	Unmarshal func(data []byte, payloadType byte, v interface{}) (err error)
}

// Send marshals v and sends it as one message.
func (cd Codec) Send(ws *Conn, v interface{}) error {
	data, payloadType, err := cd.Marshal(v)
	if err != nil {
		return err
	}
	mt := wsqueue.TextMessage
	if payloadType == BinaryFrame {
		mt = wsqueue.BinaryMessage
	}
	return ws.c.WriteMessage(mt, data)
}

// Receive reads the next whole message into v (the rest of a message that Read
// had started is dropped). A message over MaxPayloadBytes is dropped with
// ErrFrameTooLarge.
func (cd Codec) Receive(ws *Conn, v interface{}) error {
	ws.rio.Lock()
	defer ws.rio.Unlock()
	ws.pending = nil
	payloadType, data, err := ws.readMessage()
	if err != nil {
		return err
	}
	limit := ws.MaxPayloadBytes
	if limit == 0 {
		limit = DefaultMaxPayloadBytes
	}
	if len(data) > limit {
		return ErrFrameTooLarge
	}
	return cd.Unmarshal(data, payloadType, v)
}

func marshalMessage(v interface{}) ([]byte, byte, error) {
	switch data := v.(type) {
	case string:
		return []byte(data), TextFrame, nil
	case []byte:
		return data, BinaryFrame, nil
	}
	return nil, UnknownFrame, ErrNotSupported
}

func unmarshalMessage(msg []byte, payloadType byte, v interface{}) error {
	switch data := v.(type) {
	case *string:
		*data = string(msg)
		return nil
	case *[]byte:
		*data = msg
		return nil
	}
	return ErrNotSupported
}

// Message sends and receives strings (text messages) and byte slices (binary
// messages).
var Message = Codec{marshalMessage, unmarshalMessage}

func marshalJSON(v interface{}) ([]byte, byte, error) {
	b, err := json.Marshal(v)
	return b, TextFrame, err
}

func unmarshalJSON(msg []byte, payloadType byte, v interface{}) error {
	return json.Unmarshal(msg, v)
}

// JSON sends and receives values as JSON text messages.
var JSON = Codec{marshalJSON, unmarshalJSON}
