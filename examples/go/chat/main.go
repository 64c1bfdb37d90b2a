// Command chat is a chat room on net/http: an http.ServeMux serves the web page
// of the C demo (examples/web) and takes WebSocket upgrades through
// wsqueue.Upgrader, in gorilla's style (a reader and a writer goroutine per
// user). It speaks the protocol of examples/c/chat_server.c, so the same page
// works with both:
//
//	chat [port=9001] [static_dir=examples/web]
//
//	{"type":"welcome","you":N,"text":"welcome, you are user N"}   to a new user only
//	{"type":"join","user":N,"text":"user N joined"}               to everyone
//	{"type":"chat","from":N,"text":"..."}                         to everyone
//	{"type":"leave","user":N,"text":"user N left"}                to everyone
//
// The WebSocket is at /ws, and at / for requests that ask to upgrade (the page
// connects to the URL it was loaded from). It prints
// "listening on http://127.0.0.1:PORT/" once ready and stops cleanly on SIGINT or
// SIGTERM (close 1001 to every user).
//
// Backpressure: each user has a bounded queue of lines (sendQueueLines); a user
// who lets it fill has stopped reading and is closed with 1008, rather than
// missing lines unnoticed or holding up the room.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"wsqueue"
)

const (
	defaultPort      = 9001
	defaultStaticDir = "examples/web"
	// A chat line, not a file transfer: longer messages are refused with 1009.
	maxMessageSize = 64 << 10
	sendQueueLines = 256
	stopTimeout    = 5 * time.Second
)

type message struct {
	Type string `json:"type"`
	You  uint64 `json:"you,omitempty"`
	User uint64 `json:"user,omitempty"`
	From uint64 `json:"from,omitempty"`
	Text string `json:"text"`
}

type user struct {
	id   uint64
	conn *wsqueue.Conn
	send chan []byte // closed by the room when the user leaves
}

// room is the set of users; every line goes to each user's queue.
type room struct {
	mu       sync.Mutex
	next     uint64
	users    map[*user]struct{}
	shutdown bool
	wg       sync.WaitGroup // every user's goroutines
}

func (r *room) join(c *wsqueue.Conn) *user {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown {
		return nil
	}
	r.next++
	u := &user{id: r.next, conn: c, send: make(chan []byte, sendQueueLines)}
	r.users[u] = struct{}{}
	r.wg.Add(2) // its reader and writer, counted before closeAll can wait
	u.send <- encode(message{Type: "welcome", You: u.id, Text: fmt.Sprintf("welcome, you are user %d", u.id)})
	r.broadcastLocked(message{Type: "join", User: u.id, Text: fmt.Sprintf("user %d joined", u.id)})
	return u
}

func (r *room) leave(u *user) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.users[u]; !ok {
		return
	}
	delete(r.users, u)
	close(u.send)
	r.broadcastLocked(message{Type: "leave", User: u.id, Text: fmt.Sprintf("user %d left", u.id)})
}

func (r *room) broadcast(m message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broadcastLocked(m)
}

func (r *room) broadcastLocked(m message) {
	line := encode(m)
	var slow []*user
	for u := range r.users {
		select {
		case u.send <- line:
		default:
			slow = append(slow, u)
		}
	}
	for _, u := range slow {
		u.conn.WriteControl(wsqueue.CloseMessage, wsqueue.FormatCloseMessage(wsqueue.ClosePolicyViolation, "not reading"), time.Time{})
		delete(r.users, u)
		close(u.send)
	}
}

// closeAll ends every user with 1001 (going away) and refuses new ones.
func (r *room) closeAll() {
	r.mu.Lock()
	r.shutdown = true
	for u := range r.users {
		u.conn.WriteControl(wsqueue.CloseMessage, wsqueue.FormatCloseMessage(wsqueue.CloseGoingAway, "server stopping"), time.Time{})
	}
	r.mu.Unlock()
}

func encode(m message) []byte {
	b, _ := json.Marshal(m)
	return b
}

var upgrader = wsqueue.Upgrader{
	// The page may be opened from a file or another host: any origin.
	CheckOrigin: func(*http.Request) bool { return true },
	// Chat lines are JSON: permessage-deflate with browsers that offer it,
	// as the C chat does.
	EnableCompression: true,
}

func (r *room) serveWS(w http.ResponseWriter, req *http.Request) {
	c, err := upgrader.Upgrade(w, req, nil)
	if err != nil {
		return // Upgrade has answered the request
	}
	c.SetReadLimit(maxMessageSize)
	u := r.join(c)
	if u == nil {
		c.WriteControl(wsqueue.CloseMessage, wsqueue.FormatCloseMessage(wsqueue.CloseGoingAway, "server stopping"), time.Time{})
		c.Close()
		return
	}
	go func() { // the writer: one user's lines, in order
		defer r.wg.Done()
		for line := range u.send {
			if c.WriteMessage(wsqueue.TextMessage, line) != nil {
				break
			}
		}
	}()
	defer r.wg.Done()
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			break
		}
		if mt == wsqueue.TextMessage {
			r.broadcast(message{Type: "chat", From: u.id, Text: string(p)})
		}
	}
	r.leave(u)
	c.Close()
}

func parseArgs(args []string) (port int, staticDir string, ok bool) {
	port, staticDir = defaultPort, defaultStaticDir
	if len(args) > 2 {
		return 0, "", false
	}
	if len(args) == 2 {
		staticDir = args[1]
	}
	if len(args) >= 1 {
		p, err := strconv.Atoi(args[0])
		if err != nil || p < 0 || p > 65535 {
			return 0, "", false
		}
		port = p
	}
	return port, staticDir, true
}

func main() {
	port, staticDir, ok := parseArgs(os.Args[1:])
	if !ok {
		fmt.Fprintf(os.Stderr, "usage: %s [port=%d] [static_dir=%s]\n", os.Args[0], defaultPort, defaultStaticDir)
		os.Exit(2)
	}
	if st, err := os.Stat(staticDir); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "chat: %s is not a directory (pass the page's directory, examples/web)\n", staticDir)
		os.Exit(2)
	}
	if err := wsqueue.SetUpgradeConfig(wsqueue.Config{MaxMessageSize: maxMessageSize}); err != nil {
		fmt.Fprintf(os.Stderr, "chat: %v\n", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	r := &room{users: map[*user]struct{}{}}
	files := http.FileServer(http.Dir(staticDir))
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", r.serveWS)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if wsqueue.IsWebSocketUpgrade(req) {
			r.serveWS(w, req)
			return
		}
		files.ServeHTTP(w, req)
	})
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat: %v (pass another port as the first argument)\n", err)
		os.Exit(1)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	fmt.Printf("listening on http://%s/\n", l.Addr())

	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	hs.Shutdown(ctx) // no new upgrades; hijacked connections are ours to close
	r.closeAll()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "chat: some users did not answer the close in time")
	}
}
