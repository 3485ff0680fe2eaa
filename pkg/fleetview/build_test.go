package fleetview

import (
	"reflect"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
)

var t0 = time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)

// seen is node's view of VI_1 received at boot time at; holds lists the
// VIPs it holds, since when its state began.
func seen(node string, at time.Duration, state string, since time.Time, holds ...string) fencedstate.Seen {
	iv := fencedstate.InstanceView{Name: "VI_1", State: state, Since: since, Dev: "eth0", VIPs: []string{"192.0.2.100", "2001:db8::100"}, Held: holds}
	if len(holds) > 0 {
		iv.HeldSince = since
	}
	return fencedstate.Seen{
		NodeView:     fencedstate.NodeView{Node: node, Cluster: "main", Lease: "healthy", RefreshEvery: 10 * time.Second, Instances: []fencedstate.InstanceView{iv}},
		Via:          "main",
		ReceivedBoot: at,
	}
}

func TestBuildFlags(t *testing.T) {
	now := 100 * time.Second
	fresh := now - time.Second
	old := now - time.Minute
	tests := []struct {
		name      string
		views     []fencedstate.Seen
		down      string
		owners    []string
		problem   string
		since     time.Time
		sinceFrom string
		stale     []bool
	}{
		{
			name:   "one owner",
			views:  []fencedstate.Seen{seen("node-a", fresh, "MASTER", t0, "192.0.2.100", "2001:db8::100"), seen("node-b", fresh, "BACKUP", t0)},
			owners: []string{"node-a"}, stale: []bool{false, false},
		},
		{
			name: "split brain: the later owner's holding time, from its view",
			views: []fencedstate.Seen{
				seen("node-a", fresh, "MASTER", t0, "192.0.2.100"),
				seen("node-b", fresh, "MASTER", t0.Add(3*time.Second), "192.0.2.100", "2001:db8::100"),
			},
			owners: []string{"node-a", "node-b"}, problem: DualOwner, since: t0.Add(3 * time.Second), sinceFrom: "node-b", stale: []bool{false, false},
		},
		{
			name:   "nobody: the latest departure",
			views:  []fencedstate.Seen{seen("node-a", fresh, "FAULT", t0.Add(2*time.Second)), seen("node-b", fresh, "BACKUP", t0)},
			owners: []string{}, problem: NoOwner, since: t0.Add(2 * time.Second), sinceFrom: "node-a", stale: []bool{false, false},
		},
		{
			name: "a stale view is not counted as an owner",
			views: []fencedstate.Seen{
				seen("node-a", fresh, "MASTER", t0, "192.0.2.100"),
				seen("node-b", old, "MASTER", t0, "192.0.2.100"),
			},
			owners: []string{"node-a"}, stale: []bool{false, true},
		},
		{
			name:   "a stale view alone is judged by no one",
			views:  []fencedstate.Seen{seen("node-a", old, "BACKUP", t0)},
			owners: []string{}, stale: []bool{true},
		},
		{
			name: "the recording fenced is down: nothing is trusted, nothing flagged",
			views: []fencedstate.Seen{
				seen("node-a", fresh, "MASTER", t0, "192.0.2.100"),
				seen("node-b", fresh, "MASTER", t0, "192.0.2.100"),
			},
			down:   "fenced stopped",
			owners: []string{}, stale: []bool{true, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Build(fencedstate.Snapshot{Node: "node-a", Fleet: tt.views}, now, tt.down)
			if len(r.Instances) != 1 {
				t.Fatalf("instances %+v, want VI_1 alone", r.Instances)
			}
			ir := r.Instances[0]
			if !reflect.DeepEqual(ir.Owners, tt.owners) || ir.Problem != tt.problem {
				t.Errorf("owners %v problem %q, want %v %q", ir.Owners, ir.Problem, tt.owners, tt.problem)
			}
			if !ir.Since.Equal(tt.since) || ir.SinceFrom != tt.sinceFrom {
				t.Errorf("since %s from %q, want %s from %q", ir.Since, ir.SinceFrom, tt.since, tt.sinceFrom)
			}
			var stale []bool
			for _, c := range ir.Nodes {
				stale = append(stale, c.Stale)
			}
			if !reflect.DeepEqual(stale, tt.stale) {
				t.Errorf("stale per node %v, want %v", stale, tt.stale)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.problem != ""]; r.Problems != want {
				t.Errorf("problems %d, want %d", r.Problems, want)
			}
			if got := r.Owners()["VI_1"]; got != len(tt.owners) {
				t.Errorf("owner count %d, want %d", got, len(tt.owners))
			}
		})
	}
}

// The same node seen through two clusters on one etcd counts once, with
// its fresher record.
func TestBuildMergesTheSameNodeSeenTwice(t *testing.T) {
	now := 100 * time.Second
	a := seen("node-b", now-time.Minute, "MASTER", t0, "192.0.2.100")
	b := seen("node-b", now-time.Second, "BACKUP", t0)
	b.Via = "second"
	r := Build(fencedstate.Snapshot{Fleet: []fencedstate.Seen{a, b}}, now, "")
	ir := r.Instances[0]
	if len(ir.Nodes) != 1 || ir.Nodes[0].State != "BACKUP" || ir.Nodes[0].Stale {
		t.Fatalf("nodes %+v, want node-b once, its fresh BACKUP view", ir.Nodes)
	}
	if ir.Problem != NoOwner {
		t.Fatalf("problem %q, want %s", ir.Problem, NoOwner)
	}
}

func TestStaleAfterFollowsTheRefresh(t *testing.T) {
	v := seen("node-a", 0, "MASTER", t0)
	v.RefreshEvery = 4 * time.Second
	if Stale(v, 9*time.Second) || !Stale(v, 11*time.Second) {
		t.Fatalf("a view refreshed every 4 s: stale after %s, want 10 s", StaleAfter(4*time.Second))
	}
}
