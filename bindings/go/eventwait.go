package wsqueue

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// eventWaiter waits for the engine's event descriptor in Go's netpoller, so
// that the dispatcher sleeps like any goroutine blocked on a socket instead of
// holding an OS thread in a blocking wsq_poll: the goroutines it wakes can run
// on its thread, and no message pays for a hand-over between threads.
type eventWaiter struct {
	f  *os.File // a duplicate of the engine's descriptor (the engine owns the original)
	rc syscall.RawConn
}

func newEventWaiter(fd int) (*eventWaiter, error) {
	dup, err := syscall.Dup(fd)
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(dup)
	// The eventfd is non-blocking (shared flag), so os.NewFile registers the
	// duplicate with the netpoller.
	f := os.NewFile(uintptr(dup), "wsqueue-events")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &eventWaiter{f: f, rc: rc}, nil
}

// wait returns once the descriptor is readable (events wait) or wake was called.
func (w *eventWaiter) wait() {
	first := true
	w.rc.Read(func(fd uintptr) bool {
		if first {
			first = false
			// An event queued between the caller's empty poll and this wait
			// made its edge before the netpoller was armed: look once.
			return readable(int(fd))
		}
		return true
	})
}

// wake makes a waiting (and every later) wait return at once.
func (w *eventWaiter) wake() { w.f.SetReadDeadline(time.Unix(1, 0)) }

func (w *eventWaiter) close() { w.f.Close() }

// readable polls fd without waiting.
func readable(fd int) bool {
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{fd: int32(fd), events: 0x1} // POLLIN
	var ts syscall.Timespec
	n, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return errno == 0 && n == 1
}
