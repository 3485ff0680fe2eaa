package supervisor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/fleetview"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// fakeHost is a host whose holding a test sets.
type fakeHost struct {
	mu   sync.Mutex
	held bool
}

func (f *fakeHost) set(held bool) { f.mu.Lock(); f.held = held; f.mu.Unlock() }

func (f *fakeHost) observe(ins []vip.Target, fenced bool, _ []fencedstate.InstanceView) []fencedstate.InstanceView {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fencedstate.InstanceView
	for _, t := range ins {
		iv := fencedstate.InstanceView{Name: t.Instance, Dev: t.Dev, State: "BACKUP", VIPs: []string{}, Held: []string{}}
		for _, v := range t.VIPs {
			iv.VIPs = append(iv.VIPs, v.String())
			if f.held && !fenced {
				iv.Held = append(iv.Held, v.String())
			}
		}
		if len(iv.Held) > 0 {
			iv.State = "MASTER"
		}
		out = append(out, iv)
	}
	return out
}

func fleetNode(t *testing.T, node string, endpoints []string) (*Supervisor, *fakeHost) {
	t.Helper()
	h := &fakeHost{}
	s := &Supervisor{Node: node, Actuator: newRecorder(), Dial: (&dialer{clients: map[string][]*clientv3.Client{}}).dial,
		ProgressEvery: 200 * time.Millisecond, Observe: h.observe}
	doc := "node = \"" + node + "\"\n" + clusterDoc("main", endpoints, "2s") + instanceDoc("VI_1", "main", "192.0.2.100")
	if err := s.Apply(context.Background(), cfgOf(t, doc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, h
}

func owners(s *Supervisor) []string {
	r := fleetview.Build(s.Snapshot(), s.now(), "")
	for _, ir := range r.Instances {
		if ir.Name == "VI_1" {
			return ir.Owners
		}
	}
	return nil
}

func nodesSeen(s *Supervisor) string {
	var n []string
	for _, v := range s.Snapshot().Fleet {
		n = append(n, v.Node)
	}
	return strings.Join(n, ",")
}

// Two nodes on one real etcd: each publishes its view under its lease and
// records the other's; a second owner shows on both and in the owner-count
// metric, and goes when it lets go; an unchanged view is not rewritten; a
// node that stops (lease revoked) leaves the others' view.
func TestIntegrationFleetViewPublishAndWatch(t *testing.T) {
	e := etcdtest.Start(t)
	a, ha := fleetNode(t, "node-a", e.Endpoints())
	b, hb := fleetNode(t, "node-b", e.Endpoints())
	ha.set(true)
	for _, s := range []*Supervisor{a, b} {
		waitFor(t, 15*time.Second, s.Node+" sees both nodes, node-a the owner", func() bool {
			o := owners(s)
			return nodesSeen(s) == "node-a,node-b" && len(o) == 1 && o[0] == "node-a"
		})
	}

	// Nothing changes: node-a's view key is not rewritten within a few
	// samples (the refresh is ten renewal intervals away).
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	modRev := func() int64 {
		g, err := cli.Get(context.Background(), "/vipkit/views/node-a")
		if err != nil || len(g.Kvs) != 1 {
			t.Fatalf("node-a's view key: %v %v", g, err)
		}
		if g.Kvs[0].Lease == 0 {
			t.Fatal("node-a's view is not under a lease")
		}
		return g.Kvs[0].ModRevision
	}
	before := modRev()
	time.Sleep(2 * time.Second) // six samples at TTL 2 s
	if after := modRev(); after != before {
		t.Fatalf("node-a's unchanged view was rewritten (revision %d -> %d)", before, after)
	}

	// node-b takes the VIP too: both record two owners.
	hb.set(true)
	reg := prometheus.NewRegistry()
	NewFleetMetrics(a, reg)
	for _, s := range []*Supervisor{a, b} {
		waitFor(t, 10*time.Second, s.Node+" sees two owners", func() bool { return len(owners(s)) == 2 })
		r := fleetview.Build(s.Snapshot(), s.now(), "")
		if r.Instances[0].Problem != fleetview.DualOwner {
			t.Fatalf("%s: problem %q, want %s", s.Node, r.Instances[0].Problem, fleetview.DualOwner)
		}
	}
	if v := gaugeOf(t, reg, "VI_1"); v != 2 {
		t.Fatalf("vipkit_fleet_instance_owners{vrrp_instance=VI_1} = %v during the dual ownership, want 2", v)
	}
	hb.set(false)
	waitFor(t, 10*time.Second, "node-a sees one owner again", func() bool { return len(owners(a)) == 1 })
	if v := gaugeOf(t, reg, "VI_1"); v != 1 {
		t.Fatalf("owner count %v after node-b let go, want 1", v)
	}

	// node-b stops: its lease is revoked, its view leaves node-a's record.
	b.Stop()
	waitFor(t, 10*time.Second, "node-b gone from node-a's view", func() bool { return nodesSeen(a) == "node-a" })
}

// gaugeOf gathers the owner gauge of one instance from reg.
func gaugeOf(t *testing.T, reg *prometheus.Registry, instance string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vipkit_fleet_instance_owners" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "vrrp_instance" && l.GetValue() == instance {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no vipkit_fleet_instance_owners{vrrp_instance=%q}", instance)
	return 0
}
