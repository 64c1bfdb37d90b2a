package wsqueue

import (
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// TestFirstMessageOnManyFreshConnections: 200 upgrades in a row, each client
// writing its first message the moment it reads the 101. The engine used to let
// such a frame overtake the Open event now and then (about 1 upgrade in 100),
// and the binding, which routes messages by open connection, lost it.
func TestFirstMessageOnManyFreshConnections(t *testing.T) {
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
