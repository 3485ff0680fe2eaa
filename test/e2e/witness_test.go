package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// The witness (DESIGN F6, I9; docs/witness.md) among three nodes (node-a
// 150, node-b 100, node-c 50), real keepalived and etcd, both VIPs (IPv4
// and IPv6) of VI_1. The control is the same three-node lab with fenced
// but without the witness.

func witnessOpts(m vipkit.Mode) (string, vipkit.Options) {
	return "witness3-" + m.Short(), vipkit.Options{Mode: m, Witness: true, Lab: lab.Options{Nodes: 3}}
}

func control3Opts() (string, vipkit.Options) {
	return "control3", vipkit.Options{Mode: vipkit.Hooks, Lab: lab.Options{Nodes: 3}}
}

// waitLab waits until lab time at.
func waitLab(t *testing.T, ctx context.Context, v *vipkit.Lab, at time.Duration) {
	t.Helper()
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= at }, time.Until(time.Now().Add(at-v.TL.Now()))+10*time.Second); err != nil {
		t.Fatalf("wait for lab time %s: %v", observe.FormatAt(at), err)
	}
}

// claimed is how long host claimed ip (address or local route) in
// [from, to].
func claimed(v *vipkit.Lab, host string, ip netip.Addr, from, to time.Duration) time.Duration {
	return observe.Total(observe.Clip(v.TL.ClaimSpans(host, ip, to), from, to))
}

// dualOwner is the time two or more nodes claimed ip in [from, to]; a
// node in dead (every process killed, cable pulled) counts for nobody: the
// address left on its interface reaches no one.
func dualOwner(v *vipkit.Lab, ip netip.Addr, from, to time.Duration, dead ...*lab.Node) time.Duration {
	var claims [][]observe.Span
	for _, n := range v.Nodes {
		if slices.Contains(dead, n) {
			continue
		}
		claims = append(claims, observe.Clip(v.TL.ClaimSpans(n.Name, ip, to), from, to))
	}
	return observe.Total(observe.AtLeast(2, claims...))
}

// split isolates the nodes from each other for hold (each still reaches
// the router and etcd), heals, and returns the window.
func split(t *testing.T, ctx context.Context, v *vipkit.Lab, hold time.Duration) (from, to time.Duration) {
	t.Helper()
	from, err := v.Isolate()
	if err != nil {
		t.Fatal(err)
	}
	waitLab(t, ctx, v, from+hold)
	if _, err := v.Heal(); err != nil {
		t.Fatal(err)
	}
	to = v.TL.Now() + time.Second
	waitLab(t, ctx, v, to)
	return from, to
}

// TestWitnessSplitBrainThreeNodes: the nodes stop hearing each other and
// each still reaches the router and etcd. With the witness only node-a,
// the owner, ever holds the VIPs: zero dual-owner time, and the router's
// entry never points anywhere else. The control (no witness) shows the
// split brain the test would catch: node-b and node-c both take the VIPs.
func TestWitnessSplitBrainThreeNodes(t *testing.T) {
	ctx := context.Background()
	const hold = 3 * time.Second
	t.Run("witness", func(t *testing.T) {
		key, opts := witnessOpts(vipkit.Hooks)
		v := shared(t, ctx, key, opts)
		from, to := split(t, ctx, v, hold)
		owner := v.Nodes[0]
		mac := v.TL.MACOf(owner.Name)
		for _, ip := range v.VIPs() {
			if d := dualOwner(v, ip, from, to); d != 0 {
				t.Errorf("%s: dual-owner time %s during the split", ip, ms(d))
			}
			for _, n := range v.Nodes[1:] {
				if c := claimed(v, n.Name, ip, from, to); c != 0 {
					t.Errorf("%s: %s, not the owner, held it for %s", ip, n.Name, ms(c))
				}
			}
			if c := claimed(v, owner.Name, ip, from, to); c < to-from-time.Millisecond {
				t.Errorf("%s: the owner held it for %s of the %s split: clients lost it", ip, ms(c), ms(to-from))
			}
			for _, e := range v.TL.Events(func(e observe.Event) bool {
				return e.Kind == observe.KindNeigh && e.Host == "router" && e.IP == ip && e.MAC != "" && e.At >= from && e.At <= to
			}) {
				if e.MAC != mac {
					t.Errorf("%s: at %s the router mapped it to %s, not the owner %s (%s)", ip, observe.FormatAt(e.At), e.MAC, owner.Name, mac)
				}
			}
			lost := 0
			for _, e := range v.TL.Events(func(e observe.Event) bool {
				return e.Kind == observe.KindProbe && e.Host == "client" && e.IP == ip && e.At >= from && e.At <= to
			}) {
				if !e.OK {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%s: the client lost %d probes during the split", ip, lost)
			}
			t.Logf("%s: split %s, dual-owner 0, probes lost %d", ip, ms(to-from), lost)
		}
		for _, n := range v.Nodes[1:] {
			for _, e := range v.TL.Events(func(e observe.Event) bool {
				return e.Kind == observe.KindState && e.Host == n.Name && e.Instance == lab.Instance && e.At >= from && e.At <= to
			}) {
				if e.State == "MASTER" {
					t.Errorf("%s became MASTER at %s during the split", n.Name, observe.FormatAt(e.At))
				}
			}
		}
	})
	t.Run("control", func(t *testing.T) {
		key, opts := control3Opts()
		v := shared(t, ctx, key, opts)
		from, to := split(t, ctx, v, hold)
		for _, ip := range v.VIPs() {
			d := dualOwner(v, ip, from, to)
			if d < hold/2 {
				t.Errorf("%s: without the witness dual-owner time was only %s: the split did not split", ip, ms(d))
			}
			t.Logf("%s: control dual-owner %s of a %s split", ip, ms(d), ms(to-from))
		}
	})
}

// TestWitnessNodeCutFromPeers: the owner cut from the other two nodes
// (each node still reaching etcd and the router; the other two still
// hear each other). With the witness node-a keeps the VIPs and nobody
// else holds them; the control (no witness) shows that the cut cuts VRRP:
// node-b, no longer hearing node-a, takes the VIPs too.
func TestWitnessNodeCutFromPeers(t *testing.T) {
	ctx := context.Background()
	const hold = 3 * time.Second
	cut := func(t *testing.T, v *vipkit.Lab) (from, to time.Duration) {
		t.Helper()
		from, err := v.CutPeers(v.Nodes[0])
		if err != nil {
			t.Fatal(err)
		}
		waitLab(t, ctx, v, from+hold)
		if _, err := v.Lab.CutPeers(v.Nodes[0], false); err != nil {
			t.Fatal(err)
		}
		to = v.TL.Now() + time.Second
		waitLab(t, ctx, v, to)
		return from, to
	}
	t.Run("witness", func(t *testing.T) {
		key, opts := witnessOpts(vipkit.Hooks)
		v := shared(t, ctx, key, opts)
		from, to := cut(t, v)
		for _, ip := range v.VIPs() {
			if d := dualOwner(v, ip, from, to); d != 0 {
				t.Errorf("%s: dual-owner %s during the cut", ip, ms(d))
			}
			if c := claimed(v, v.Nodes[0].Name, ip, from, to); c < to-from-time.Millisecond {
				t.Errorf("%s: node-a held it only %s of %s", ip, ms(c), ms(to-from))
			}
			t.Logf("%s: node-a cut from node-b and node-c for %s: dual-owner 0, node-a held it throughout", ip, ms(hold))
		}
	})
	t.Run("control", func(t *testing.T) {
		key, opts := control3Opts()
		v := shared(t, ctx, key, opts)
		from, to := cut(t, v)
		for _, ip := range v.VIPs() {
			d := dualOwner(v, ip, from, to)
			if d < hold/2 {
				t.Errorf("%s: without the witness dual-owner time was only %s: the cut did not cut VRRP", ip, ms(d))
			}
			t.Logf("%s: control dual-owner %s of a %s cut", ip, ms(d), ms(hold))
		}
		if c := claimed(v, v.Nodes[2].Name, lab.VIP4, from, to); c != 0 {
			t.Errorf("node-c held %s for %s: node-b and node-c did not hear each other", lab.VIP4, ms(c))
		}
	})
}

// takeover is when node n first became MASTER or held ip after since.
func takeover(v *vipkit.Lab, n *lab.Node, since time.Duration) time.Duration {
	at := observe.None
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Host == n.Name && e.At >= since &&
			((e.Kind == observe.KindState && e.Instance == lab.Instance && e.State == "MASTER") || (e.Kind == observe.KindAddr && e.Present && (e.IP == lab.VIP4 || e.IP == lab.VIP6)))
	}) {
		at = e.At
		break
	}
	return at
}

// ownerPut is when the owner key was first written at or after since (the
// lab watches /vipkit/ in etcd from the etcd host). The timeline records
// keys and leases, not values: callers pick a since after which only the
// node they expect can write it.
func ownerPut(v *vipkit.Lab, since time.Duration) time.Duration {
	at := observe.None
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindLease && e.Key == "/vipkit/owners/"+lab.Instance && e.Text == "put" && e.At >= since
	}) {
		at = e.At
		break
	}
	return at
}

// failOwner injects fault into node-a (the owner) and checks that node-b,
// the next priority, takes over within bound, node-c never holds the
// VIPs, and no two nodes ever hold them.
func failOwner(t *testing.T, ctx context.Context, v *vipkit.Lab, name string, fault func(n *lab.Node) (time.Duration, error), bound time.Duration, dead ...*lab.Node) (at, took time.Duration) {
	t.Helper()
	a, b, c := v.Nodes[0], v.Nodes[1], v.Nodes[2]
	at, err := fault(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.TL.WaitState(ctx, b.Name, lab.Instance, "MASTER", at, bound+5*time.Second); err != nil {
		t.Fatalf("%s: node-b never became MASTER: %v", name, err)
	}
	end := v.TL.Now() + 500*time.Millisecond
	waitLab(t, ctx, v, end)
	took = takeover(v, b, at) - at
	if took > bound {
		t.Errorf("%s: node-b took over %s after the fault, bound %s", name, ms(took), ms(bound))
	}
	for _, ip := range v.VIPs() {
		if d := dualOwner(v, ip, at, end, dead...); d != 0 {
			t.Errorf("%s: %s dual-owner time %s", name, ip, ms(d))
		}
		if cl := claimed(v, c.Name, ip, at, end); cl != 0 {
			t.Errorf("%s: node-c (lowest priority) held %s for %s", name, ip, ms(cl))
		}
		if cl := claimed(v, b.Name, ip, at, end); cl == 0 {
			t.Errorf("%s: node-b never held %s", name, ip)
		}
	}
	return at, took
}

// TestWitnessOwnerFaults: the owner loses etcd only, dies whole, or loses
// its fenced (SIGKILL). Each time node-b (the next priority) takes over
// once the owner's lease is gone, node-c never holds the VIPs, and no two
// nodes hold them at once. Bounds: the lease TTL, etcd's expiry loop
// (0.5 s), keepalived's master-down interval (the claimant leaves FAULT as
// BACKUP), 100 ms.
func TestWitnessOwnerFaults(t *testing.T) {
	ctx := context.Background()
	key, opts := witnessOpts(vipkit.Hooks)
	ttl := vipkit.DefaultTTL
	t.Run("etcd-loss", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		down := vipkit.Hooks.MasterDown(v.KeepalivedVersion)
		at, took := failOwner(t, ctx, v, "etcd-loss", v.CutEtcd, ttl+500*time.Millisecond+down+100*time.Millisecond)
		a := v.Nodes[0]
		f := v.TL.Fence(observe.FenceSpec{Host: a.Name, VIPs: v.VIPs(), Track: lab.Instance + ".fence", Key: vipkit.MemberKey(a.Name), Since: at})
		if f.Expired == observe.None || f.Tracked == observe.None || f.Tracked >= f.Expired || f.Released == observe.None || f.Released >= f.Expired {
			t.Errorf("the owner did not fence before its lease expired: released %s, track %s, expired %s", observe.FormatAt(f.Released), observe.FormatAt(f.Tracked), observe.FormatAt(f.Expired))
		}
		claim := ownerPut(v, at)
		t.Logf("takeover %s after the cut (bound TTL %s + etcd loop 500 ms + master-down %s + 100 ms); fence lead %s; owner key to node-b %s after the expiry; MASTER %s after the claim",
			ms(took), ms(ttl), ms(down), ms(f.Lead), ms(claim-f.Expired), ms(at+took-claim))
	})
	t.Run("dies-whole", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		t.Cleanup(func() { relink(t, v) })
		down := vipkit.Hooks.MasterDown(v.KeepalivedVersion)
		at, took := failOwner(t, ctx, v, "dies-whole", func(n *lab.Node) (time.Duration, error) { return dieWhole(v, n) },
			ttl+500*time.Millisecond+down+100*time.Millisecond, v.Nodes[0])
		t.Logf("takeover %s after the owner died (bound TTL %s + etcd loop 500 ms + master-down %s + 100 ms); at %s", ms(took), ms(ttl), ms(down), observe.FormatAt(at))
	})
	t.Run("dies-whole-control", func(t *testing.T) {
		ckey, copts := control3Opts()
		v := shared(t, ctx, ckey, copts)
		t.Cleanup(func() { relink(t, v) })
		at, err := dieWhole(v, v.Nodes[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.TL.WaitState(ctx, "node-b", lab.Instance, "MASTER", at, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("control (VRRP only): takeover %s after the owner died", ms(takeover(v, v.Nodes[1], at)-at))
	})
	t.Run("keepalived-killed", func(t *testing.T) {
		// fenced's reaper releases the VIPs, then the witness hands the
		// instance over at once: no wait for the lease.
		v := shared(t, ctx, key, opts)
		down := vipkit.Hooks.MasterDown(v.KeepalivedVersion)
		_, took := failOwner(t, ctx, v, "keepalived-killed", v.KillKeepalived, down+200*time.Millisecond)
		t.Logf("takeover %s after keepalived's SIGKILL on the owner (master-down %s)", ms(took), ms(down))
	})
	t.Run("fenced-killed", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		down := vipkit.Hooks.MasterDown(v.KeepalivedVersion)
		a := v.Nodes[0]
		at, took := failOwner(t, ctx, v, "fenced-killed", func(n *lab.Node) (time.Duration, error) {
			return v.Signal(n.Name, v.Fenced(n), syscall.SIGKILL)
		}, ttl+500*time.Millisecond+down+100*time.Millisecond)
		// I5: keepalived on the owner goes to FAULT without fenced.
		fault := observe.None
		for _, e := range v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindState && e.Host == a.Name && e.Instance == lab.Instance && e.State == "FAULT" && e.At >= at
		}) {
			fault = e.At
			break
		}
		if fault == observe.None {
			t.Errorf("node-a's keepalived never went to FAULT after fenced was killed")
		}
		t.Logf("FAULT %s after the kill; takeover %s", ms(fault-at), ms(took))
	})
}

// TestWitnessFencedStopped: fenced SIGSTOPped on the owner (hung, its
// process alive): it renews nothing, the server expires its lease at
// TTL and node-b claims. keepalived's fenced_alive check must put node-a
// in FAULT before that: `fenced status --alive` fails once the lease's
// recorded local deadline has passed (fencedstate.LeasesValid), where the
// heartbeat's max age (5 s) alone would come after the expiry (TTL 3 s).
func TestWitnessFencedStopped(t *testing.T) {
	ctx := context.Background()
	key, opts := witnessOpts(vipkit.Hooks)
	v := shared(t, ctx, key, opts)
	a := v.Nodes[0]
	p := v.Fenced(a)
	t.Cleanup(func() {
		if _, err := v.Signal(a.Name, p, syscall.SIGCONT); err != nil {
			t.Errorf("resume node-a's fenced: %v", err)
		}
	})
	down := vipkit.Hooks.MasterDown(v.KeepalivedVersion)
	at, took := failOwner(t, ctx, v, "fenced-stopped", func(n *lab.Node) (time.Duration, error) {
		return v.Signal(n.Name, p, syscall.SIGSTOP)
	}, vipkit.DefaultTTL+500*time.Millisecond+down+100*time.Millisecond)
	f := v.TL.Fence(observe.FenceSpec{Host: a.Name, VIPs: v.VIPs(), Track: lab.Instance + ".fence", Key: vipkit.MemberKey(a.Name), Since: at})
	fault := observe.None
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.Host == a.Name && e.Instance == lab.Instance && e.State == "FAULT" && e.At >= at
	}) {
		fault = e.At
		break
	}
	switch {
	case fault == observe.None:
		t.Errorf("node-a never went to FAULT with its fenced stopped")
	case f.Expired != observe.None && fault >= f.Expired:
		t.Errorf("node-a went to FAULT %s after the server expired its lease", ms(fault-f.Expired))
	}
	t.Logf("FAULT %s after SIGSTOP, %s before the server expired the lease; node-b MASTER %s after SIGSTOP", ms(fault-at), ms(f.Expired-fault), ms(took))
}

// relink plugs node-a's cable back after dieWhole (Reset restarts its
// processes).
func relink(t *testing.T, v *vipkit.Lab) {
	if _, err := v.SetPort(v.Nodes[0], true); err != nil {
		t.Errorf("bring node-a's switch port back: %v", err)
	}
}

// dieWhole pulls node n's cable (its switch port down: the node keeps its
// addresses, as a powered-off host's disk would) and kills every process
// of it (keepalived, fenced).
func dieWhole(v *vipkit.Lab, n *lab.Node) (time.Duration, error) {
	at, err := v.SetPort(n, false)
	if err != nil {
		return at, err
	}
	if p := n.Keepalived(); p != nil {
		if _, err := v.Signal(n.Name, p, syscall.SIGKILL); err != nil {
			return at, err
		}
	}
	if p := v.Fenced(n); p != nil {
		if _, err := v.Signal(n.Name, p, syscall.SIGKILL); err != nil {
			return at, err
		}
	}
	return at, nil
}

// TestWitnessPlannedHandover: fenced stopped on the owner (SIGTERM, a
// planned stop) hands the instance to node-b before its lease goes; when
// node-a's fenced comes back, node-a (higher priority) preempts. Zero
// overlap both ways. Either way node-b leaves FAULT before node-a resigns
// and takes over after its skew time: vipctl-owned VIPs by the fast path,
// keepalived-owned ones by the pre-grant (node-b of lower priority waits
// as BACKUP behind node-a). The preemption back of keepalived-owned VIPs
// waits keepalived's master-down interval.
func TestWitnessPlannedHandover(t *testing.T) {
	ctx := context.Background()
	for _, m := range []vipkit.Mode{vipkit.Owned, vipkit.Hooks} {
		t.Run(m.Short(), func(t *testing.T) {
			key, opts := witnessOpts(m)
			v := shared(t, ctx, key, opts)
			a, b := v.Nodes[0], v.Nodes[1]
			at, err := v.Signal(a.Name, v.Fenced(a), syscall.SIGTERM)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.TL.WaitState(ctx, b.Name, lab.Instance, "MASTER", at, 15*time.Second); err != nil {
				t.Fatalf("node-b never became MASTER after node-a's fenced stopped: %v", err)
			}
			end := v.TL.Now() + 500*time.Millisecond
			waitLab(t, ctx, v, end)
			took := takeover(v, b, at) - at
			expired := observe.None
			for _, e := range v.TL.Events(func(e observe.Event) bool {
				return e.Kind == observe.KindLease && e.Key == vipkit.MemberKey(a.Name) && e.Text == "delete" && e.At >= at
			}) {
				expired = e.At
				break
			}
			for _, ip := range v.VIPs() {
				if d := dualOwner(v, ip, at, end); d != 0 {
					t.Errorf("handover: %s dual-owner %s", ip, ms(d))
				}
			}
			// The goal is the skew time plus a few etcd round trips (83 ms
			// at 0.1 s adverts); room for a loaded machine (200 ms, or half
			// an advert at 1 s adverts), still below the master-down
			// interval the path without the pre-grant waited.
			ka := v.KeepalivedVersion
			limit := m.Skew(ka) + max(200*time.Millisecond, (m.MasterDown(ka)-m.Skew(ka))/6)
			if took > limit {
				t.Errorf("handover: node-b took over %s after the stop, want at most %s", ms(took), ms(limit))
			}
			t.Logf("planned stop: takeover %s after SIGTERM (node-a's member key gone %s after it); skew %s, master-down %s",
				ms(took), ms(expired-at), ms(m.Skew(v.KeepalivedVersion)), ms(m.MasterDown(v.KeepalivedVersion)))

			// node-a's fenced back: it preempts, zero overlap.
			back := v.TL.Now()
			if err := v.StartFenced(a); err != nil {
				t.Fatal(err)
			}
			if _, err := v.TL.WaitState(ctx, a.Name, lab.Instance, "MASTER", back, 20*time.Second); err != nil {
				t.Fatalf("node-a never preempted: %v", err)
			}
			end = v.TL.Now() + 500*time.Millisecond
			waitLab(t, ctx, v, end)
			claimAt := ownerPut(v, back)
			for _, ip := range v.VIPs() {
				if d := dualOwner(v, ip, back, end); d != 0 {
					t.Errorf("preemption: %s dual-owner %s", ip, ms(d))
				}
			}
			t.Logf("preemption: node-a MASTER %s after the owner key moved to it", ms(takeover(v, a, back)-claimAt))
		})
	}
}

// TestWitnessVipctlHandover: `vipctl handover VI_1` on the owner (what the
// Ansible role's rolling maintenance runs), then `--undo` (node-a preempts
// back). vipctl-owned VIPs take the fast path through fenced: fenced
// releases them, moves the owner key to node-b, waits until node-b's
// keepalived left FAULT, then puts node-a's into FAULT, so node-b takes
// over after its skew time. keepalived-owned VIPs go through fenced too,
// by the pre-grant: fenced offers the key to node-b, waits until node-b
// left FAULT, then resigns (VIPs removed, FAULT: priority 0 sent) and moves
// the key. Before these paths existed vipctl put keepalived into FAULT
// first and node-b waited its master-down interval (381 ms at 0.1 s
// adverts): the limit below sits between the two. The --undo (node-a
// preempts back) of keepalived-owned VIPs still waits node-a's
// master-down interval. Zero overlap both ways, and the router converges
// on the new owner.
func TestWitnessVipctlHandover(t *testing.T) {
	ctx := context.Background()
	for _, m := range []vipkit.Mode{vipkit.Hooks, vipkit.Owned} {
		t.Run(m.Short(), func(t *testing.T) {
			key, opts := witnessOpts(m)
			v := shared(t, ctx, key, opts)
			r, err := v.Run(ctx, vipkit.Handover)
			if err != nil {
				t.Fatalf("handover: %v", err)
			}
			ka := v.KeepalivedVersion
			// The goal is the skew time plus a few etcd round trips. Room
			// for a loaded machine (200 ms, or half an advert at 1 s
			// adverts: 806 ms seen once on 2.2.7 with skew 609 ms), still
			// well below the master-down interval the old path waited.
			fast := m.Skew(ka) + max(200*time.Millisecond, (m.MasterDown(ka)-m.Skew(ka))/6)
			for _, back := range []bool{false, true} {
				limit := fast
				if back && !m.Own() {
					limit = m.MasterDown(ka) + 500*time.Millisecond
				}
				for _, f := range failovers(r.Result, back) {
					want := "node-b"
					if back {
						want = "node-a"
					}
					if f.To != want || f.Takeover == observe.None {
						t.Errorf("back=%v %s: moved to %q (takeover %s), want %s", back, f.VIP, f.To, ms(f.Takeover), want)
					}
					if f.DualOwner != 0 {
						t.Errorf("back=%v %s: dual-owner %s", back, f.VIP, ms(f.DualOwner))
					}
					if f.RouterConverged == observe.None {
						t.Errorf("back=%v %s: the router never pointed at %s", back, f.VIP, want)
					}
					if f.Takeover > limit {
						t.Errorf("back=%v %s: takeover %s after the command, want at most %s", back, f.VIP, ms(f.Takeover), ms(limit))
					}
					t.Logf("back=%v %s: takeover %s after the command (skew %s, master-down %s), router converged %s after it, client outage %s",
						back, f.VIP, ms(f.Takeover), ms(m.Skew(ka)), ms(m.MasterDown(ka)), ms(f.RouterConvergence), ms(f.Outage))
				}
			}
			// fenced's own account on node-a: the fast path or the
			// pre-grant ran, and node-b said it left FAULT before node-a
			// resigned.
			st, err := v.ReadFencedState(v.Nodes[0])
			if err != nil {
				t.Fatal(err)
			}
			var got []fencedstate.Handover
			for _, h := range st.Handovers {
				if h.Instance == lab.Instance {
					got = append(got, h)
				}
			}
			if len(got) != 1 || got[0].Outcome != fencedstate.HandedOver || got[0].To != "node-b" || !got[0].SuccessorHeld {
				t.Errorf("fenced's answers %+v, want one handed over to node-b after it left FAULT", got)
			} else {
				t.Logf("fenced on node-a: handed over to %s in %s (request to the move)", got[0].To, ms(got[0].Took))
				vipctlRefusesAlone(t, ctx, v)
			}
		})
	}
}

// vipctlRefusesAlone: with node-b and node-c in maintenance nobody else
// is a candidate, and `vipctl handover` on the owner fails with one line
// naming the cause and changes nothing: node-a keeps the VIPs, its
// maintenance file is untouched, no request is left behind.
func vipctlRefusesAlone(t *testing.T, ctx context.Context, v *vipkit.Lab) {
	t.Helper()
	if _, err := v.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	a := v.Nodes[0]
	since := v.TL.Now()
	for _, n := range v.Nodes[1:] {
		if _, err := v.WriteMaint(n, "1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range v.Nodes[1:] {
		key := "/vipkit/candidates/" + lab.Instance + "/" + n.Name
		if _, err := v.WaitFor(ctx, func(e observe.Event) bool {
			return e.Kind == observe.KindLease && e.Key == key && e.Text == "delete" && e.At >= since
		}, 10*time.Second); err != nil {
			t.Fatalf("%s never withdrew its candidacy in maintenance: %v", n.Name, err)
		}
	}
	// node-a's session hears the withdrawals from the same watch.
	waitLab(t, ctx, v, v.TL.Now()+300*time.Millisecond)
	maint := filepath.Join(a.StateDir, lab.Instance+".maint")
	before, _ := os.ReadFile(maint)
	at := v.TL.Now()
	out, err := v.Vipctl(ctx, a, "handover", "--json", lab.Instance)
	if err == nil || !strings.Contains(out, "vipctl: handover "+lab.Instance+": no other node is a candidate") {
		t.Fatalf("vipctl handover with no other candidate: %v, output %q; want a failure naming the cause", err, out)
	}
	end := v.TL.Now() + 500*time.Millisecond
	waitLab(t, ctx, v, end)
	if after, _ := os.ReadFile(maint); string(after) != string(before) {
		t.Errorf("refused handover changed the maintenance file: %q, was %q", after, before)
	}
	if _, err := os.Stat(fencedstate.RequestFile(maint)); !os.IsNotExist(err) {
		t.Errorf("refused handover left its request behind (%v)", err)
	}
	for _, ip := range v.VIPs() {
		if claimEnd(v.TL, a.Name, ip, at, end) != observe.None {
			t.Errorf("node-a let go of %s after a refused handover", ip)
		}
	}
	t.Logf("alone: %s", strings.TrimSpace(out))
}
