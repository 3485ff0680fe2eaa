package guard

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/hostnet"
)

type fakeRemover struct {
	mu     sync.Mutex
	calls  int
	routes []hostnet.LocalRoute
}

func (f *fakeRemover) RemoveOrphans(context.Context) ([]hostnet.LocalRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	r := f.routes
	f.routes = nil
	return r, nil
}

func (f *fakeRemover) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestRoutesReactsToDeletionsOnly(t *testing.T) {
	events := make(chan AddrEvent)
	rm := &fakeRemover{}
	var windows []time.Duration
	var mu sync.Mutex
	g := &Routes{Events: events, Remover: rm, Every: time.Hour, OnRemoved: func(_ hostnet.LocalRoute, w time.Duration) {
		mu.Lock()
		windows = append(windows, w)
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	a := netip.MustParseAddr("192.0.2.100")
	events <- AddrEvent{Addr: a, Deleted: false, At: time.Now()} // an addition: nothing to do
	if waitCount(rm, 1) != 1 {
		t.Fatalf("start-up reconcile missing")
	}
	rm.mu.Lock()
	rm.routes = []hostnet.LocalRoute{{Dst: a}}
	rm.mu.Unlock()
	events <- AddrEvent{Addr: a, Deleted: true, At: time.Now().Add(-time.Millisecond)}
	if waitCount(rm, 2) != 2 {
		t.Fatalf("deletion did not trigger a reconcile")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(windows) != 1 || windows[0] < time.Millisecond {
		t.Fatalf("windows = %v, want one measured from the event", windows)
	}
}

func waitCount(rm *fakeRemover, n int) int {
	deadline := time.Now().Add(2 * time.Second)
	for rm.count() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return rm.count()
}

// fakeProcs plays a script of Find results; Wait returns at once.
type fakeProcs struct {
	mu     sync.Mutex
	script []int // pid per Find; 0 = none
	finds  int
}

func (f *fakeProcs) Find(string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pid := 0
	if f.finds < len(f.script) {
		pid = f.script[f.finds]
	}
	f.finds++
	return pid, pid != 0
}

func (f *fakeProcs) Wait(context.Context, int) error { return nil }

func TestKeepalivedReaper(t *testing.T) {
	// running (10), gone, still gone, back (11), respawned at once (12), gone
	procs := &fakeProcs{script: []int{10, 0, 0, 11, 12, 0}}
	var mu sync.Mutex
	var log []string
	k := &Keepalived{
		Every: time.Millisecond, Procs: procs,
		Release: func(context.Context) error {
			mu.Lock()
			log = append(log, "release")
			mu.Unlock()
			return nil
		},
		OnStart: func(pid int) {
			mu.Lock()
			log = append(log, "start")
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			procs.mu.Lock()
			n := procs.finds
			procs.mu.Unlock()
			if n > len(procs.script)+2 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	k.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"start", "release", "start", "start", "release"}
	if len(log) != len(want) {
		t.Fatalf("reaper did %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("reaper did %v, want %v", log, want)
		}
	}
}
