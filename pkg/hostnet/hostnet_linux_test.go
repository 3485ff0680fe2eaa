package hostnet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/netnstest"
)

// node is one namespace with eth0 (192.0.2.11/24, 2001:db8::11/64) wired to
// a peer namespace.
type node struct {
	ns   *netnstest.NS
	peer *netnstest.NS
	net  *Net
	link Link
}

func newNode(t *testing.T) *node {
	t.Helper()
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "eth0", peer, "eth0")
	ns.AddAddr(t, "eth0", "192.0.2.11/24")
	ns.AddAddr(t, "eth0", "2001:db8::11/64")
	peer.AddAddr(t, "eth0", "192.0.2.12/24")
	n, err := OpenAt(ns.NsHandle())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	l, err := n.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return &node{ns: ns, peer: peer, net: n, link: l}
}

func (nd *node) routes(t *testing.T, v vip.VIP) []LocalRoute {
	t.Helper()
	rs, err := nd.net.LocalRoutes(v.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// routeSrc asks the kernel which source a local client would use for v.
func (nd *node) routeSrc(t *testing.T, v vip.VIP) string {
	t.Helper()
	args := []string{"route", "get", v.Addr().String()}
	if v.Is6() {
		args = append([]string{"-6"}, args...)
	}
	out := nd.ns.Exec(t, "ip", args...)
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "src" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no src in %q", out)
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPrivilegedHintLifecycle(t *testing.T) {
	for _, tc := range []struct{ vip, primary string }{
		{"192.0.2.100", "192.0.2.11"},
		{"2001:db8::100", "2001:db8::11"},
	} {
		t.Run(tc.vip, func(t *testing.T) {
			nd := newNode(t)
			v := vip.MustParse(tc.vip)
			must(t, nd.net.AddVIP(nd.link, v))
			must(t, nd.net.AddVIP(nd.link, v)) // idempotent
			if got := nd.routeSrc(t, v); got != tc.vip {
				t.Fatalf("before the hint a local client uses %s, want the VIP %s (the F1 hazard)", got, tc.vip)
			}
			src, err := nd.net.Primary(nd.link, v)
			must(t, err)
			if src.String() != tc.primary {
				t.Fatalf("Primary = %s, want %s", src, tc.primary)
			}
			must(t, nd.net.SetHint(nd.link, v, src))
			must(t, nd.net.SetHint(nd.link, v, src)) // idempotent
			if got := nd.routeSrc(t, v); got != tc.primary {
				t.Fatalf("with the hint a local client uses %s, want %s", got, tc.primary)
			}
			rs := nd.routes(t, v)
			if len(rs) != 1 || !rs[0].IsHint() || rs[0].Src != src {
				t.Fatalf("local routes with hint = %v, want only the hint", rs)
			}
			// What a scrape reads: the hinted VIP, not the primary's kernel route.
			hinted, err := nd.net.Hinted()
			must(t, err)
			if !hinted[v.Addr()] || hinted[src] || len(hinted) != 1 {
				t.Fatalf("Hinted = %v, want only %s", hinted, v)
			}
			// Release in the safe order: route, then address.
			must(t, nd.net.Release(nd.link, v))
			must(t, nd.net.Release(nd.link, v)) // idempotent
			if rs := nd.routes(t, v); len(rs) != 0 {
				t.Fatalf("after release local routes = %v, want none", rs)
			}
			if hinted, err := nd.net.Hinted(); err != nil || len(hinted) != 0 {
				t.Fatalf("Hinted after release = %v, %v; want none", hinted, err)
			}
		})
	}
}

// keepalived deletes the address before any hook runs: the hint survives it
// (the hazard), Orphans finds it and ClearHint removes it.
func TestPrivilegedHintOrphanedByAddressDeletion(t *testing.T) {
	for _, tc := range []string{"192.0.2.100", "2001:db8::100"} {
		t.Run(tc, func(t *testing.T) {
			nd := newNode(t)
			v := vip.MustParse(tc)
			must(t, nd.net.AddVIP(nd.link, v))
			src, err := nd.net.Primary(nd.link, v)
			must(t, err)
			must(t, nd.net.SetHint(nd.link, v, src))
			must(t, nd.net.DelVIP(nd.link, v)) // what keepalived does first
			if rs := nd.routes(t, v); len(rs) != 1 {
				t.Fatalf("after address deletion routes = %v; the kernel was expected to leave the hint behind", rs)
			}
			orphans, err := nd.net.Orphans()
			must(t, err)
			if len(orphans) != 1 || orphans[0].Dst != v.Addr() {
				t.Fatalf("Orphans = %v, want the hint for %s", orphans, v.Addr())
			}
			must(t, nd.net.ClearHint(nd.link, v))
			if rs := nd.routes(t, v); len(rs) != 0 {
				t.Fatalf("after ClearHint routes = %v, want none", rs)
			}
			if orphans, _ := nd.net.Orphans(); len(orphans) != 0 {
				t.Fatalf("Orphans after ClearHint = %v", orphans)
			}
		})
	}
}

// Clearing the hint of an address that stays assigned must leave the host
// accepting traffic for it: exactly the kernel's route (IPv4), which the
// kernel then removes together with the address.
func TestPrivilegedClearHintKeepsAssignedVIPLocal(t *testing.T) {
	nd := newNode(t)
	v := vip.MustParse("192.0.2.100")
	must(t, nd.net.AddVIP(nd.link, v))
	src, err := nd.net.Primary(nd.link, v)
	must(t, err)
	must(t, nd.net.SetHint(nd.link, v, src))
	must(t, nd.net.ClearHint(nd.link, v))
	rs := nd.routes(t, v)
	if len(rs) != 1 || !rs[0].IsKernel() || rs[0].Src != v.Addr() {
		t.Fatalf("after ClearHint on an assigned VIP routes = %v, want exactly the kernel's (src = VIP)", rs)
	}
	out := nd.peer.Exec(t, "ping", "-c1", "-W2", "192.0.2.100")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("VIP no longer answers after ClearHint:\n%s", out)
	}
	must(t, nd.net.DelVIP(nd.link, v)) // keepalived's later deletion
	if rs := nd.routes(t, v); len(rs) != 0 {
		t.Fatalf("restored route outlived the address: %v", rs)
	}
}

func TestPrivilegedClearHintKeepsAssignedVIP6Local(t *testing.T) {
	nd := newNode(t)
	v := vip.MustParse("2001:db8::100")
	must(t, nd.net.AddVIP(nd.link, v))
	src, err := nd.net.Primary(nd.link, v)
	must(t, err)
	must(t, nd.net.SetHint(nd.link, v, src))
	must(t, nd.net.ClearHint(nd.link, v))
	rs := nd.routes(t, v)
	if len(rs) != 1 || rs[0].Src.IsValid() {
		t.Fatalf("after ClearHint on an assigned IPv6 VIP routes = %v, want one route without a source", rs)
	}
	if got := nd.routeSrc(t, v); got != v.Addr().String() {
		t.Fatalf("local clients use %s, want the VIP again", got)
	}
	// Setting the hint again must win over the stand-in.
	must(t, nd.net.SetHint(nd.link, v, src))
	if got := nd.routeSrc(t, v); got != src.String() {
		t.Fatalf("re-set hint: local clients use %s, want %s", got, src)
	}
	must(t, nd.net.ClearHint(nd.link, v))
	must(t, nd.net.DelVIP(nd.link, v))
	// The stand-in is not tied to the address: it is an orphan now, and
	// Orphans must report it so the guard and cleanup can remove it.
	orphans, err := nd.net.Orphans()
	must(t, err)
	if len(orphans) != 1 {
		t.Fatalf("Orphans = %v, want the IPv6 stand-in", orphans)
	}
	must(t, nd.net.DeleteRoute(orphans[0]))
	if rs := nd.routes(t, v); len(rs) != 0 {
		t.Fatalf("routes left: %v", rs)
	}
}

func TestPrivilegedLinkErrors(t *testing.T) {
	nd := newNode(t)
	if _, err := nd.net.Link("nope0"); !errors.Is(err, ErrNoSuchDevice) {
		t.Fatalf("Link(nope0) = %v, want ErrNoSuchDevice", err)
	}
	if _, err := nd.net.Primary(nd.link, vip.MustParse("192.0.2.11")); !errors.Is(err, ErrVIPIsPrimary) {
		t.Fatalf("Primary for the host's own address = %v, want ErrVIPIsPrimary", err)
	}
	if err := nd.net.CheckSource(nd.link, vip.MustParse("192.0.2.100"), netip.MustParseAddr("2001:db8::11")); !errors.Is(err, ErrFamilyMismatch) {
		t.Fatalf("CheckSource mismatch = %v", err)
	}
	// Orphans must never report the kernel's own routes.
	if orphans, err := nd.net.Orphans(); err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans on a clean host = %v, %v", orphans, err)
	}
}

// The kernel adds an IPv6 address's local route asynchronously: a hint set
// right after adding the address must not end up shadowed by it.
func TestPrivilegedHint6NotShadowedByLateKernelRoute(t *testing.T) {
	nd := newNode(t)
	v := vip.MustParse("2001:db8::100")
	src := netip.MustParseAddr("2001:db8::11")
	for i := 0; i < 30; i++ {
		must(t, nd.net.AddVIP(nd.link, v))
		must(t, nd.net.SetHint(nd.link, v, src))
		time.Sleep(5 * time.Millisecond) // let any late kernel route land
		if rs := nd.routes(t, v); len(rs) != 1 || !rs[0].IsHint() {
			t.Fatalf("round %d: routes %v, want only the hint", i, rs)
		}
		must(t, nd.net.Release(nd.link, v))
	}
}
