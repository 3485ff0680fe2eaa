package guard

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/netnstest"
)

// I1 for keepalived-owned VIPs: keepalived deletes the address before any
// hook can run; the guard removes the orphaned hint within milliseconds.
func TestPrivilegedRouteGuardRemovesOrphanAtOnce(t *testing.T) {
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "eth0", peer, "eth0")
	ns.AddAddr(t, "eth0", "192.0.2.11/24")
	ns.AddAddr(t, "eth0", "2001:db8::11/64")
	n, err := hostnet.OpenAt(ns.NsHandle())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := &holder.Holder{Host: n, Store: runstate.New(t.TempDir())}
	nsh := ns.NsHandle()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := SubscribeAddrs(ctx, &nsh, func(err error) { t.Logf("netlink: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var windows []time.Duration
	rm := &countingRemover{Remover: h}
	g := &Routes{Events: events, Remover: rm, Every: time.Hour, OnRemoved: func(_ hostnet.LocalRoute, w time.Duration) {
		mu.Lock()
		windows = append(windows, w)
		mu.Unlock()
	}}
	go g.Run(ctx)
	netnstest.WaitFor(t, 2*time.Second, "the guard's start-up pass", func() bool { return rm.calls.Load() > 0 })
	l, err := n.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"192.0.2.100", "2001:db8::100", "192.0.2.100", "2001:db8::100"} {
		v := vip.MustParse(s)
		if err := n.AddVIP(l, v); err != nil { // keepalived adds
			t.Fatal(err)
		}
		src, _ := n.Primary(l, v)
		if err := n.SetHint(l, v, src); err != nil { // the MASTER hook
			t.Fatal(err)
		}
		if err := n.DelVIP(l, v); err != nil { // keepalived leaves MASTER
			t.Fatal(err)
		}
		netnstest.WaitFor(t, 2*time.Second, "guard to remove the orphan hint of "+s, func() bool {
			rs, _ := n.LocalRoutes(v.Addr())
			return len(rs) == 0
		})
		mu.Lock()
		got := len(windows)
		mu.Unlock()
		if got != i+1 {
			t.Fatalf("round %d: guard reported %d removals", i, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, w := range windows {
		if w == 0 {
			t.Fatalf("a removal was not triggered by the deletion event: %v", windows)
		}
	}
	t.Logf("route-guard windows (event to route gone): %v", windows)
}

type countingRemover struct {
	Remover
	calls atomic.Int32
}

func (c *countingRemover) RemoveOrphans(ctx context.Context) ([]hostnet.LocalRoute, error) {
	c.calls.Add(1)
	return c.Remover.RemoveOrphans(ctx)
}

// The reaper releases the VIPs when keepalived's VRRP process dies without
// cleaning up (SIGKILL), and only then.
func TestPrivilegedReaperReleasesAfterKill(t *testing.T) {
	netnstest.Require(t)
	dir := t.TempDir()
	// A process whose name is "keepalived".
	fake := filepath.Join(dir, "keepalived")
	b, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "vrrp.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	released := make(chan time.Time, 10)
	started := make(chan int, 10)
	k := &Keepalived{PIDFile: pidFile, Every: 50 * time.Millisecond, Procs: ProcFS{},
		Release: func(context.Context) error { released <- time.Now(); return nil },
		OnStart: func(pid int) { started <- pid }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)
	if pid := <-started; pid != cmd.Process.Pid {
		t.Fatalf("OnStart(%d), want %d", pid, cmd.Process.Pid)
	}
	select {
	case <-released:
		t.Fatal("released while keepalived runs")
	case <-time.After(200 * time.Millisecond):
	}
	cmd.Process.Kill()
	killed := time.Now()
	cmd.Wait()
	select {
	case at := <-released:
		t.Logf("released %s after the kill", at.Sub(killed))
	case <-time.After(3 * time.Second):
		t.Fatal("not released after keepalived was killed")
	}
	// A stale PID file naming another program does not count as keepalived.
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644)
	if _, ok := (ProcFS{}).Find(pidFile); ok {
		t.Fatal("Find accepted a PID that is not keepalived")
	}
}

// Wait returns when the process exits, and at once when ctx ends, not at
// the next poll slice.
func TestPrivilegedWaitWakesOnExitAndOnCancel(t *testing.T) {
	netnstest.Require(t)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan time.Time, 1)
	go func() { (ProcFS{}).Wait(ctx, cmd.Process.Pid); done <- time.Now() }()
	select {
	case <-done:
		t.Fatal("Wait returned while the process runs")
	case <-time.After(100 * time.Millisecond):
	}
	cancelled := time.Now()
	cancel()
	if at := <-done; at.Sub(cancelled) > 100*time.Millisecond {
		t.Fatalf("Wait took %s to notice the cancel", at.Sub(cancelled))
	}
	ctx2 := context.Background()
	go func() { (ProcFS{}).Wait(ctx2, cmd.Process.Pid); done <- time.Now() }()
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Kill()
	killed := time.Now()
	select {
	case at := <-done:
		if at.Sub(killed) > 100*time.Millisecond {
			t.Fatalf("Wait took %s to notice the exit", at.Sub(killed))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Wait did not return after the process exited")
	}
}

// A track file rewritten by someone else is noticed at once.
func TestWatchFilesNoticesRewrites(t *testing.T) {
	dir := t.TempDir()
	track := filepath.Join(dir, "VI_1.fence")
	os.WriteFile(track, []byte("0\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := WatchFiles(ctx, []string{track})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644) // not watched
	select {
	case <-ch:
		t.Fatal("signalled for another file")
	case <-time.After(100 * time.Millisecond):
	}
	os.WriteFile(track, []byte("1\n"), 0o644) // what keepalived's init_file does
	select {
	case <-ch:
	case <-time.After(2 * time.Second):
		t.Fatal("a rewrite of the track file was not noticed")
	}
	cancel()
	for range ch { // closed once ctx ends
	}
}
