package lease

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/clock"
)

// SystemClock is CLOCK_BOOTTIME. It keeps counting while the host is
// suspended, where Go's monotonic clock (CLOCK_MONOTONIC) stops, and wall
// clock steps do not move it. Its timers are timerfds on the same clock, so
// a deadline that passed during suspend fires at once on resume.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Duration { return clock.Boottime() }

func (systemClock) Wall() time.Time { return time.Now() }

// NewTimer starts one goroutine that waits on the timerfd; Close stops it.
func (systemClock) NewTimer() (Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create timerfd on CLOCK_BOOTTIME: %w", err)
	}
	t := &fdTimer{
		fd:     fd,
		f:      os.NewFile(uintptr(fd), "timerfd"), // non-blocking: reads park in the netpoller
		c:      make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	go t.wait()
	return t, nil
}

type fdTimer struct {
	fd     int
	f      *os.File
	c      chan struct{}
	exited chan struct{}

	mu     sync.Mutex
	closed bool // guarded by mu; fd must not be used after f.Close
}

func (t *fdTimer) wait() {
	defer close(t.exited)
	var buf [8]byte // the number of expirations; only the wake-up matters
	for {
		if _, err := t.f.Read(buf[:]); err != nil {
			return // closed
		}
		t.fire()
	}
}

func (t *fdTimer) fire() {
	select {
	case t.c <- struct{}{}:
	default:
	}
}

func (t *fdTimer) C() <-chan struct{} { return t.c }

func (t *fdTimer) Reset(at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	// An absolute time of zero would disarm the timer.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(at), 1))}
	if err := unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		t.fire() // cannot arm: wake the waiter, which re-reads the clock
	}
}

func (t *fdTimer) Close() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		_ = t.f.Close()
	}
	t.mu.Unlock()
	<-t.exited
}
