package wsqueue

import (
	"bytes"
	"testing"

	gorilla "github.com/gorilla/websocket"
)

func TestEchoTextAndBinaryWithGorillaClient(t *testing.T) {
	url := serve(t, &Upgrader{}, echoLoop)
	c := dial(t, url)
	for _, m := range []struct {
		mt   int
		data []byte
	}{{gorilla.TextMessage, []byte("hello")}, {gorilla.BinaryMessage, []byte{0, 1, 2, 255}}, {gorilla.TextMessage, []byte{}}} {
		if err := c.WriteMessage(m.mt, m.data); err != nil {
			t.Fatal(err)
		}
		mt, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if mt != m.mt || !bytes.Equal(p, m.data) {
			t.Fatalf("echo: got %d %q, want %d %q", mt, p, m.mt, m.data)
		}
	}
}
