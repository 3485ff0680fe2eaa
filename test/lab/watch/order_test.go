package watch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/netnstest"
)

// A VIP released on one host and claimed on another, hundreds of times in
// a burst (a fence of 500 VIPs and the peer's takeover): the timeline
// must show every release before the claim that followed it, whatever
// the load on the observer. With one reader per host it did not: the
// releasing host's reader fell behind and its removals were stamped after
// the other host's additions.
func TestPrivilegedAddrOrderAcrossHosts(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, b := netnstest.New(t), netnstest.New(t)
	tl := observe.NewTimeline()
	o := NewObserver(tl, nil)
	t.Cleanup(o.Close)
	const n = 300
	ips := make([]netip.Addr, n)
	loA, err := a.Handle().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	loB, err := b.Handle().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addr := func(ip netip.Addr) *netlink.Addr {
		return &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(128, 128)}}
	}
	for i := range n {
		ips[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8::1:%x", i+1))
		if err := a.Handle().AddrAdd(loA, addr(ips[i])); err != nil {
			t.Fatal(err)
		}
	}
	// Registered after the addresses exist: they come from the dump.
	for host, ns := range map[string]Namespace{"a": a, "b": b} {
		if err := o.WatchAddrs(host, ns); err != nil {
			t.Fatal(err)
		}
		if err := o.WatchLocalRoutes(host, ns, ips); err != nil {
			t.Fatal(err)
		}
	}
	for i, ip := range ips {
		if err := a.Handle().AddrDel(loA, addr(ip)); err != nil {
			t.Fatalf("delete %s on a: %v", ip, err)
		}
		if err := b.Handle().AddrAdd(loB, addr(ip)); err != nil {
			t.Fatalf("add %s on b: %v", ip, err)
		}
		if i%50 == 0 {
			// A host holding nothing new for a while, then a burst.
			runtime.Gosched()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last := ips[n-1]
	if _, err := tl.WaitFor(ctx, func(e observe.Event) bool {
		return e.Kind == observe.KindAddr && e.Host == "b" && e.IP == last && e.Present
	}, 30*time.Second); err != nil {
		t.Fatalf("b's last address never seen: %v", err)
	}
	// The kernel's local route of an address comes and goes with it.
	if _, err := tl.WaitFor(ctx, func(e observe.Event) bool {
		return e.Kind == observe.KindRoute && e.Host == "b" && e.IP == last && e.Present
	}, 30*time.Second); err != nil {
		t.Fatalf("b's last local route never seen: %v", err)
	}
	for _, kind := range []observe.Kind{observe.KindAddr, observe.KindRoute} {
		pos := map[string]int{}
		for i, e := range tl.Events(func(e observe.Event) bool { return e.Kind == kind }) {
			pos[fmt.Sprintf("%s %s %t", e.Host, e.IP, e.Present)] = i
		}
		inverted := 0
		for _, ip := range ips {
			added, ok := pos[fmt.Sprintf("a %s true", ip)]
			del, ok2 := pos[fmt.Sprintf("a %s false", ip)]
			claim, ok3 := pos[fmt.Sprintf("b %s true", ip)]
			if !ok || !ok2 || !ok3 {
				t.Fatalf("%s %s: missing events (a present %t, a removed %t, b present %t)", kind, ip, ok, ok2, ok3)
			}
			if !(added < del && del < claim) {
				inverted++
				if inverted <= 3 {
					t.Errorf("%s %s: a's removal (#%d) not before b's addition (#%d)", kind, ip, del, claim)
				}
			}
		}
		if inverted > 0 {
			t.Errorf("%s: %d of %d hand-overs out of order on the timeline", kind, inverted, n)
		}
	}
}

// The router's entry for a VIP changes owner back and forth faster than
// the observer polls: the recorded MACs are the ones set, in order, with
// no flip back to an older MAC that a dump taken before a notification
// would have brought (a false "router went back to the old owner").
func TestPrivilegedNeighbourPollNeverRewinds(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "eth0", b, "eth0")
	tl := observe.NewTimeline()
	o := NewObserver(tl, nil)
	t.Cleanup(o.Close)
	ip := netip.MustParseAddr("192.0.2.100")
	if err := o.WatchNeighbours("router", a, []netip.Addr{ip}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eth0, err := a.Handle().LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	macs := []net.HardwareAddr{{0x02, 0, 0xc0, 0, 2, 0x0b}, {0x02, 0, 0xc0, 0, 2, 0x0c}}
	const n = 300
	for i := range n {
		if err := a.Handle().NeighSet(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, IP: ip.AsSlice(), HardwareAddr: macs[i%2], State: netlink.NUD_REACHABLE}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(2 * time.Millisecond) // let polls interleave
		}
	}
	last := macs[(n-1)%2].String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	count := func() int {
		return len(tl.Events(func(e observe.Event) bool { return e.Kind == observe.KindNeigh && e.MAC != "" }))
	}
	for count() < n {
		if ctx.Err() != nil {
			t.Fatalf("saw %d of %d changes", count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // polls after the last change
	var got []string
	for _, e := range tl.Events(func(e observe.Event) bool { return e.Kind == observe.KindNeigh && e.MAC != "" }) {
		got = append(got, e.MAC)
	}
	if len(got) != n || got[len(got)-1] != last {
		t.Fatalf("recorded %d MAC changes ending in %s, want %d ending in %s", len(got), got[len(got)-1], n, last)
	}
	for i, m := range got {
		if m != macs[i%2].String() {
			t.Fatalf("change %d recorded %s, want %s: the observer rewound", i, m, macs[i%2])
		}
	}
}
