// Package fsgate lets a test see the system at the very moment a process
// opens a file: with fanotify permission events the opener waits, inside
// open(2), until the test has looked and answered. An ordering such as
// "the VIP is gone before the track file is written" is then checked
// exactly, not by polling two things one after the other.
package fsgate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Gate holds opens of the files in one directory.
type Gate struct {
	fd   int
	stop chan struct{}
	done chan struct{}
}

// Watch calls at(path, pid) for every open of a file in dir, while the
// opening process waits; the open goes on when at returns. at runs on one
// goroutine and must not open files in dir itself. The gate is removed at
// cleanup (the kernel then lets any waiting open through).
func Watch(t testing.TB, dir string, at func(path string, pid int)) *Gate {
	t.Helper()
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		t.Fatalf("fanotify_init: %v", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM|unix.FAN_EVENT_ON_CHILD, unix.AT_FDCWD, dir); err != nil {
		unix.Close(fd)
		t.Fatalf("fanotify_mark %s: %v", dir, err)
	}
	g := &Gate{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go g.serve(at)
	var once sync.Once
	t.Cleanup(func() { once.Do(g.close) })
	return g
}

func (g *Gate) close() {
	close(g.stop)
	<-g.done
	unix.Close(g.fd)
}

func (g *Gate) serve(at func(string, int)) {
	defer close(g.done)
	buf := make([]byte, 4096)
	for {
		select {
		case <-g.stop:
			return
		default:
		}
		fds := []unix.PollFd{{Fd: int32(g.fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 50); err != nil || n == 0 {
			continue
		}
		n, err := unix.Read(g.fd, buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for off := 0; off+int(unsafe.Sizeof(unix.FanotifyEventMetadata{})) <= n; {
			m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			if m.Event_len == 0 {
				break
			}
			off += int(m.Event_len)
			if m.Fd < 0 {
				continue
			}
			path, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", m.Fd))
			at(filepath.Clean(path), int(m.Pid))
			resp := unix.FanotifyResponse{Fd: m.Fd, Response: unix.FAN_ALLOW}
			_, _ = unix.Write(g.fd, (*[unsafe.Sizeof(resp)]byte)(unsafe.Pointer(&resp))[:])
			unix.Close(int(m.Fd))
		}
	}
}
