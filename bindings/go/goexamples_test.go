package wsqueue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

// The repository's own Go examples (examples/go/echo and examples/go/chat),
// built here and run as processes.

// buildGoExample builds examples/go/<name> into the test's temporary directory.
func buildGoExample(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./"+name)
	cmd.Dir = filepath.Join("..", "..", "examples", "go")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building examples/go/%s: %v\n%s", name, err, out)
	}
	return bin
}

// exampleProcess is a running example and its exit status.
type exampleProcess struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *bytes.Buffer
}

// startGoExample starts bin with args and returns the address of its
// "listening on" line. The process is killed when the test ends.
func startGoExample(t *testing.T, bin string, args ...string) (string, *exampleProcess) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &exampleProcess{cmd: cmd, exited: make(chan error, 1), stderr: new(bytes.Buffer)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, out)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case line := <-lines:
		const prefix = "listening on "
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("%s printed %q, want %q...; stderr: %s", bin, line, prefix, p.stderr)
		}
		addr := strings.TrimSpace(strings.TrimPrefix(line, prefix))
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/")
		return addr, p
	case <-time.After(20 * time.Second):
		t.Fatalf("%s printed no listening line", bin)
	}
	return "", nil
}

func (p *exampleProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the example did not exit")
	}
	return nil
}

func TestGoEchoExample(t *testing.T) {
	bin := buildGoExample(t, "echo")
	addr, proc := startGoExample(t, bin, "0")
	url := "ws://" + addr + "/"

	c := dial(t, url)
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i * 31)
	}
	for _, m := range []struct {
		mt   int
		data []byte
	}{{gorilla.TextMessage, []byte("héllo ✓")}, {gorilla.BinaryMessage, []byte{0, 1, 254, 255}}, {gorilla.TextMessage, nil}, {gorilla.BinaryMessage, big}} {
		if err := c.WriteMessage(m.mt, m.data); err != nil {
			t.Fatal(err)
		}
		mt, p, err := c.ReadMessage()
		if err != nil || mt != m.mt || !bytes.Equal(p, m.data) {
			t.Fatalf("echo: type %d, %d bytes, %v; want type %d, %d bytes", mt, len(p), err, m.mt, len(m.data))
		}
	}
	// Invalid UTF-8 in a text message fails the connection with 1007.
	bad := dial(t, url)
	bad.WriteMessage(gorilla.TextMessage, []byte{0xff, 0xfe})
	if _, _, err := bad.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseInvalidFramePayloadData) {
		t.Fatalf("invalid UTF-8: %v, want close 1007", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, _, err := coder.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.CloseNow()
	if err := cc.Write(ctx, coder.MessageBinary, []byte("coder")); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := cc.Read(ctx); err != nil || typ != coder.MessageBinary || string(p) != "coder" {
		t.Fatalf("coder echo: %v %q %v", typ, p, err)
	}

	// SIGTERM: the connected client gets 1001, the process exits 0.
	clientErr := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		clientErr <- err
		c.Close()
	}()
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-clientErr; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("client at SIGTERM: %v, want close 1001", err)
	}
	if err := proc.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, proc.stderr)
	}
}

func TestGoExamplesRefuseBadArguments(t *testing.T) {
	for _, name := range []string{"echo", "chat"} {
		bin := buildGoExample(t, name)
		for _, args := range [][]string{{"notaport"}, {"70000"}, {"1", "2", "3"}} {
			err := exec.Command(bin, args...).Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("%s %v: %v, want exit status 2", name, args, err)
			}
		}
	}
}

type chatLine struct {
	Type string `json:"type"`
	You  int    `json:"you"`
	User int    `json:"user"`
	From int    `json:"from"`
	Text string `json:"text"`
}

func readChat(t *testing.T, c *gorilla.Conn) chatLine {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var l chatLine
	if err := json.Unmarshal(p, &l); err != nil {
		t.Fatalf("not JSON: %q", p)
	}
	return l
}

func TestGoChatExample(t *testing.T) {
	bin := buildGoExample(t, "chat")
	web, err := filepath.Abs(filepath.Join("..", "..", "examples", "web"))
	if err != nil {
		t.Fatal(err)
	}
	addr, proc := startGoExample(t, bin, "0", web)

	// The page of the C demo, from the mux.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := os.ReadFile(filepath.Join(web, "index.html"))
	if resp.StatusCode != 200 || !bytes.Equal(page, want) {
		t.Fatalf("GET /: %d, %d bytes; want examples/web/index.html", resp.StatusCode, len(page))
	}

	a := dial(t, "ws://"+addr+"/ws")
	wa := readChat(t, a)
	if wa.Type != "welcome" || wa.You == 0 {
		t.Fatalf("first line %+v, want a welcome", wa)
	}
	if j := readChat(t, a); j.Type != "join" || j.User != wa.You {
		t.Fatalf("%+v, want a's own join", j)
	}
	b := dial(t, "ws://"+addr+"/") // the page's URL: upgrades at / too
	wb := readChat(t, b)
	readChat(t, b) // b's join
	if j := readChat(t, a); j.Type != "join" || j.User != wb.You {
		t.Fatalf("a got %+v, want b's join", j)
	}
	text := `héllo "quoted" \ line`
	a.WriteMessage(gorilla.TextMessage, []byte(text))
	for _, c := range []*gorilla.Conn{a, b} {
		if l := readChat(t, c); l.Type != "chat" || l.From != wa.You || l.Text != text {
			t.Fatalf("got %+v, want a's line", l)
		}
	}
	a.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""))
	a.Close()
	if l := readChat(t, b); l.Type != "leave" || l.User != wa.You {
		t.Fatalf("b got %+v, want a's leave", l)
	}

	// SIGTERM: b gets 1001 and the process exits 0.
	clientErr := make(chan error, 1)
	go func() {
		_, _, err := b.ReadMessage()
		clientErr <- err
		b.Close()
	}()
	proc.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-clientErr; !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
		t.Fatalf("client at SIGTERM: %v, want close 1001", err)
	}
	if err := proc.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, proc.stderr)
	}
}
