package guard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/runstate"
)

// ProcFS finds processes through /proc and waits on them with a pidfd.
type ProcFS struct{}

// Find reads the PID in pidFile and checks that it is a live keepalived
// (a stale file, a recycled PID or a zombie do not count).
func (ProcFS) Find(pidFile string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "keepalived" {
		return 0, false
	}
	if !runstate.Running(pid) {
		return 0, false
	}
	return pid, true
}

// Wait blocks until pid exits or ctx ends, without waking in between: the
// pidfd becomes readable when the process exits.
func (ProcFS) Wait(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wait for pid %d: pidfd_open: %w", pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	if err := waitReadable(ctx, f); err != nil && ctx.Err() == nil {
		return fmt.Errorf("wait for pid %d: %w", pid, err)
	}
	return nil
}

// waitReadable waits in the runtime's poller until f is readable or ctx
// ends (which closes f).
func waitReadable(ctx context.Context, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	// RawConn.Read calls the function at once, then after each wake-up of
	// the poller: it must report readiness itself.
	return rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	})
}
