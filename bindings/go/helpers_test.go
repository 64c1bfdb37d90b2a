package wsqueue

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	gorilla "github.com/gorilla/websocket"
)

// serve starts an HTTP server on 127.0.0.1 whose handler upgrades with u and
// runs fn; it is closed when the test ends.
func serve(t *testing.T, u *Upgrader, fn func(c *Conn)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		fn(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string) *gorilla.Conn {
	t.Helper()
	c, _, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func echoLoop(c *Conn) {
	defer c.Close()
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, p); err != nil {
			return
		}
	}
}

func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}
