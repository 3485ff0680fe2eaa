package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/topo"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// requirePrivileged skips in -short mode (make test-unit) and otherwise
// requires root and namespaces (netnstest.Require).
func requirePrivileged(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged lab test: skipped with -short")
	}
	netnstest.Require(t)
}

// newLab builds a lab for one test and tears it down in t.Cleanup.
func newLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	requirePrivileged(t)
	if _, err := os.Stat(repo.Keepalived()); err != nil {
		netnstest.Missing(t, "keepalived not installed: %v", err)
	}
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	if opts.Logger == nil && testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		t.Logf("lab results in %s", l.Dir)
	})
	return l
}

// The control run without vipkit: keepalived alone, the master's
// keepalived SIGKILLed. The backup takes over within VRRP's master-down
// interval (3 × 0.1 s + skew ≈ 0.36 s after the last advert; generous
// bounds below because the machine is shared), the router follows the
// backup's GARP at once, and the killed node keeps the VIP (keepalived
// issue 2361), which the observer reports as dual ownership.
func TestPrivilegedLabControlKill(t *testing.T) {
	l := newLab(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := l.RunMasterFault(ctx, proc.ControlConfig, FaultKill)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	svg, err := l.Report(&b, "control-kill", r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\nsvg: %s", b.String(), svg)
	if r.From != "node-a" || r.To != "node-b" {
		t.Fatalf("moved %s -> %s, want node-a -> node-b", r.From, r.To)
	}
	for _, f := range []observe.Failover{r.V4, r.V6} {
		if f.Takeover == observe.None || f.Takeover < 200*time.Millisecond || f.Takeover > 3*time.Second {
			t.Errorf("%s: takeover %s, want about 0.26-0.36 s", f.VIP, observe.FormatDur(f.Takeover))
		}
		// Typically under 1 ms; the bound is loose because neighbour events
		// are stamped on receipt and a starved test process reads late.
		if f.RouterConvergence == observe.None || f.RouterConvergence > time.Second {
			t.Errorf("%s: router convergence %s, want well under 1 s", f.VIP, observe.FormatDur(f.RouterConvergence))
		}
		if f.ClientSwitch == observe.None || f.Outage == observe.None {
			t.Errorf("%s: client never reached node-b", f.VIP)
		}
		// SIGKILL leaves the VIP on node-a: both claim it until the end.
		if f.DualOwner < r.End-f.VIPAdded-5*time.Millisecond {
			t.Errorf("%s: dual-owner %s, want from node-b's takeover to the end", f.VIP, observe.FormatDur(f.DualOwner))
		}
	}
	if r.DualMaster != 0 {
		t.Errorf("dual MASTER %s after the master's keepalived died", observe.FormatDur(r.DualMaster))
	}
}

func TestPrivilegedLabSplitBrain(t *testing.T) {
	// States from keepalived's log here, to keep that path tested.
	l := newLab(t, Options{StatesFromLog: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := l.RunSplitBrain(ctx, proc.ControlConfig, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	svg, err := l.Report(&b, "control-split-brain", r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\nsvg: %s", b.String(), svg)
	// Both nodes are MASTER for about the hold time: a split brain.
	if r.DualMaster < 900*time.Millisecond {
		t.Errorf("dual MASTER %s, want about the 1 s hold", observe.FormatDur(r.DualMaster))
	}
	split := l.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.State == "MASTER" && e.At >= r.Fault && e.At < r.Heal
	})
	if len(split) > 0 && split[0].Source != "log" {
		t.Errorf("state from %s, want log", split[0].Source)
	}
	if len(split) == 0 || split[0].Host != "node-b" || l.TL.StateAt("node-a", Instance, split[0].At) != "MASTER" {
		t.Errorf("no second MASTER while node-a was MASTER: %v", split)
	}
	if r.V4.DualOwner < 900*time.Millisecond {
		t.Errorf("dual-owner %s during the split", observe.FormatDur(r.V4.DualOwner))
	}
	// After the heal node-b steps back and node-a ends up serving again.
	if r.HealV4.FirstNewAnswer == observe.None {
		t.Error("client never returned to node-a after the heal")
	}
}

// netnsInodes returns the namespace inode of each of the lab's
// namespaces, to look for processes still inside them later.
func netnsInodes(t *testing.T, l *Lab) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range l.Topo.Namespaces() {
		var st syscall.Stat_t
		if err := syscall.Stat(ns.Path(), &st); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("net:[%d]", st.Ino)] = ns.Name
	}
	return out
}

// leftovers lists processes whose network namespace is one of inodes.
func leftovers(inodes map[string]string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		link, err := os.Readlink("/proc/" + d.Name() + "/ns/net")
		if ns, ok := inodes[link]; err == nil && ok {
			comm, _ := os.ReadFile("/proc/" + d.Name() + "/comm")
			out = append(out, fmt.Sprintf("pid %s (%s) in %s", d.Name(), strings.TrimSpace(string(comm)), ns))
		}
	}
	return out
}

func etcdClient(t *testing.T, l *Lab) *clientv3.Client {
	t.Helper()
	dial, err := l.EtcdDialer("etcd")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: l.EtcdEndpoints(), DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func TestPrivilegedLabUpDown(t *testing.T) {
	requirePrivileged(t)
	baseline := runtime.NumGoroutine()
	l := newLab(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	withEtcd := true
	if _, err := proc.FindBinary("etcd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd binary required under CI=true: %v", err)
		}
		t.Logf("no etcd binary, skipping the etcd part: %v", err)
		withEtcd = false
	}
	if withEtcd {
		if err := l.StartEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		// The etcd cut is silent on the wire for the node and leaves its
		// peer alone.
		dialA, _ := l.EtcdDialer("node-a")
		dialB, _ := l.EtcdDialer("node-b")
		if _, err := l.CutEtcd(l.Node("node-a"), topo.CutNeighbour); err != nil {
			t.Fatal(err)
		}
		dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		if c, err := dialA(dctx, "192.0.2.20:2379"); err == nil {
			c.Close()
			t.Error("node-a reaches etcd while cut")
		}
		dcancel()
		if c, err := dialB(ctx, "192.0.2.20:2379"); err != nil {
			t.Errorf("node-b lost etcd: %v", err)
		} else {
			c.Close()
		}
		if _, err := l.RestoreEtcd(l.Node("node-a")); err != nil {
			t.Fatal(err)
		}
		// Lease-bound keys show up on the timeline, and so does their end.
		if err := l.WatchEtcd("/vipkit-lab/"); err != nil {
			t.Fatal(err)
		}
		cli := etcdClient(t, l)
		g, err := cli.Grant(ctx, 5)
		if err != nil {
			cli.Close()
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "/vipkit-lab/holder", "node-a", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		for _, what := range []string{"put", "delete"} {
			if what == "delete" {
				if _, err := cli.Revoke(ctx, g.ID); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.WaitFor(ctx, func(e observe.Event) bool {
				return e.Kind == observe.KindLease && e.Text == what && e.Key == "/vipkit-lab/holder" && (what == "delete" || e.Lease == int64(g.ID))
			}, 5*time.Second); err != nil {
				t.Fatalf("lease key %s not observed: %v", what, err)
			}
		}
		cli.Close()
		if c, err := dialA(ctx, "192.0.2.20:2379"); err != nil {
			t.Errorf("node-a does not reach etcd after restore: %v", err)
		} else {
			c.Close()
		}
	}
	if _, err := l.StartElected(ctx, proc.ControlConfig); err != nil {
		t.Fatal(err)
	}
	// Both keepalived daemons run two processes each (parent and VRRP).
	inodes := netnsInodes(t, l)
	if got := leftovers(inodes); len(got) < 4 {
		t.Errorf("expected keepalived (and etcd) processes in the lab, found %v", got)
	}
	names := l.Topo.Namespaces()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if _, err := os.Stat(ns.Path()); err == nil {
			t.Errorf("namespace %s left behind", ns.Name)
		}
	}
	if got := leftovers(inodes); len(got) > 0 {
		t.Errorf("processes left in lab namespaces: %v", got)
	}
	// Observer goroutines (netlink subscriptions, capture, probes) end.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > baseline+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d after close, %d before\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "events.jsonl")); err != nil {
		t.Errorf("no event dump: %v", err)
	}
}

// TestPrivilegedLabInterrupt runs a lab in a child test process, sends it
// SIGINT (Ctrl-C) and checks that the child tore everything down.
func TestPrivilegedLabInterrupt(t *testing.T) {
	if os.Getenv("VIPKIT_LAB_HOLD") == "1" {
		holdLab(t)
		return
	}
	requirePrivileged(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrivilegedLabInterrupt$", "-test.v")
	cmd.Env = append(os.Environ(), "VIPKIT_LAB_HOLD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var prefix string
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "LAB-READY "); ok {
			prefix = p
			break
		}
	}
	if prefix == "" {
		t.Fatalf("child did not bring a lab up:\n%s", strings.Join(lines, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Errorf("child exit: %v, want status 130", err)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left after Ctrl-C", e.Name())
		}
	}
}

func holdLab(t *testing.T) {
	l := newLab(t, Options{NoProbes: true})
	if err := l.StartKeepalivedAll(proc.ControlConfig); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LAB-READY %s\n", l.Prefix)
	time.Sleep(time.Minute) // the parent interrupts us
	t.Error("not interrupted")
}
