package runstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/clock"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat start times. It is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// Store is the state directory.
type Store struct {
	Dir string
	// Now is the ticket Save prunes against (State.Prune); NowTicket when nil.
	Now func() (Ticket, error)
}

// New returns a store rooted at dir; nothing is touched until Lock.
func New(dir string) *Store { return &Store{Dir: dir} }

// Tx is the state under the host-wide lock. Every change is made through a
// Tx and written by Save before Unlock.
type Tx struct {
	State *State
	store *Store
	fd    int
	known []Proc
}

// Known lists the refreshers the state named when it was loaded (or at the
// last Forget): those to stop if no entry names them any more.
func (tx *Tx) Known() []Proc { return tx.known }

// Forget resets Known to ps, once the others have been stopped.
func (tx *Tx) Forget(ps []Proc) { tx.known = ps }

// Lock takes the host-wide vipctl lock, waiting at most until ctx is done,
// and loads the state. The directory is created root-only if missing.
func (s *Store) Lock(ctx context.Context) (*Tx, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", s.Dir, err)
	}
	path := filepath.Join(s.Dir, LockFile)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := flock(ctx, fd); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	st, err := s.Read()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Tx{State: st, store: s, fd: fd, known: st.Refreshers()}, nil
}

func flock(ctx context.Context, fd int) error {
	err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		unix.Close(fd)
		return err
	}
	// Contended: wait in a goroutine so ctx can give up. If it gives up, the
	// goroutine closes the descriptor once the lock comes, releasing it.
	done := make(chan error, 1)
	abandoned := make(chan struct{})
	go func() {
		err := unix.Flock(fd, unix.LOCK_EX)
		select {
		case <-abandoned:
			unix.Close(fd)
		default:
			done <- err
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			unix.Close(fd)
		}
		return err
	case <-ctx.Done():
		close(abandoned)
		// The goroutine may have won the race and sent already.
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			unix.Close(fd)
		default:
		}
		return fmt.Errorf("wait for lock: %w", ctx.Err())
	}
}

// Read loads the state without the lock (for status); a missing file is an
// empty state.
func (s *Store) Read() (*State, error) {
	path := filepath.Join(s.Dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	st, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	return st, nil
}

// Save writes the state atomically (temp file and rename), forgetting the
// entries that can no longer matter (State.Prune).
func (tx *Tx) Save() error {
	now := tx.store.Now
	if now == nil {
		now = NowTicket
	}
	if t, err := now(); err == nil {
		tx.State.Prune(t)
	}
	b := tx.State.Format()
	path := filepath.Join(tx.store.Dir, StateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

// Unlock releases the lock. A Tx must not be used afterwards.
func (tx *Tx) Unlock() {
	if tx.fd >= 0 {
		unix.Close(tx.fd)
		tx.fd = -1
	}
}

// ForkTicket is this process's ticket: when it was forked.
func ForkTicket() (Ticket, error) {
	pid := os.Getpid()
	start, err := ProcStart(pid)
	if err != nil {
		return Ticket{}, err
	}
	return Ticket{Ticks: start, PID: pid}, nil
}

// NowTicket is a ticket for an action decided now by a long-running process.
func NowTicket() (Ticket, error) {
	return Ticket{Ticks: int64(clock.Boottime() / (time.Second / clockTicks)), PID: nowPID}, nil
}

// Self identifies this process.
func Self() (Proc, error) {
	pid := os.Getpid()
	start, err := ProcStart(pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, Start: start}, nil
}

// ProcStart reads a process's start time in clock ticks since boot
// (/proc/PID/stat field 22).
func ProcStart(pid int) (int64, error) {
	start, _, err := ProcStat(pid)
	return start, err
}

// Running reports whether pid is a process that still runs: not gone, not
// a zombie.
func Running(pid int) bool {
	_, state, err := ProcStat(pid)
	return err == nil && state != 'Z' && state != 'X'
}

// ProcStat reads a process's start time and state letter from
// /proc/PID/stat: the one parser of that file (vipctl's refreshers and
// tickets, fenced's keepalived reaper).
func ProcStat(pid int) (int64, byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	start, err := parseStatStart(b)
	if err != nil {
		return 0, 0, err
	}
	state := byte('?')
	if i := bytes.LastIndexByte(b, ')'); i+2 < len(b) {
		state = b[i+2]
	}
	return start, state, nil
}

// parseStatStart extracts field 22 of /proc/PID/stat. The command name
// (field 2) may contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseStatStart(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no command field")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, errors.New("parse /proc stat: too few fields")
	}
	v, err := strconv.ParseInt(string(fields[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat start time %q: %w", fields[19], err)
	}
	return v, nil
}

// Alive reports whether p is still the running process it was recorded as.
// A zombie is not alive: its parent exited before reaping it.
func Alive(p Proc) bool {
	start, state, err := ProcStat(p.PID)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// Stop ends process p (a refresher) and waits until it is gone: SIGTERM, and
// SIGKILL if it is still there after grace. It acts through a pidfd, so a
// recycled PID is never signalled.
func Stop(p Proc, grace time.Duration) error {
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop pid %d: pidfd_open: %w", p.PID, err)
	}
	defer unix.Close(pidfd)
	// Check identity after opening the pidfd: from here on the pidfd pins
	// this exact process even if the PID is reused.
	if start, err := ProcStart(p.PID); err != nil || start != p.Start {
		return nil
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil
			}
			return fmt.Errorf("stop pid %d: signal %v: %w", p.PID, sig, err)
		}
		if exited(pidfd, grace) {
			return nil
		}
	}
	return fmt.Errorf("stop pid %d: still running after SIGKILL", p.PID)
}

// exited waits until the process behind pidfd has exited (the pidfd becomes
// readable) or timeout passes.
func exited(pidfd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == nil {
			return n > 0
		}
		if !errors.Is(err, unix.EINTR) || time.Now().After(deadline) {
			return false
		}
	}
}

// Procs stops and checks recorded processes (refreshers); vipctl and fenced
// both use it.
type Procs struct {
	// Grace is how long a process gets between SIGTERM and SIGKILL.
	Grace time.Duration
}

// Stop ends p and waits for it (see Stop).
func (ps Procs) Stop(p Proc) error { return Stop(p, ps.Grace) }

// Alive reports whether p still runs.
func (ps Procs) Alive(p Proc) bool { return Alive(p) }
