package wsqueue

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// gorilla/websocket's own examples (v1.5.3), copied from the module cache at
// test time with only the import line changed, built against this package and
// driven by gorilla's client.

const gorillaImport = `"github.com/gorilla/websocket"`

func gorillaDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/gorilla/websocket").Output()
	if err != nil {
		t.Fatalf("go list gorilla: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// buildExample copies files from gorilla's examples/<name>, swaps the import
// and builds one binary.
func buildExample(t *testing.T, name string, files ...string) string {
	t.Helper()
	src := filepath.Join(gorillaDir(t), "examples", name)
	dir := t.TempDir()
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	gomod := fmt.Sprintf("module example\n\ngo 1.23\n\nrequire wsqueue v0.0.0\n\nreplace wsqueue => %s\n", here)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(here, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".go") {
			b = bytes.Replace(b, []byte(gorillaImport), []byte(`websocket "wsqueue"`), 1)
			b = bytes.Replace(b, []byte("//go:build ignore"), []byte("//go:build !ignore"), 1)
			b = bytes.Replace(b, []byte("// +build ignore"), []byte(""), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, name+"-server")
	cmd := exec.Command("go", "build", "-mod=mod", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building gorilla's %s example with the import swapped: %v\n%s", name, err, out)
	}
	return bin
}

// runExample starts the binary with -addr on a free 127.0.0.1 port and stops
// it when the test ends.
func runExample(t *testing.T, bin string, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-addr", addr)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait (bounded attempts) until it listens.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if i == 400 {
			t.Fatalf("example never listened on %s: %v", addr, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func echoRoundTrips(t *testing.T, url string) {
	t.Helper()
	c, _, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer c.Close()
	// 64 KiB: see README, known issues (large echoes stall later connections).
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<12)
	for _, m := range []struct {
		mt   int
		data []byte
	}{{gorilla.TextMessage, []byte("hello")}, {gorilla.BinaryMessage, []byte{0, 255}}, {gorilla.BinaryMessage, big}} {
		if err := c.WriteMessage(m.mt, m.data); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		mt, p, err := c.ReadMessage()
		if err != nil || mt != m.mt || !bytes.Equal(p, m.data) {
			t.Fatalf("%s: echo of %d bytes: got type %d, %d bytes, %v", url, len(m.data), mt, len(p), err)
		}
	}
	if err := c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, "")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, 1000) {
		t.Fatalf("%s: after our close: %v, want close 1000 echoed", url, err)
	}
}

func TestGorillaEchoExampleWithImportSwapped(t *testing.T) {
	bin := buildExample(t, "echo", "server.go")
	addr := runExample(t, bin, filepath.Dir(bin))
	echoRoundTrips(t, "ws://"+addr+"/echo")
}

func TestGorillaAutobahnExampleWithImportSwapped(t *testing.T) {
	bin := buildExample(t, "autobahn", "server.go")
	addr := runExample(t, bin, filepath.Dir(bin))
	for _, path := range []string{"/c", "/f", "/r", "/m", "/p"} {
		echoRoundTrips(t, "ws://"+addr+path)
	}
	// Invalid UTF-8 in a text message fails the connection with 1007 (§8.1),
	// decided by the engine.
	c, _, err := gorilla.DefaultDialer.Dial("ws://"+addr+"/f", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(gorilla.TextMessage, []byte{0xce, 0xba, 0xe1, 0xbd})
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseInvalidFramePayloadData) {
		t.Fatalf("invalid UTF-8: %v, want close 1007", err)
	}
}

func TestGorillaChatExampleWithImportSwapped(t *testing.T) {
	bin := buildExample(t, "chat", "main.go", "hub.go", "client.go", "home.html")
	addr := runExample(t, bin, filepath.Dir(bin))
	url := "ws://" + addr + "/ws"
	a, _, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// The hub registers clients asynchronously: say hello from b until a hears
	// it (bounded), then check a broadcast reaches both.
	got := make(chan string, 16)
	go func() {
		for {
			_, p, err := a.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			got <- string(p)
		}
	}()
	for i := 0; ; i++ {
		b.WriteMessage(gorilla.TextMessage, []byte("  hello from b\n"))
		select {
		case m := <-got:
			if m != "hello from b" && !strings.HasPrefix(m, "hello from b\n") {
				t.Fatalf("a got %q", m)
			}
			_, p, err := b.ReadMessage()
			if err != nil || !strings.HasPrefix(string(p), "hello from b") {
				t.Fatalf("b got %q %v", p, err)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i == 100 {
			t.Fatal("a never received b's message through the hub")
		}
	}
}
