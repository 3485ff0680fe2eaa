package hosts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/vipkit"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// newDeb is the .deb `make deb` built for this machine's architecture.
func newDeb(t *testing.T) string {
	t.Helper()
	bin, err := proc.FindBinary("vipctl")
	if err != nil {
		netnstest.Missing(t, "%v", err)
	}
	debs, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), "deb", "vipkit_*_"+runtime.GOARCH+".deb"))
	if len(debs) == 0 {
		netnstest.Missing(t, "no bin/deb/vipkit_*_%s.deb: run make deb", runtime.GOARCH)
	}
	slices.SortFunc(debs, func(a, b string) int {
		fa, _ := os.Stat(a)
		fb, _ := os.Stat(b)
		return fb.ModTime().Compare(fa.ModTime())
	})
	return debs[0]
}

func requireHosts(t *testing.T) {
	t.Helper()
	netnstest.Require(t)
	if testing.Short() {
		t.Skip("host tier: not in -short")
	}
	if _, err := os.Stat(filepath.Join(RootDir(), ".vipkit-root")); err != nil {
		netnstest.Missing(t, "no hosts root at %s: run make hosts-root", RootDir())
	}
}

// newLab boots a two-host lab with the package installed on both hosts.
func newLab(t *testing.T, deb string) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := NewLab(ctx, lab.Options{Name: t.Name(), NoSignalHandler: true, NoCapture: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("lab files (journals of the hosts): %s", l.Dir)
		}
	})
	return l
}

// trackEvents are the track-file writes the observer saw on node n.
func trackEvents(l *Lab, n *lab.Node, file string) []observe.Event {
	return l.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindTrack && e.Host == n.Name && e.Key == file
	})
}

func states(l *Lab, n *lab.Node) []observe.Event {
	return l.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.Host == n.Name && e.Instance == lab.Instance
	})
}

// dualOwner is how long both nodes held the VIP at once since from
// (keepalived's own preemption, outside the steps, may overlap briefly:
// it adds the VIP on the new master before the old one removes it).
func dualOwner(l *Lab, from time.Duration) time.Duration {
	now := l.TL.Now()
	a := observe.Clip(l.TL.AddrSpans(l.Nodes[0].Name, lab.VIP4, now), from, now)
	b := observe.Clip(l.TL.AddrSpans(l.Nodes[1].Name, lab.VIP4, now), from, now)
	return observe.Total(observe.Intersect(a, b))
}

// settle waits until keepalived's states have not changed for quiet: a
// higher-priority node back from FAULT preempts only once its master-down
// timer (3 adverts + skew) runs out.
func settle(t *testing.T, l *Lab, quiet time.Duration) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev := l.TL.Events(func(e observe.Event) bool { return e.Kind == observe.KindState })
		if len(ev) == 0 || l.TL.Now()-ev[len(ev)-1].At >= quiet {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("keepalived states did not settle: last %s", ev[len(ev)-1])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func holds(l *Lab, n *lab.Node) bool {
	now := l.TL.Now()
	spans := l.TL.AddrSpans(n.Name, lab.VIP4, now)
	return len(spans) > 0 && spans[len(spans)-1].To >= now
}

// fencedStatus is `fenced status --json` inside node n's host.
type fencedStatus struct {
	State    string `json:"state"`
	Clusters []struct {
		Name  string `json:"name"`
		Lease struct {
			State   string `json:"state"`
			LeaseID int64  `json:"lease_id"`
		} `json:"lease"`
	} `json:"clusters"`
}

func status(ctx context.Context, t *testing.T, l *Lab, n *lab.Node) fencedStatus {
	t.Helper()
	out, err := l.Host(n).Output(ctx, Fenced, "status", "--json")
	var s fencedStatus
	if jerr := json.Unmarshal([]byte(out), &s); jerr != nil {
		t.Fatalf("fenced status --json on %s: %v %v: %s", n.Name, err, jerr, out)
	}
	return s
}

// journal is `journalctl ARGS -o json` inside node n's host, one map per entry.
func journal(ctx context.Context, t *testing.T, l *Lab, n *lab.Node, args ...string) []map[string]any {
	t.Helper()
	out, err := l.Host(n).Output(ctx, "journalctl", append([]string{"--no-pager", "-o", "json"}, args...)...)
	if err != nil && !strings.Contains(out, "No entries") {
		t.Fatal(err)
	}
	var entries []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			entries = append(entries, m)
		}
	}
	return entries
}

func messages(entries []map[string]any) []string {
	var out []string
	for _, e := range entries {
		if s, ok := e["MESSAGE"].(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func anyContains(lines []string, sub string) bool {
	return slices.ContainsFunc(lines, func(s string) bool { return strings.Contains(s, sub) })
}

// TestHostsPackageUnderSystemd installs the package on two booted hosts
// and walks through what an operator does with it, each step checking the
// shipped unit, drop-in and package for real (issue 8's proof). The steps
// share one pair of hosts: each starts from the state the previous one
// leaves (node-a MASTER, node-b BACKUP, both fenced holding leases).
func TestHostsPackageUnderSystemd(t *testing.T) {
	requireHosts(t)
	deb := newDeb(t)
	l := newLab(t, deb)
	ctx := context.Background()
	a, b := l.Nodes[0], l.Nodes[1]

	t.Run("install", func(t *testing.T) {
		for _, n := range l.Nodes {
			if out, err := l.Install(ctx, n, deb); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// Enabled on install, but not started: the shipped config names
			// no cluster, and ExecCondition skips (inactive, not failed).
			if out, _ := l.Systemctl(ctx, n, "is-enabled", "fenced"); strings.TrimSpace(out) != "enabled" {
				t.Errorf("%s: fenced is %q after install, want enabled", n.Name, out)
			}
			if st, err := l.WaitUnit(ctx, n, "fenced", 10*time.Second, "inactive"); err != nil {
				t.Errorf("unconfigured fenced: %v", err)
			} else if out, _ := l.Systemctl(ctx, n, "show", "-P", "Result", "fenced"); strings.TrimSpace(out) != "success" && strings.TrimSpace(out) != "exec-condition" {
				t.Errorf("%s: unconfigured fenced is %s with result %q", n.Name, st, out)
			}
			if err := l.Configure(n); err != nil {
				t.Fatal(err)
			}
		}
		// keepalived pulls fenced in (the drop-in's Wants=/After=) and must
		// stay in FAULT until fenced holds its lease and writes 0.
		for _, n := range l.Nodes {
			if out, err := l.Systemctl(ctx, n, "start", "keepalived"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		if _, err := l.TL.WaitState(ctx, a.Name, lab.Instance, "MASTER", 0, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := l.TL.WaitState(ctx, b.Name, lab.Instance, "BACKUP", 0, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, n := range l.Nodes {
			if st, _ := l.WaitUnit(ctx, n, "fenced", time.Second, "active"); st != "active" {
				t.Errorf("%s: fenced is %s", n.Name, st)
			}
			s := status(ctx, t, l, n)
			if len(s.Clusters) != 1 || s.Clusters[0].Lease.LeaseID == 0 {
				t.Errorf("%s: fenced holds no lease: %+v", n.Name, s)
			}
			// On the host's own clock (its journal): keepalived leaves
			// FAULT only after fenced holds its lease (then the hold-down,
			// then fenced writes 0).
			var granted, left int64
			for _, e := range journal(ctx, t, l, n) {
				at, _ := strconv.ParseInt(fmt.Sprint(e["__REALTIME_TIMESTAMP"]), 10, 64)
				msg, _ := e["MESSAGE"].(string)
				switch {
				case granted == 0 && e["SYSLOG_IDENTIFIER"] == "fenced" && msg == "lease granted":
					granted = at
				case left == 0 && strings.HasPrefix(fmt.Sprint(e["SYSLOG_IDENTIFIER"]), "Keepalived_vrrp") &&
					(strings.Contains(msg, "Entering BACKUP STATE") || strings.Contains(msg, "Entering MASTER STATE")):
					left = at
				}
			}
			if granted == 0 || left == 0 || left < granted {
				t.Errorf("%s: keepalived left FAULT at %d, fenced got its lease at %d (µs; I5)", n.Name, left, granted)
			}
			if states := states(l, n); len(states) == 0 || states[0].State != "FAULT" {
				t.Errorf("%s: keepalived did not start in FAULT: %v", n.Name, states)
			}
			out, err := l.Host(n).Output(ctx, Vipctl, "check", "--config", ConfigPath)
			if err != nil {
				t.Errorf("vipctl check on %s: %v\n%s", n.Name, err, out)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("journal", func(t *testing.T) {
		// Every hook logs to the journal with its fields (keepalived gives
		// hooks /dev/null for output).
		// keepalived ran notify_fault and notify_backup (vipctl down) and
		// notify_master (vipctl up) on node-a by now.
		entries := journal(ctx, t, l, a, "-t", "vipctl")
		seen := map[string]int{}
		for _, e := range entries {
			msg, _ := e["MESSAGE"].(string)
			if msg != "holding VIP" && msg != "released VIP" {
				continue
			}
			seen[msg]++
			if e["VIP"] != lab.VIP4.String() || e["DEV"] != "eth0" {
				t.Errorf("vipctl journal entry %q without its fields: VIP=%v DEV=%v", msg, e["VIP"], e["DEV"])
			}
		}
		if seen["holding VIP"] == 0 || seen["released VIP"] < 2 {
			t.Errorf("hook lines in journalctl -t vipctl on %s: %v, want the up and both down hooks: %v", a.Name, seen, messages(entries))
		}
		// The defender listens under the unit's sandbox (AF_PACKET).
		fenced := messages(journal(ctx, t, l, a, "-u", "fenced"))
		if anyContains(fenced, "cannot listen") {
			t.Errorf("the defender cannot listen under fenced.service: %v", fenced)
		}
	})

	t.Run("defender", func(t *testing.T) { testDefender(ctx, t, l, a, b) })

	t.Run("split brain heals", func(t *testing.T) { testSplitBrain(ctx, t, l) })

	t.Run("reload", func(t *testing.T) {
		before := status(ctx, t, l, a)
		tracks := len(trackEvents(l, a, lab.Instance+".fence"))
		pid, _ := l.MainPID(ctx, a, "fenced")
		if out, err := l.Systemctl(ctx, a, "reload", "fenced"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !anyContains(messages(journal(ctx, t, l, a, "-u", "fenced")), "configuration reloaded") {
			if time.Now().After(deadline) {
				t.Fatal("no 'configuration reloaded' in fenced's journal after systemctl reload")
			}
			time.Sleep(100 * time.Millisecond)
		}
		after := status(ctx, t, l, a)
		if after.Clusters[0].Lease.LeaseID != before.Clusters[0].Lease.LeaseID {
			t.Errorf("reload changed the lease: %x -> %x (I8)", before.Clusters[0].Lease.LeaseID, after.Clusters[0].Lease.LeaseID)
		}
		if n := len(trackEvents(l, a, lab.Instance+".fence")); n != tracks {
			t.Errorf("reload rewrote the track file (%d writes, was %d) (I8)", n, tracks)
		}
		if p, _ := l.MainPID(ctx, a, "fenced"); p != pid {
			t.Errorf("reload restarted fenced: pid %d -> %d", pid, p)
		}
		if !holds(l, a) {
			t.Error("reload moved the VIP")
		}
	})

	t.Run("watchdog", func(t *testing.T) { testWatchdog(ctx, t, l, a, b) })
	if t.Failed() {
		return
	}

	t.Run("restart", func(t *testing.T) {
		settle(t, l, 5*time.Second)
		m := master(t, l)
		testNoFailover(ctx, t, l, m, "systemctl restart fenced", func() error {
			_, err := l.Systemctl(ctx, m, "restart", "fenced")
			return err
		})
	})

	t.Run("upgrade", func(t *testing.T) {
		settle(t, l, 5*time.Second)
		m := master(t, l)
		next := buildDeb(t, "+next")
		testNoFailover(ctx, t, l, m, "dpkg -i (upgrade)", func() error {
			out, err := l.Install(ctx, m, next)
			if err == nil && !strings.Contains(out, "Preparing to unpack") {
				return fmt.Errorf("not an upgrade: %s", out)
			}
			return err
		})
		if out, _ := l.Host(m).Output(ctx, "dpkg-query", "-W", "-f", "${Version}", "vipkit"); !strings.HasSuffix(out, "+next") {
			t.Errorf("installed version %q after the upgrade", out)
		}
	})

	t.Run("kill during adoption", func(t *testing.T) { testKillDuringAdoption(ctx, t, l) })
	if t.Failed() {
		return
	}

	t.Run("stop", func(t *testing.T) {
		settle(t, l, 5*time.Second)
		m := a
		if !holds(l, a) {
			m = b
		}
		peer := l.Peer(m)
		from := l.TL.Now()
		if out, err := l.Systemctl(ctx, m, "stop", "fenced"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := l.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", from, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		if holds(l, m) {
			t.Errorf("%s still holds the VIP after systemctl stop fenced", m.Name)
		}
		ev := trackEvents(l, m, lab.Instance+".fence")
		if len(ev) == 0 || strings.TrimSpace(ev[len(ev)-1].Text) != "1" {
			t.Errorf("%s: track file not 1 after stop: %v", m.Name, ev)
		}
		if d := dualOwner(l, from); d != 0 {
			t.Errorf("dual owner for %s", d)
		}
		if out, err := l.Systemctl(ctx, m, "start", "fenced"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	t.Run("purge", func(t *testing.T) {
		out, err := l.Host(b).Output(ctx, "dpkg-query", "-L", "vipkit")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := l.Host(b).Output(ctx, "dpkg", "--purge", "vipkit"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, p := range strings.Fields(out) {
			fi, err := os.Lstat(l.Host(b).Path(p))
			if err != nil {
				continue
			}
			// Directories other packages share (/usr, /usr/share/man/...) stay.
			if fi.IsDir() && !strings.Contains(p, "vipkit") {
				continue
			}
			t.Errorf("%s left by dpkg --purge", p)
		}
		if ents, _ := os.ReadDir(l.Host(b).Path(StateDir)); len(ents) > 0 {
			t.Errorf("purge left %d files in %s", len(ents), StateDir)
		}
		// No unit file, no enablement symlink, no mask left behind.
		if out, err := l.Systemctl(ctx, b, "is-enabled", "fenced"); err == nil || !strings.Contains(out, "No such file") {
			t.Errorf("fenced.service after purge: %q", out)
		}
		if links, _ := filepath.Glob(l.Host(b).Path("/etc/systemd/system/*/fenced.service")); len(links) > 0 {
			t.Errorf("purge left %v", links)
		}
	})
	t.Logf("dual-owner time over the whole run (the split brain and keepalived preemptions included): %s", dualOwner(l, 0))
}

// testDefender makes node-b claim the VIP held by node-a (a gratuitous ARP
// with node-b's MAC, as the loser of a split brain sends): node-a's fenced,
// under its unit, must answer with its own announcement and the router
// must end up with node-a's MAC.
func testDefender(ctx context.Context, t *testing.T, l *Lab, a, b *lab.Node) {
	if !holds(l, a) {
		t.Fatalf("%s does not hold the VIP", a.Name)
	}
	from := l.TL.Now()
	if err := claim(b, lab.VIP4); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !anyContains(messages(journal(ctx, t, l, a, "-u", "fenced", "--since", "-1min")), "re-announced") {
		if time.Now().After(deadline) {
			t.Fatalf("%s's defender did not answer the claim: %v", a.Name, messages(journal(ctx, t, l, a, "-u", "fenced")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if got := l.TL.NeighAt("router", lab.VIP4, l.TL.Now()); got != a.Name && got != a.MAC() {
		t.Errorf("router's entry for %s points at %q after the defence, want %s (claim at %s)", lab.VIP4, got, a.Name, observe.FormatAt(from))
	}
}

func testWatchdog(ctx context.Context, t *testing.T, l *Lab, a, b *lab.Node) {
	m, peer := a, b
	if !holds(l, a) {
		m, peer = b, a
	}
	pid, err := l.MainPID(ctx, m, "fenced")
	if err != nil || pid == 0 {
		t.Fatalf("fenced main pid on %s: %d %v", m.Name, pid, err)
	}
	stopped := l.TL.Mark(observe.KindFault, m.Name, fmt.Sprintf("SIGSTOP fenced (pid %d)", pid))
	stoppedWall := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// keepalived's fenced_alive script sees the stale heartbeat first
	// (FAULT, VIP removed); the watchdog then kills the hung fenced and
	// ExecStopPost fails closed.
	const watchdogLimit = 10 * time.Second // WatchdogSec= of fenced.service
	took, err := l.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", stopped, watchdogLimit+10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var killed time.Time
	deadline := time.Now().Add(watchdogLimit + 10*time.Second)
	for killed.IsZero() {
		for _, e := range journal(ctx, t, l, m, "-u", "fenced", "--since", "-2min") {
			if msg, _ := e["MESSAGE"].(string); strings.Contains(msg, "Watchdog timeout") {
				var us int64
				fmt.Sscan(fmt.Sprint(e["__REALTIME_TIMESTAMP"]), &us)
				killed = time.UnixMicro(us)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watchdog timeout in %s's journal %s after SIGSTOP", m.Name, watchdogLimit+10*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := killed.Sub(stoppedWall); d > watchdogLimit+2*time.Second {
		t.Errorf("systemd's watchdog fired %s after SIGSTOP, WatchdogSec is %s", d, watchdogLimit)
	}
	// ExecStopPost (fenced fail-closed) ran after the kill.
	deadline = time.Now().Add(5 * time.Second)
	for {
		j := messages(journal(ctx, t, l, m, "-u", "fenced", "--since", killed.Format("2006-01-02 15:04:05")))
		if anyContains(j, "Failed with result 'watchdog'") && anyContains(j, "keepalived told FAULT") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fail-closed after the watchdog kill on %s: %v", m.Name, j)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if holds(l, m) {
		t.Errorf("%s still holds the VIP after the watchdog kill", m.Name)
	}
	if ev := trackEvents(l, m, lab.Instance+".fence"); len(ev) == 0 || strings.TrimSpace(ev[len(ev)-1].Text) != "1" {
		t.Errorf("%s: track file not 1 after the watchdog kill", m.Name)
	}
	if d := dualOwner(l, stopped); d != 0 {
		t.Errorf("dual owner for %s", d)
	}
	// systemd restarts fenced; the node is a candidate again (leaves FAULT).
	if _, err := l.TL.WaitState(ctx, m.Name, lab.Instance, "BACKUP", took.At, 30*time.Second); err != nil {
		if _, err2 := l.TL.WaitState(ctx, m.Name, lab.Instance, "MASTER", took.At, time.Second); err2 != nil {
			t.Fatalf("%s is not a candidate again after fenced's restart: %v", m.Name, err)
		}
	}
	t.Logf("watchdog: SIGSTOP -> peer MASTER in %s, -> watchdog kill in %s", took.At-stopped, killed.Sub(stoppedWall))
}

// claim sends gratuitous ARP for ip from node n's interface, with n's MAC:
// what the loser of a split brain sends while it still thinks it is MASTER.
func claim(n *lab.Node, ip netip.Addr) error {
	v, err := vip.Parse(ip.String())
	if err != nil {
		return err
	}
	return n.Host.NS.Do(func() error {
		s, err := announce.NewLinkSender("eth0")
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Send(v)
	})
}

func master(t *testing.T, l *Lab) *lab.Node {
	t.Helper()
	for _, n := range l.Nodes {
		if holds(l, n) {
			return n
		}
	}
	t.Fatal("no node holds the VIP")
	return nil
}

// buildDeb builds the package again from this tree's binaries with a
// higher version (the "current" build an upgrade installs).
func buildDeb(t *testing.T, suffix string) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	cur := newDeb(t)
	// vipkit_<version>_<arch>.deb
	f := strings.Split(strings.TrimSuffix(filepath.Base(cur), ".deb"), "_")
	bin := filepath.Dir(filepath.Dir(cur))
	out := t.TempDir()
	cmd := exec.Command("contrib/debian/build-deb.sh", f[2], f[1]+suffix, out, bin, filepath.Join(bin, "docs"))
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, b)
	}
	return strings.TrimSpace(string(b))
}

// testNoFailover runs a planned restart of fenced on the MASTER m and
// checks that nothing moved: same lease, the VIP never left m, the track
// file never said 1, keepalived never left MASTER, no client probe lost.
func testNoFailover(ctx context.Context, t *testing.T, l *Lab, m *lab.Node, what string, act func() error) {
	t.Helper()
	before := status(ctx, t, l, m)
	pid, _ := l.MainPID(ctx, m, "fenced")
	from := l.TL.Mark(observe.KindFault, m.Name, what)
	if err := act(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if _, err := l.WaitUnit(ctx, m, "fenced", 10*time.Second, "active"); err != nil {
		t.Fatal(err)
	}
	if p, _ := l.MainPID(ctx, m, "fenced"); p == pid || p == 0 {
		t.Fatalf("%s: fenced pid %d -> %d, want a new process", what, pid, p)
	}
	// Longer than a TTL: an adopted lease that were not renewed would have
	// been fenced by now.
	time.Sleep(4 * time.Second)
	to := l.TL.Now()
	after := status(ctx, t, l, m)
	if after.Clusters[0].Lease.LeaseID != before.Clusters[0].Lease.LeaseID || after.Clusters[0].Lease.State != "healthy" {
		t.Errorf("%s: lease %x -> %x (%s), want the same lease, healthy", what, before.Clusters[0].Lease.LeaseID, after.Clusters[0].Lease.LeaseID, after.Clusters[0].Lease.State)
	}
	for _, e := range l.TL.Events(func(e observe.Event) bool { return e.At >= from && e.At <= to }) {
		switch {
		case e.Kind == observe.KindState && e.Instance == lab.Instance:
			t.Errorf("%s: keepalived state change: %s", what, e)
		case e.Kind == observe.KindAddr && e.IP == lab.VIP4:
			t.Errorf("%s: VIP flap: %s", what, e)
		case e.Kind == observe.KindTrack && e.Host == m.Name && strings.TrimSpace(e.Text) == "1":
			t.Errorf("%s: track file written 1: %s", what, e)
		case e.Kind == observe.KindProbe && e.IP == lab.VIP4 && !e.OK:
			t.Errorf("%s: client probe lost: %s", what, e)
		}
	}
	j := messages(journal(ctx, t, l, m, "-u", "fenced", "--since", "-1min"))
	for _, want := range []string{"lease handed to the next fenced", "instances left to the next fenced", "lease adopted from the previous process"} {
		if !anyContains(j, want) {
			t.Errorf("%s: no %q in fenced's journal: %v", what, want, j)
		}
	}
}

// testKillDuringAdoption restarts fenced on the MASTER and SIGKILLs the new
// process as soon as it exists, while it adopts: ExecStopPost must fail
// closed (the handoff record was used up), the peer takes over with zero
// dual-owner time, and systemd's restart brings the node back.
func testKillDuringAdoption(ctx context.Context, t *testing.T, l *Lab) {
	settle(t, l, 5*time.Second)
	m := master(t, l)
	peer := l.Peer(m)
	old, _ := l.MainPID(ctx, m, "fenced")
	from := l.TL.Mark(observe.KindFault, m.Name, "restart fenced, kill the new process")
	restart := l.Host(m).Command(ctx, "systemctl", "restart", "--no-block", "fenced")
	if out, err := restart.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	var killed int
	for killed == 0 {
		if p, _ := l.MainPID(ctx, m, "fenced"); p != 0 && p != old {
			if err := syscall.Kill(p, syscall.SIGKILL); err == nil {
				killed = p
				l.TL.Mark(observe.KindFault, m.Name, fmt.Sprintf("SIGKILL new fenced (pid %d)", p))
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new fenced never appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := l.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", from, 15*time.Second); err != nil {
		t.Fatalf("peer did not take over after the new fenced was killed: %v", err)
	}
	if ev := trackEvents(l, m, lab.Instance+".fence"); len(ev) == 0 || strings.TrimSpace(ev[len(ev)-1].Text) != "1" {
		t.Errorf("%s: track file not 1 after the kill", m.Name)
	}
	if d := dualOwner(l, from); d != 0 {
		t.Errorf("dual owner for %s", d)
	}
	if _, err := l.TL.WaitState(ctx, m.Name, lab.Instance, "BACKUP", from, 30*time.Second); err != nil {
		if _, err2 := l.TL.WaitState(ctx, m.Name, lab.Instance, "MASTER", from, time.Second); err2 != nil {
			t.Fatalf("%s is not a candidate again: %v", m.Name, err)
		}
	}
}

// testSplitBrain splits the two nodes from each other (bridge port
// isolation: both still reach the router and etcd), lets both be MASTER,
// heals, and checks that the router ends on the survivor's MAC at once:
// under the units, the survivor re-announced (vipctl's
// notify_master_rx_lower_pri hook or fenced's defender, F3).
func testSplitBrain(ctx context.Context, t *testing.T, l *Lab) {
	settle(t, l, 5*time.Second)
	m := master(t, l)
	peer := l.Peer(m)
	// Long after the election, as in the field: keepalived's second GARP
	// burst (5 s after MASTER) and vipctl's refresher are over, so only
	// what the heal triggers can fix the router's entry.
	var lastMaster time.Duration
	for _, e := range states(l, m) {
		if e.State == "MASTER" {
			lastMaster = e.At
		}
	}
	if wait := lastMaster + vipkit.GARPMasterDelay + vipkit.RefreshFor + time.Second - l.TL.Now(); wait > 0 {
		time.Sleep(wait)
	}
	from := l.TL.Mark(observe.KindFault, "switch", "isolate node ports")
	if err := l.Topo.IsolatePorts(true, m.Name, peer.Name); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = l.Topo.IsolatePorts(false, m.Name, peer.Name)
		}
	}()
	second, err := l.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", from, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(vipkit.SplitHold)
	heal := l.TL.Mark(observe.KindFault, "switch", "heal")
	if err := l.Topo.IsolatePorts(false, m.Name, peer.Name); err != nil {
		t.Fatal(err)
	}
	healed = true
	if _, err := l.TL.WaitState(ctx, peer.Name, lab.Instance, "BACKUP", heal, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := l.TL.NeighAt("router", lab.VIP4, l.TL.Now()); got != m.Name && got != m.MAC() {
		t.Errorf("after the heal the router's entry for %s points at %q, want %s (split at %s, %s MASTER at %s)",
			lab.VIP4, got, m.Name, observe.FormatAt(from), peer.Name, observe.FormatAt(second.At))
	}
	if holds(l, peer) || !holds(l, m) {
		t.Errorf("after the heal: %s holds %v, %s holds %v", m.Name, holds(l, m), peer.Name, holds(l, peer))
	}
}
