package hosts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/netnstest"
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

// dualOwner is how long both nodes held the VIP at once.
func dualOwner(l *Lab) time.Duration {
	now := l.TL.Now()
	a := l.TL.AddrSpans(l.Nodes[0].Name, lab.VIP4, now)
	b := l.TL.AddrSpans(l.Nodes[1].Name, lab.VIP4, now)
	return observe.Total(observe.Intersect(a, b))
}

func holds(l *Lab, n *lab.Node) bool {
	now := l.TL.Now()
	spans := l.TL.AddrSpans(n.Name, lab.VIP4, now)
	return len(spans) > 0 && spans[len(spans)-1].To >= now
}

func waitHolds(ctx context.Context, t *testing.T, l *Lab, n *lab.Node, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !holds(l, n) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not hold %s after %s", n.Name, lab.VIP4, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
			var zero time.Duration = -1
			for _, e := range trackEvents(l, n, lab.Instance+".fence") {
				if strings.TrimSpace(e.Text) == "0" {
					zero = e.At
					break
				}
			}
			if zero < 0 {
				t.Fatalf("%s: fenced never wrote 0 to the track file", n.Name)
			}
			for _, e := range states(l, n) {
				if e.State != "FAULT" && e.At < zero {
					t.Errorf("%s: keepalived %s at %s, before fenced wrote 0 at %s (I5)", n.Name, e.State, observe.FormatAt(e.At), observe.FormatAt(zero))
				}
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
		entries := journal(ctx, t, l, a, "-t", "vipctl")
		var up bool
		for _, e := range entries {
			if e["VIP"] == lab.VIP4.String() && e["DEV"] == "eth0" && e["MESSAGE"] != nil {
				up = true
			}
		}
		if !up {
			t.Errorf("no vipctl journal entry with VIP=%s DEV=eth0 on %s: %v", lab.VIP4, a.Name, messages(entries))
		}
		// The defender listens under the unit's sandbox (AF_PACKET).
		fenced := messages(journal(ctx, t, l, a, "-u", "fenced"))
		if anyContains(fenced, "cannot listen") {
			t.Errorf("the defender cannot listen under fenced.service: %v", fenced)
		}
	})

	t.Run("defender", func(t *testing.T) { testDefender(ctx, t, l, a, b) })

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

	t.Run("stop", func(t *testing.T) {
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
		if d := dualOwner(l); d != 0 {
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
	t.Logf("dual-owner time over the whole run: %s", dualOwner(l))
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
	const watchdogSec = 10 * time.Second
	took, err := l.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", stopped, watchdogSec+10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var killed time.Time
	deadline := time.Now().Add(watchdogSec + 10*time.Second)
	for killed.IsZero() {
		for _, e := range journal(ctx, t, l, m, "-u", "fenced", "--since", "-2min") {
			if msg, _ := e["MESSAGE"].(string); strings.Contains(msg, "Watchdog timeout") {
				var us int64
				fmt.Sscan(fmt.Sprint(e["__REALTIME_TIMESTAMP"]), &us)
				killed = time.UnixMicro(us)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watchdog timeout in %s's journal %s after SIGSTOP", m.Name, watchdogSec+10*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := killed.Sub(stoppedWall); d > watchdogSec+2*time.Second {
		t.Errorf("systemd's watchdog fired %s after SIGSTOP, WatchdogSec is %s", d, watchdogSec)
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
	if d := dualOwner(l); d != 0 {
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
