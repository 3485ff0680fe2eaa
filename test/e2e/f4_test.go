package e2e

import (
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// F4: the master loses etcd, and only etcd (its packets to etcd vanish;
// it still hears its peer and serves clients). Before the etcd server
// expires its lease — seen independently, by a watch from the etcd host
// on the member key — its VIPs are gone, its track file says 1 and
// keepalived reports FAULT (DESIGN I4); the backup takes over, and the
// client's outage stays within the VRRP takeover that follows the fence
// plus 100 ms. Reconnected, the node comes back as a BACKUP candidate
// (and, with the higher priority, preempts).
//
// Without fenced nothing reacts to losing etcd at all: the master keeps
// serving while the server expires its lease, so there is no control run
// to compare; every assertion below fails if fenced does not fence.
func TestF4EtcdLossFencesBeforeExpiry(t *testing.T) {
	for _, m := range []vipkit.Mode{vipkit.Hooks, vipkit.Owned} {
		t.Run(string(m), func(t *testing.T) {
			key, opts := modeOpts(m)
			v, r := scenario(t, key, opts, vipkit.EtcdLoss)
			f := r.Fence
			if f == nil {
				t.Fatal("no fence measured")
			}
			if f.Expired == observe.None {
				t.Fatalf("the server never expired %s's lease", r.From)
			}
			switch {
			case f.Released == observe.None:
				t.Errorf("%s kept its VIPs", r.From)
			case f.Released >= f.Expired:
				t.Errorf("VIPs released %s after the server expired the lease", ms(f.Released-f.Expired))
			}
			switch {
			case f.Tracked == observe.None:
				t.Errorf("the track file never said 1")
			case f.Tracked >= f.Expired:
				t.Errorf("track file said 1 %s after the server expired the lease", ms(f.Tracked-f.Expired))
			}
			switch {
			case f.Fault == observe.None:
				t.Errorf("keepalived never reported FAULT")
			case f.Fault >= f.Expired:
				t.Errorf("keepalived FAULT %s after the server expired the lease", ms(f.Fault-f.Expired))
			}
			if f.Lead == observe.None || f.Lead <= 0 {
				t.Errorf("fence lead time %s, want > 0", ms(f.Lead))
			}
			if r.FencedLead != observe.None && r.FencedLead <= 0 {
				t.Errorf("fenced's own account of the lead: %s", ms(r.FencedLead))
			}
			t.Logf("fence lead %s (fenced says %s); fenced %s after the cut, expiry %s after it",
				ms(f.Lead), ms(r.FencedLead), ms(f.Fenced-r.Fault), ms(f.Expired-r.Fault))

			for _, fo := range failovers(r.Result, false) {
				if fo.To != "node-b" || fo.Takeover == observe.None {
					t.Errorf("%s: moved to %q (takeover %s), want node-b", fo.VIP, fo.To, ms(fo.Takeover))
					continue
				}
				if f.Fenced == observe.None {
					continue
				}
				// VRRP's part: the backup's takeover after the master resigned,
				// at most its master-down interval.
				vrrp := r.Fault + fo.Takeover - f.Fenced
				if vrrp > m.MasterDown(v.KeepalivedVersion) {
					t.Errorf("%s: takeover %s after the fence, longer than VRRP's master-down interval %s", fo.VIP, ms(vrrp), ms(m.MasterDown(v.KeepalivedVersion)))
				}
				if fo.Outage == observe.None || fo.Outage > vrrp+100*time.Millisecond {
					t.Errorf("%s: client outage %s, want at most the takeover after the fence (%s) + 100 ms", fo.VIP, ms(fo.Outage), ms(vrrp))
				}
				t.Logf("%s: outage %s, takeover %s after the fence", fo.VIP, ms(fo.Outage), ms(vrrp))
			}

			// Recovery: after the reconnection node-a first reports BACKUP
			// (fenced healthy again: new lease, hold-down, track file 0).
			a := r.From
			var states []string
			for _, e := range v.TL.Events(func(e observe.Event) bool {
				return e.Kind == observe.KindState && e.Host == a && e.Instance == "VI_1" && e.At >= r.Heal && e.At <= r.End
			}) {
				states = append(states, e.State)
			}
			if len(states) == 0 || states[0] != "BACKUP" {
				t.Errorf("%s after the reconnection: %v, want BACKUP first", a, states)
			}
			zero := false
			for _, e := range v.TL.TrackWrites(a, "VI_1.fence", r.Heal, r.End) {
				zero = zero || e.Text == "0"
			}
			if !zero {
				t.Errorf("%s's track file never said 0 after the reconnection", a)
			}
		})
	}
}
