package supervisor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/guard"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/etcdtest"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/wedge"
)

// scaleHost is one node namespace holding the VIPs of many instances, with
// fenced's runtime (real holder, fence, lease, etcd) acting on it.
type scaleHost struct {
	node     *netnstest.NS
	net      *hostnet.Net
	dir      string
	cfg      *config.Config
	holder   *holder.Holder
	sup      *Supervisor
	proxy    *etcdtest.Proxy
	mu       sync.Mutex
	writes   map[string][]trackWrite // per track file, in order
	checkI3  bool
	violated []string
}

type trackWrite struct {
	value int
	wall  time.Time
	boot  time.Duration
}

// scaleSize is a host: instances x VIPs each, one IPv4 and the rest IPv6,
// every other instance vipctl-owned.
type scaleSize struct{ instances, vips int }

func (s scaleSize) String() string { return fmt.Sprintf("%dx%d", s.instances, s.vips) }

func (s scaleSize) vipsOf(i int) []vip.VIP {
	out := []vip.VIP{vip.MustParse(fmt.Sprintf("192.0.2.%d", 100+i%150))}
	for j := 1; j < s.vips; j++ {
		out = append(out, vip.MustParse(fmt.Sprintf("2001:db8:%x::%x", i+1, j)))
	}
	return out
}

func newScaleHost(t *testing.T, srv *etcdtest.Server, size scaleSize) *scaleHost {
	t.Helper()
	node, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, node, "eth0", peer, "eth0")
	node.AddAddr(t, "eth0", "192.0.2.11/24")
	node.Exec(t, "ip", "addr", "add", "2001:db8::11/64", "dev", "eth0", "nodad")
	n, err := hostnet.OpenAt(node.NsHandle())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	// /run/vipkit is tmpfs on every systemd host: so are the state and the
	// track files here (a disk's fsync would be measured otherwise).
	dir, err := os.MkdirTemp("/dev/shm", "vipkit-scale")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &scaleHost{node: node, net: n, dir: dir, proxy: etcdtest.NewProxy(t, srv.Endpoints()...), writes: map[string][]trackWrite{}}
	var doc strings.Builder
	fmt.Fprintf(&doc, "node = \"node-a\"\nstate_dir = %q\n", filepath.Join(h.dir, "state"))
	fmt.Fprintf(&doc, "[[cluster]]\nname = \"a\"\nendpoints = [\"%s\"]\nttl = \"4s\"\nmargin = \"1500ms\"\nhold_down = \"300ms\"\n", strings.Join(h.proxy.Endpoints(), `", "`))
	for i := range size.instances {
		var vs []string
		for _, v := range size.vipsOf(i) {
			vs = append(vs, fmt.Sprintf("%q", v.String()))
		}
		fmt.Fprintf(&doc, "[[instance]]\nname = \"VI_%d\"\ndev = \"eth0\"\nvips = [%s]\nown = %v\ncluster = \"a\"\ntrack_file = %q\n",
			i, strings.Join(vs, ", "), i%2 == 1, filepath.Join(h.dir, fmt.Sprintf("VI_%d.fence", i)))
	}
	h.cfg = cfgOf(t, doc.String())
	h.holder = &holder.Holder{Host: n, Store: runstate.New(h.cfg.StateDir)}
	act := &fence.Actuator{Releaser: h.holder, Host: n, Track: h.track, Read: trackfile.Read, Ticket: runstate.NowTicket, LockWait: 200 * time.Millisecond}
	d := &dialer{clients: map[string][]*clientv3.Client{}}
	h.sup = &Supervisor{Node: "node-a", Actuator: act, Dial: d.dial, ProgressEvery: 200 * time.Millisecond}
	return h
}

// track writes a track file as fenced does and records when; with checkI3
// it first checks, on a netlink socket of its own, that none of the
// instance's VIPs or hints is left (I3).
func (h *scaleHost) track(path string, v int) error {
	if h.checkI3 && v == trackfile.Fault {
		h.checkReleased(path)
	}
	if err := trackfile.Publish(path, v); err != nil {
		return err
	}
	w := trackWrite{value: v, wall: time.Now(), boot: clock.Boottime()}
	h.mu.Lock()
	h.writes[path] = append(h.writes[path], w)
	h.mu.Unlock()
	return nil
}

func (h *scaleHost) checkReleased(path string) {
	var in config.Instance
	for _, c := range h.cfg.Instances {
		if c.TrackFile == path {
			in = c
		}
	}
	n, err := hostnet.OpenAt(h.node.NsHandle())
	if err != nil {
		h.violation("open netlink: %v", err)
		return
	}
	defer n.Close()
	l, err := n.Link(in.Dev)
	if err != nil {
		h.violation("%v", err)
		return
	}
	addrs, err := n.Addrs(l, 0)
	if err != nil {
		h.violation("%v", err)
		return
	}
	routes, err := n.AllLocalRoutes()
	if err != nil {
		h.violation("%v", err)
		return
	}
	for _, v := range in.VIPs {
		for _, a := range addrs {
			if a.Prefix.Addr() == v.Addr() {
				h.violation("%s: VIP %s still assigned when its track file was written", in.Name, v)
			}
		}
		for _, r := range routes {
			if r.Dst == v.Addr() && r.IsHint() {
				h.violation("%s: hint %s still there when its track file was written", in.Name, r)
			}
		}
	}
}

func (h *scaleHost) violation(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violated = append(h.violated, fmt.Sprintf(format, args...))
}

func (h *scaleHost) last(path string) (trackWrite, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.writes[path]
	if len(ws) == 0 {
		return trackWrite{}, false
	}
	return ws[len(ws)-1], true
}

func (h *scaleHost) all(value int) bool {
	for _, in := range h.cfg.Instances {
		if w, ok := h.last(in.TrackFile); !ok || w.value != value {
			return false
		}
	}
	return true
}

// master does what keepalived and its MASTER hooks do: keepalived adds the
// addresses of keepalived-owned instances, then vipctl up takes every
// instance (adding the addresses of vipctl-owned ones, and the hints).
func (h *scaleHost) master(t *testing.T) {
	t.Helper()
	l, err := h.net.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	keepalived, err := h.net.View(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range h.cfg.Instances {
		if in.Own {
			continue
		}
		for _, v := range in.VIPs {
			if err := keepalived.AddVIP(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, in := range h.cfg.Instances {
		tk, err := runstate.NowTicket()
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.holder.Up(context.Background(), holder.For(in.Target(), tk))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if o.Result != holder.Applied {
				t.Fatalf("%s: up %s: %s", in.Name, o.VIP, o.Result)
			}
		}
	}
}

// left lists the configured VIPs still assigned or still with a hint.
func (h *scaleHost) left(t *testing.T) []string {
	t.Helper()
	l, err := h.net.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.net.Addrs(l, 0)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := h.net.AllLocalRoutes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]bool{}
	for _, in := range h.cfg.Instances {
		for _, v := range in.VIPs {
			want[v.Addr()] = true
		}
	}
	var out []string
	for _, a := range addrs {
		if want[a.Prefix.Addr()] {
			out = append(out, "address "+a.Prefix.String())
		}
	}
	for _, r := range routes {
		if want[r.Dst] && r.IsHint() {
			out = append(out, "hint "+r.String())
		}
	}
	return out
}

type scaleResult struct {
	size          scaleSize
	spread, lead  time.Duration
	fenceDuration time.Duration
}

// run starts the runtime, takes every VIP, cuts etcd silently at a random
// phase of the renewal cycle and measures the fence.
func (h *scaleHost) run(t *testing.T, size scaleSize, wedged bool) scaleResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := h.sup.Apply(ctx, h.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.sup.Stop)
	waitFor(t, 20*time.Second, "every instance unfenced", func() bool { return h.all(trackfile.OK) })
	h.master(t)
	if left := h.left(t); len(left) != 2*size.instances*size.vips {
		t.Fatalf("%d addresses and hints held before the cut, want %d (one each per VIP)", len(left), 2*size.instances*size.vips)
	}
	if wedged {
		wedge.Lock(t, h.cfg.StateDir)
	}
	ns := h.node.NsHandle()
	events, err := guard.SubscribeAddrs(ctx, &ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	firstDel := make(chan time.Time, 1)
	go func() {
		for ev := range events {
			if ev.Deleted && ev.Addr != netip.MustParseAddr("192.0.2.11") && ev.Addr != netip.MustParseAddr("2001:db8::11") {
				firstDel <- ev.At
				return
			}
		}
	}()
	// A random phase of the renewal cycle (every TTL/3).
	time.Sleep(rand.N(4 * time.Second / 3))
	h.proxy.Blackhole()
	waitFor(t, 15*time.Second, "every instance fenced", func() bool { return h.all(trackfile.Fault) })
	var first time.Time
	select {
	case first = <-firstDel:
	case <-time.After(5 * time.Second):
		t.Fatal("no address deletion seen")
	}
	var lastW trackWrite
	for _, in := range h.cfg.Instances {
		if w, _ := h.last(in.TrackFile); w.boot > lastW.boot {
			lastW = w
		}
	}
	if left := h.left(t); len(left) > 0 {
		t.Fatalf("fenced, but %d VIPs or hints are left: %q", len(left), left[:min(len(left), 5)])
	}
	waitFor(t, 5*time.Second, "the fence recorded", func() bool { c, _ := h.sup.cluster("a"); return c.Lease.LastFenceReason != "" })
	c, _ := h.sup.cluster("a")
	st := c.Lease
	if st.LastFenceReason != string(lease.ReasonDeadline) {
		t.Errorf("fence reason %q, want %q", st.LastFenceReason, lease.ReasonDeadline)
	}
	expiry := st.LastFenceAt + st.LastFenceLead // send time of the last acknowledged renewal + TTL
	res := scaleResult{size: size, spread: lastW.wall.Sub(first), lead: expiry - lastW.boot, fenceDuration: c.FenceDuration}
	if res.lead <= 0 {
		t.Errorf("I4 violated at %s: the last track file was written %s after the earliest possible server expiry", size, -res.lead)
	}
	h.proxy.Pass()
	return res
}

// I10 with I3 and I4: a host of up to 1000 VIPs in up to 100 instances,
// keepalived-owned and vipctl-owned, IPv4 and IPv6, loses etcd silently:
// every VIP and hint is gone and every track file says FAULT before the
// earliest possible server expiry. Reports the fence's spread (first VIP
// removed to last track file) and its lead, per size (docs/performance.md).
func TestPrivilegedFenceAtScale(t *testing.T) {
	netnstest.Require(t)
	srv := etcdtest.Start(t)
	var results []scaleResult
	for _, size := range []scaleSize{{1, 1}, {10, 1}, {2, 50}, {20, 50}, {100, 10}} {
		t.Run(size.String(), func(t *testing.T) {
			h := newScaleHost(t, srv, size)
			results = append(results, h.run(t, size, false))
		})
	}
	for _, r := range results {
		t.Logf("fence-at-scale %-7s vips=%4d spread-ms=%6.1f lead-ms=%7.1f margin-minus-lead-ms=%6.1f fence-duration-ms=%6.1f",
			r.size, r.size.instances*r.size.vips, ms(r.spread), ms(r.lead), ms(1500*time.Millisecond-r.lead), ms(r.fenceDuration))
	}
}

// I3 per instance at 1000 VIPs: when each track file is written, none of
// its instance's VIPs or hints is left. And a hook wedged holding vipctl's
// lock costs the whole fence one bounded wait: the lead stays positive.
func TestPrivilegedFenceAtScaleReleasesBeforeResign(t *testing.T) {
	netnstest.Require(t)
	srv := etcdtest.Start(t)
	for _, wedged := range []bool{false, true} {
		t.Run(map[bool]string{false: "lock free", true: "lock wedged"}[wedged], func(t *testing.T) {
			size := scaleSize{20, 50}
			h := newScaleHost(t, srv, size)
			h.checkI3 = true
			r := h.run(t, size, wedged)
			if len(h.violated) > 0 {
				t.Fatalf("I3 violated %d times, first: %s", len(h.violated), h.violated[0])
			}
			t.Logf("I3 checked at every track file of %s (wedged lock %v): lead %.1f ms", size, wedged, ms(r.lead))
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
