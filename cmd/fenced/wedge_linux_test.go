package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/supervisor"
	"github.com/vipkit/vipkit/test/etcdtest"
	"github.com/vipkit/vipkit/test/netnstest"
)

// wedged is an actuator whose fence on a lost lease never returns (a
// stuck write, a hung kernel call): the holder that calls it stops there,
// while the process goes on.
type wedged struct {
	release  chan struct{}
	once     sync.Once
	unfenced atomic.Bool
	stuck    atomic.Bool
}

func (w *wedged) Fence(_ context.Context, _ []fence.Instance, reason string) error {
	if strings.HasPrefix(reason, string(lease.ReasonDeadline)) {
		w.stuck.Store(true)
		<-w.release
	}
	return nil
}
func (w *wedged) Unfence([]fence.Instance) error                  { w.unfenced.Store(true); return nil }
func (w *wedged) Release(context.Context, []fence.Instance) error { return nil }
func (w *wedged) Reassert([]fence.Instance, bool) error           { return nil }
func (w *wedged) unwedge()                                        { w.once.Do(func() { close(w.release) }) }
func (w *wedged) wait(t *testing.T, what string, cond func() bool) {
	netnstest.WaitFor(t, 15*time.Second, what, cond)
}

// I5, a stalled holder in a live process: when a lease holder is stuck
// (here in a fence that never returns), the heartbeat in fenced.json and
// the systemd watchdog stop although fenced runs on, and the liveness
// check keepalived runs (fenced status --alive) fails, which puts the
// instances in FAULT (TestI5FailClosed shows keepalived's side).
func TestIntegrationWedgedHolderStopsHeartbeat(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()...)
	dir := t.TempDir()
	doc := fmt.Sprintf("node = \"node-a\"\nstate_dir = %q\n[[cluster]]\nname = \"main\"\nendpoints = [%q]\nttl = \"2s\"\nmargin = \"600ms\"\nhold_down = \"300ms\"\n"+
		"[[instance]]\nname = \"VI_1\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\ncluster = \"main\"\n", dir, proxy.Endpoints()[0])
	cfg, err := config.Parse("wedge.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	act := &wedged{release: make(chan struct{})}
	const every = 100 * time.Millisecond
	sup := &supervisor.Supervisor{Node: "node-a", Actuator: act, Dial: dialEtcd, Log: log, ProgressEvery: every, Clock: clock.Boottime}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); sup.Stop() })
	t.Cleanup(act.unwedge) // runs first: Stop waits for the stuck holder
	if err := sup.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	// status --alive also wants the state file's process to be a running
	// fenced; this test's process is fenced.test, so a stand-in carries
	// the name.
	standIn := filepath.Join(t.TempDir(), "fenced")
	if b, err := os.ReadFile("/bin/sleep"); err != nil || os.WriteFile(standIn, b, 0o755) != nil {
		t.Fatalf("stand-in process: %v", err)
	}
	sleeper := exec.Command(standIn, "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	st := supervisor.NewStateWriter(dir, sleeper.Process.Pid, time.Now(), log)
	var watchdogs atomic.Int64
	hb := &supervisor.Heartbeat{
		Alive:  func() bool { return sup.Alive(3 * every) },
		Beat:   func() { st.Write(sup.Snapshot(), time.Now()) },
		Notify: func() { watchdogs.Add(1) },
		Log:    log,
	}
	tctx, stopTicks := context.WithCancel(ctx)
	ticks := make(chan struct{})
	go func() {
		defer close(ticks)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
				hb.Tick()
			}
		}
	}()
	t.Cleanup(func() { stopTicks(); <-ticks })

	alive := func() (bool, string) {
		out, err := exec.Command(fencedBin, "status", "--alive", "--max-age", "1s", "--state-dir", dir).CombinedOutput()
		return err == nil, string(out)
	}
	act.wait(t, "the lease to be held", act.unfenced.Load)
	if ok, out := alive(); !ok {
		t.Fatalf("fenced status --alive fails while every holder makes progress: %s", out)
	}
	proxy.Blackhole()
	act.wait(t, "the fence on the lost lease", act.stuck.Load)
	act.wait(t, "the stuck holder to count as not alive", func() bool { return !sup.Alive(3 * every) })
	n := watchdogs.Load()
	time.Sleep(1500 * time.Millisecond) // more than --max-age, many ticks
	if got := watchdogs.Load(); got != n {
		t.Errorf("the watchdog was notified %d more times while a holder was stuck", got-n)
	}
	ok, out := alive()
	if ok || !strings.Contains(out, "a lease loop is stuck") {
		t.Errorf("fenced status --alive with a stuck holder: ok=%v %q; want a failure naming the stuck loop", ok, out)
	}
	if _, err := os.Stat(filepath.Join(dir, supervisor.StateFile)); err != nil {
		t.Errorf("state file: %v", err)
	}
}
