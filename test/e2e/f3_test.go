package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// F3: the nodes stop hearing each other (bridge port isolation) and both
// become MASTER; after a second the split heals and node-b steps down.
// The heal comes right after one of node-b's adverts, so node-b hears
// node-a first: unless node-b says something before it steps down, node-a
// never hears a lower priority and nobody re-announces (seed 003). Within 1 s of
// the heal the router maps the VIP to the surviving master (node-a) for
// good, and 5 s after the heal exactly one node holds it. Control
// (keepalived alone): the router keeps node-b's MAC for seconds.
func TestF3SplitBrainHeal(t *testing.T) {
	for _, m := range []vipkit.Mode{vipkit.Hooks, vipkit.Owned} {
		t.Run(string(m), func(t *testing.T) {
			key, opts := modeOpts(m)
			v, r := scenario(t, key, opts, vipkit.Split)
			if r.DualMaster < vipkit.SplitHold/2 {
				t.Fatalf("dual MASTER %s: the split brain did not happen", ms(r.DualMaster))
			}
			a := node(t, v, "node-a")
			at := waitAfterHeal(t, v, r)
			for _, ip := range v.VIPs() {
				converged := routerSettled(v, r, ip, a.MAC(), at)
				switch {
				case converged == observe.None:
					t.Errorf("%s: the router does not point at node-a 5 s after the heal (it says %s)", ip, v.TL.NeighAt("router", ip, at))
				case converged-r.Heal > time.Second:
					t.Errorf("%s: the router settled on node-a %s after the heal, want within 1 s", ip, ms(converged-r.Heal))
				default:
					t.Logf("%s: router on node-a %s after the heal", ip, ms(converged-r.Heal))
				}
				if h := v.Holders(ip, at); len(h) != 1 || h[0] != "node-a" {
					t.Errorf("%s: held by %v 5 s after the heal, want node-a alone", ip, h)
				}
				for _, n := range v.Nodes {
					if n != a && len(observe.Clip(v.TL.ClaimSpans(n.Name, ip, at+1), at, at+1)) > 0 {
						t.Errorf("%s: %s still claims it (address or local route) 5 s after the heal", ip, n.Name)
					}
				}
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		key, opts := controlOpts()
		v, r := scenario(t, key, opts, vipkit.Split)
		a := node(t, v, "node-a")
		at := waitAfterHeal(t, v, r)
		for _, ip := range v.VIPs() {
			converged := routerSettled(v, r, ip, a.MAC(), at)
			if converged != observe.None && converged-r.Heal <= time.Second {
				t.Errorf("%s: control: the router was on node-a %s after the heal; the stale entry this test relies on did not happen", ip, ms(converged-r.Heal))
			} else {
				t.Logf("%s: control: router on node-a only %s after the heal", ip, ms(converged-r.Heal))
			}
		}
	})
}

// waitAfterHeal lets 5 s pass after the heal, on the lab's clock, and
// returns that moment.
func waitAfterHeal(t *testing.T, v *vipkit.Lab, r vipkit.Result) time.Duration {
	t.Helper()
	at := r.Heal + 5*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= at }, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return at
}

// routerSettled is when, after the heal, the router's entry for ip began to
// point at mac for good (until at); None if it does not point there at at.
func routerSettled(v *vipkit.Lab, r vipkit.Result, ip netip.Addr, mac string, at time.Duration) time.Duration {
	converged := observe.None
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindNeigh && e.Host == "router" && e.IP == ip && e.MAC != "" && e.At <= at
	}) {
		switch {
		case e.MAC != mac:
			converged = observe.None
		case converged == observe.None:
			converged = max(e.At, r.Heal)
		}
	}
	return converged
}
