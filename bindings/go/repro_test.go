package wsqueue

import (
	"os"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// skipKnownStall skips tests that open many connections in a row: now and then
// the first message on a fresh upgraded connection is never delivered (see
// README.md, known issues). WSQUEUE_GO_KNOWN_STALL=1 runs them.
func skipKnownStall(t *testing.T) {
	if os.Getenv("WSQUEUE_GO_KNOWN_STALL") == "" {
		t.Skip("known stall of a fresh connection's first message; set WSQUEUE_GO_KNOWN_STALL=1 to run")
	}
}

// TestFirstMessageOnManyFreshConnections reproduces the stall: 200 upgrades in
// a row, each echoing one message.
func TestFirstMessageOnManyFreshConnections(t *testing.T) {
	skipKnownStall(t)
	url := serve(t, &Upgrader{}, echoLoop)
	for i := 0; i < 200; i++ {
		c := dial(t, url)
		c.WriteMessage(gorilla.TextMessage, []byte("hello"))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatalf("connection %d: first message not echoed: %v", i, err)
		}
		c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""))
		c.ReadMessage()
		c.Close()
	}
}
