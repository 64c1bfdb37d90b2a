package wsqueue

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	gorilla "github.com/gorilla/websocket"
)

// permessage-deflate (RFC 7692) is the engine's; the binding decides whether a
// client's offer reaches it.

func dialCompressed(t *testing.T, url string) (*gorilla.Conn, *http.Response) {
	t.Helper()
	d := gorilla.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

func echoesCompressible(t *testing.T, c *gorilla.Conn) {
	t.Helper()
	want := []byte(strings.Repeat(`{"user":42,"text":"héllo"}`, 4000))
	if err := c.WriteMessage(gorilla.TextMessage, want); err != nil {
		t.Fatal(err)
	}
	mt, got, err := c.ReadMessage()
	if err != nil || mt != gorilla.TextMessage || !bytes.Equal(got, want) {
		t.Fatalf("echo: type %d, %d bytes, %v; want %d bytes", mt, len(got), err, len(want))
	}
}

func negotiated(resp *http.Response) bool {
	return strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate")
}

func TestUpgradeNegotiatesCompressionOnlyWhenEnabled(t *testing.T) {
	for _, enable := range []bool{false, true} {
		url := serve(t, &Upgrader{EnableCompression: enable}, echoLoop)
		c, resp := dialCompressed(t, url)
		if negotiated(resp) != enable {
			t.Fatalf("EnableCompression %v: response extensions %q", enable, resp.Header.Get("Sec-Websocket-Extensions"))
		}
		echoesCompressible(t, c)
	}
}

func TestListenCompressionFollowsConfig(t *testing.T) {
	for _, tc := range []struct {
		mode DeflateMode
		want bool
	}{{DeflateDefault, true}, {DeflateOff, false}, {DeflateShared, true}, {DeflateDedicated, true}} {
		s := listenForTest(t, Config{Deflate: tc.mode})
		acceptLoop(s, echoLoop)
		c, resp := dialCompressed(t, wsURL(s, "/"))
		if negotiated(resp) != tc.want {
			t.Fatalf("Deflate %d: response extensions %q", tc.mode, resp.Header.Get("Sec-Websocket-Extensions"))
		}
		echoesCompressible(t, c)
	}
}
