package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// F5 (and I8): every node's fenced runs with VI_1 guarded by the lab's
// etcd; its config gains VI_2 guarded by a second etcd cluster and it gets
// SIGHUP. VI_2 becomes guarded (track file 0) and elected, while VI_1 is
// not disturbed in any way, for at least one lease TTL after the reload:
// the same lease ID in the main cluster, no write to its track file, no
// keepalived transition, no change to its VIPs, no change to its member
// keys in etcd. (A reload that rebuilt the main cluster's holder would
// grant a new lease and rewrite the track file; one that fenced it would
// show as FAULT.)
func TestF5ReloadAddsInstanceAndCluster(t *testing.T) {
	key, opts := fleetOpts()
	v, r := scenario(t, key, opts, vipkit.Reload)
	// Watch VI_1 for a whole TTL after the reload (and past the point where
	// VI_2 was up).
	until := max(r.End, r.Fault+vipkit.DefaultTTL+time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= until }, 2*vipkit.DefaultTTL+10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range v.Nodes {
		l := r.Leases[n.Name]
		if l[0] == 0 || l[0] != l[1] {
			t.Errorf("%s: main cluster lease %x before the reload, %x after: want the same lease", n.Name, l[0], l[1])
		}
		if st, err := v.ReadFencedState(n); err != nil {
			t.Error(err)
		} else {
			for _, c := range st.Clusters {
				if c.Name == "main" && c.Lease.LeaseID != l[0] {
					t.Errorf("%s: main cluster lease %x at %s, want %x", n.Name, c.Lease.LeaseID, observe.FormatAt(until), l[0])
				}
			}
		}
		for _, e := range v.TL.TrackWrites(n.Name, lab.Instance+".fence", r.Fault, until) {
			if e.Text != "0" {
				t.Errorf("%s: VI_1 flapped: its track file said %q after the reload (%s)", n.Name, e.Text, e)
			} else {
				t.Errorf("%s: VI_1's track file was rewritten (same value) %s after the reload; I8 wants it untouched", n.Name, ms(e.At-r.Fault))
			}
		}
		for _, e := range v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindState && e.Host == n.Name && e.Instance == lab.Instance && e.At >= r.Fault && e.At <= until
		}) {
			t.Errorf("%s: VI_1 changed state after the reload: %s", n.Name, e)
		}
		for _, ip := range []netip.Addr{lab.VIP4, lab.VIP6} {
			for _, e := range v.TL.Events(func(e observe.Event) bool {
				return (e.Kind == observe.KindAddr || e.Kind == observe.KindRoute) && e.Host == n.Name && e.IP == ip && e.At >= r.Fault && e.At <= until
			}) {
				t.Errorf("%s: VI_1's VIP changed after the reload: %s", n.Name, e)
			}
		}
	}
	second := map[string]bool{}
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindLease && strings.HasPrefix(e.Key, "/vipkit/members/") && e.At >= r.Fault && e.At <= until
	}) {
		if e.Host == "etcd" {
			t.Errorf("main cluster's member keys changed after the reload: %s", e)
		} else if e.Host == "etcd2" && e.Text == "put" {
			second[strings.TrimPrefix(e.Key, "/vipkit/members/")] = true
		}
	}
	for _, n := range v.Nodes {
		if !second[n.Name] {
			t.Errorf("%s holds no lease in the second cluster after the reload", n.Name)
		}
	}
	t.Logf("VI_2 guarded and elected %s after the SIGHUP; VI_1 untouched until %s after it", ms(r.End-r.Fault), ms(until-r.Fault))
}
