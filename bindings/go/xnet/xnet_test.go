package xnet

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	xws "golang.org/x/net/websocket"

	"wsqueue"
)

// The clients here are golang.org/x/net/websocket's own (websocket.Dial), the
// peer that code written for that package was tested with.

func TestMain(m *testing.M) {
	if err := wsqueue.SetUpgradeConfig(wsqueue.Config{ReactorThreads: 2, CloseTimeoutMs: 2000}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dialXnet(t *testing.T, url string) *xws.Conn {
	t.Helper()
	ws, err := xws.Dial(url, "", "http://localhost/")
	if err != nil {
		t.Fatalf("x/net dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func TestIoCopyEchoWithXnetClient(t *testing.T) {
	// x/net's classic echo server.
	url := serve(t, Handler(func(ws *Conn) { io.Copy(ws, ws) }))
	ws := dialXnet(t, url)
	// io.Copy echoes in pieces of its 32 KiB buffer, one message each (as on
	// x/net), so the client reads the echo as a stream.
	for _, msg := range []string{"hello", "héllo ✓", strings.Repeat("x", 100000)} {
		if _, err := ws.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(ws, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %d bytes: %v", len(msg), err)
		}
	}
}

func TestMessageCodecKeepsTextAndBinary(t *testing.T) {
	url := serve(t, Handler(func(ws *Conn) {
		for {
			var s string
			if err := Message.Receive(ws, &s); err != nil {
				return
			}
			Message.Send(ws, "text:"+s)
			var b []byte
			if err := Message.Receive(ws, &b); err != nil {
				return
			}
			Message.Send(ws, append([]byte{0xff}, b...))
		}
	}))
	ws := dialXnet(t, url)
	if err := xws.Message.Send(ws, "abc"); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := xws.Message.Receive(ws, &s); err != nil || s != "text:abc" {
		t.Fatalf("text: %q %v", s, err)
	}
	if err := xws.Message.Send(ws, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	// A binary reply with a byte that is not UTF-8: it went out as binary.
	var b []byte
	if err := xws.Message.Receive(ws, &b); err != nil || !bytes.Equal(b, []byte{0xff, 1, 2, 3}) {
		t.Fatalf("binary: %v %v", b, err)
	}
	if err := Message.Send(nil, 42); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("sending an int: %v, want ErrNotSupported", err)
	}
}

type point struct {
	X, Y int
	Name string
}

func TestJSONCodecRoundTrip(t *testing.T) {
	url := serve(t, Handler(func(ws *Conn) {
		var p point
		for JSON.Receive(ws, &p) == nil {
			p.X, p.Y = p.Y, p.X
			JSON.Send(ws, p)
		}
	}))
	ws := dialXnet(t, url)
	if err := xws.JSON.Send(ws, point{1, 2, "é"}); err != nil {
		t.Fatal(err)
	}
	var got point
	if err := xws.JSON.Receive(ws, &got); err != nil || got != (point{2, 1, "é"}) {
		t.Fatalf("JSON: %+v %v", got, err)
	}
}

func TestReadSeesClientCloseAsEOF(t *testing.T) {
	result := make(chan error, 1)
	url := serve(t, Handler(func(ws *Conn) {
		buf := make([]byte, 3)
		var got []byte
		for {
			n, err := ws.Read(buf) // a small buffer: the message comes in pieces
			got = append(got, buf[:n]...)
			if err != nil {
				if err == io.EOF && string(got) == "0123456789" {
					result <- nil
				} else {
					result <- errors.New("read " + string(got) + ": " + err.Error())
				}
				return
			}
		}
	}))
	ws := dialXnet(t, url)
	ws.Write([]byte("0123456789"))
	ws.Close()
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's Read never saw the close")
	}
}

func TestHandlerRefusesRequestsWithoutOrigin(t *testing.T) {
	url := serve(t, Handler(func(ws *Conn) {}))
	_, resp, err := gorilla.DefaultDialer.Dial(url, nil) // no Origin header
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no origin: %v %v, want 403", err, resp)
	}
}

func TestServerHandshakePicksSubprotocolAndSeesConfig(t *testing.T) {
	seen := make(chan *Config, 1)
	url := serve(t, Server{
		Handshake: func(c *Config, r *http.Request) error {
			// As with x/net, a Handshake reads the origin itself.
			o, err := Origin(c, r)
			if err != nil || o == nil || o.Host != "example.org" {
				return errors.New("foreign origin")
			}
			c.Protocol = c.Protocol[len(c.Protocol)-1:]
			return nil
		},
		Handler: func(ws *Conn) {
			seen <- ws.Config()
			io.Copy(ws, ws)
		},
	})
	cfg, err := xws.NewConfig(url+"/room?x=1", "http://example.org/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"v1", "v2"}
	ws, err := xws.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	got := <-seen
	if got.Location.Path != "/room" || got.Location.RawQuery != "x=1" || len(got.Protocol) != 1 || got.Protocol[0] != "v2" {
		t.Fatalf("server config: %+v", got)
	}
	if _, err := xws.Dial(url, "", "http://evil.example/"); err == nil {
		t.Fatal("a foreign origin was accepted")
	}
}

func TestReceiveRefusesMessagesOverMaxPayloadBytes(t *testing.T) {
	result := make(chan error, 2)
	url := serve(t, Handler(func(ws *Conn) {
		ws.MaxPayloadBytes = 10
		var s string
		result <- Message.Receive(ws, &s)
		result <- Message.Receive(ws, &s)
		Message.Send(ws, s)
	}))
	ws := dialXnet(t, url)
	ws.Write([]byte("this is more than ten bytes"))
	ws.Write([]byte("short"))
	if err := <-result; !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("large message: %v, want ErrFrameTooLarge", err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	var s string
	if err := xws.Message.Receive(ws, &s); err != nil || s != "short" {
		t.Fatalf("after the large one: %q %v", s, err)
	}
}
