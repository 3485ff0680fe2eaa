package e2e

import (
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// F2, for every kind of switchover: the router maps the VIP to the new
// owner within 100 ms of the takeover and keeps it there; the old owner
// sends no ARP reply, gratuitous ARP or neighbour advertisement for the
// VIP once it released it — not even when the router, having forgotten
// its entry, asks the whole segment again (every runner ends with that
// question); and the switchovers vipkit initiates (fence, handover) have
// no moment of two owners. Control: after keepalived alone crashes on
// the master, the old owner still answers the router's question.
func TestF2Switchovers(t *testing.T) {
	kinds := []struct {
		name     string
		scenario vipkit.Scenario
		back     bool // the scenario's second move
		zeroDual bool
	}{
		{"handover", vipkit.Handover, false, true},
		{"preemption", vipkit.Handover, true, false}, // handover --undo: node-a preempts node-b
		{"fence", vipkit.EtcdLoss, false, true},
		{"crash", vipkit.Crash, false, false},
	}
	for _, m := range vipkit.Modes {
		for _, k := range kinds {
			t.Run(string(m)+"/"+k.name, func(t *testing.T) {
				key, opts := modeOpts(m)
				v, r := scenario(t, key, opts, k.scenario)
				from, to, start, end := r.From, r.To, r.Fault, r.Heal
				if end == 0 {
					end = r.End
				}
				if k.back {
					from, to, start, end = r.To, r.From, r.Heal, r.End
				}
				toMAC := node(t, v, to).MAC()
				for _, f := range failovers(r.Result, k.back) {
					if f.To != to || f.Takeover == observe.None {
						t.Errorf("%s: moved %s -> %s (takeover %s), want %s -> %s", f.VIP, f.From, f.To, ms(f.Takeover), from, to)
						continue
					}
					takeover := start + f.Takeover
					if f.RouterConvergence == observe.None || f.RouterConvergence > 100*time.Millisecond {
						t.Errorf("%s: router points at %s %s after the takeover, want within 100 ms", f.VIP, to, ms(f.RouterConvergence))
					}
					// ... and stays there (a forgotten entry is re-learnt from to),
					// from the neighbour event that showed it (both stamped on receipt).
					for _, e := range v.TL.Events(func(e observe.Event) bool {
						return e.Kind == observe.KindNeigh && e.Host == "router" && e.IP == f.VIP && e.MAC != "" && e.At >= f.RouterSeen && e.At <= end
					}) {
						if e.MAC != toMAC {
							t.Errorf("%s: router went back to %s (%s) at %s", f.VIP, e.MAC, e.Owner, observe.FormatAt(e.At-start))
						}
					}
					rel := claimEnd(v.TL, from, f.VIP, start, end)
					if rel == observe.None {
						t.Errorf("%s: %s still claims the VIP at the end of the switchover", f.VIP, from)
						continue
					}
					if rel > takeover+time.Second {
						t.Errorf("%s: %s released the VIP %s after the takeover", f.VIP, from, ms(rel-takeover))
					}
					for _, e := range answersFrom(v.TL, from, f.VIP, rel, end) {
						t.Errorf("%s: %s announced the VIP %s after releasing it: %s", f.VIP, from, ms(e.At-rel), e)
					}
					if k.zeroDual && f.DualOwner != 0 {
						t.Errorf("%s: dual-owner time %s on a vipkit-initiated switchover, want 0", f.VIP, ms(f.DualOwner))
					}
					t.Logf("%s: takeover %s, router %s after it, released %s before it, dual-owner %s",
						f.VIP, ms(f.Takeover), ms(f.RouterConvergence), ms(takeover-rel), ms(f.DualOwner))
				}
			})
		}
	}
	t.Run("control/crash", func(t *testing.T) {
		key, opts := controlOpts()
		v, r := scenario(t, key, opts, vipkit.Crash)
		for _, f := range failovers(r.Result, false) {
			if f.Takeover == observe.None {
				t.Errorf("%s: no takeover", f.VIP)
				continue
			}
			takeover := r.Fault + f.Takeover
			if n := len(answersFrom(v.TL, r.From, f.VIP, takeover, r.End)); n == 0 {
				t.Errorf("%s: control: %s sent nothing for the VIP after %s took over; the stale owner this test relies on did not show", f.VIP, r.From, r.To)
			} else {
				t.Logf("%s: control: the crashed %s still announced the VIP %d times after the takeover", f.VIP, r.From, n)
			}
		}
	})
}
