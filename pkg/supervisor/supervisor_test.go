package supervisor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// recorder is an Actuator that records the track file value each instance
// was last given and every write, instead of touching the host.
type recorder struct {
	mu     sync.Mutex
	value  map[string]int
	writes map[string]int
}

func newRecorder() *recorder { return &recorder{value: map[string]int{}, writes: map[string]int{}} }

func (r *recorder) set(ins []fence.Instance, v int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, in := range ins {
		r.value[in.Instance] = v
		r.writes[in.Instance]++
	}
}

func (r *recorder) Fence(_ context.Context, ins []fence.Instance, _ string) error {
	r.set(ins, 1)
	return nil
}
func (r *recorder) Unfence(ins []fence.Instance) error              { r.set(ins, 0); return nil }
func (r *recorder) Release(context.Context, []fence.Instance) error { return nil }
func (r *recorder) Reassert(ins []fence.Instance, fenced bool) error {
	want := 0
	if fenced {
		want = 1
	}
	var wrong []fence.Instance
	for _, in := range ins {
		if v, _, ok := r.get(in.Instance); !ok || v != want {
			wrong = append(wrong, in)
		}
	}
	r.set(wrong, want)
	return nil
}

func (r *recorder) get(name string) (value, writes int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.value[name]
	return v, r.writes[name], ok
}

// dialer hands out real clients and remembers them, so a test can check
// that a removed cluster's client was closed.
type dialer struct {
	mu      sync.Mutex
	clients map[string][]*clientv3.Client
}

func (d *dialer) dial(_ context.Context, cl config.Cluster) (lease.Client, func() error, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints, DialTimeout: cl.DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	d.clients[cl.Name] = append(d.clients[cl.Name], c)
	d.mu.Unlock()
	return c, c.Close, nil
}

func (d *dialer) last(name string) *clientv3.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := d.clients[name]
	return cs[len(cs)-1]
}

func cfgOf(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clusterDoc(name string, endpoints []string, ttl string) string {
	return fmt.Sprintf("[[cluster]]\nname = %q\nendpoints = [\"%s\"]\nttl = %q\nmargin = \"500ms\"\nhold_down = \"300ms\"\n", name, strings.Join(endpoints, `", "`), ttl)
}

func instanceDoc(name, cluster, vip string) string {
	return fmt.Sprintf("[[instance]]\nname = %q\ndev = \"eth0\"\nvips = [%q]\ncluster = %q\ntrack_file = \"/run/vipkit-test/%s.fence\"\n", name, vip, cluster, name)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Supervisor) cluster(name string) (fencedstate.Cluster, bool) {
	for _, c := range s.Snapshot().Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return fencedstate.Cluster{}, false
}

func healthy(s *Supervisor, name string) bool {
	c, ok := s.cluster(name)
	return ok && c.Lease.State == lease.Healthy.String()
}

// F5, I8: reloads add, change and remove clusters and instances; what a
// reload does not touch keeps its lease, its state and its track file.
func TestIntegrationReloadTouchesOnlyWhatChanged(t *testing.T) {
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	rec, d := newRecorder(), &dialer{clients: map[string][]*clientv3.Client{}}
	s := &Supervisor{Node: "node-a", Actuator: rec, Dial: d.dial, ProgressEvery: 200 * time.Millisecond}
	ctx := context.Background()
	t.Cleanup(s.Stop)

	base := "node = \"node-a\"\n" + clusterDoc("a", a.Endpoints(), "2s") + instanceDoc("VI_1", "a", "192.0.2.100")
	if err := s.Apply(ctx, cfgOf(t, base)); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := rec.get("VI_1"); v != 1 {
		t.Fatal("VI_1 was not fenced before its holder started (I5)")
	}
	waitFor(t, 10*time.Second, "cluster a healthy", func() bool { return healthy(s, "a") })
	waitFor(t, 2*time.Second, "VI_1 unfenced", func() bool { v, _, _ := rec.get("VI_1"); return v == 0 })
	ca, _ := s.cluster("a")
	leaseA := ca.Lease.LeaseID
	_, writesVI1, _ := rec.get("VI_1")

	// Add a second cluster and an instance on it.
	cfg2 := base + clusterDoc("b", b.Endpoints(), "2s") + instanceDoc("VI_2", "b", "192.0.2.101")
	if err := s.Apply(ctx, cfgOf(t, cfg2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "cluster b healthy", func() bool { return healthy(s, "b") })
	waitFor(t, 2*time.Second, "VI_2 unfenced", func() bool { v, _, _ := rec.get("VI_2"); return v == 0 })

	// Change cluster b (TTL): b gets a new client and lease, a nothing.
	bClient := d.last("b")
	cb, _ := s.cluster("b")
	cfg3 := base + clusterDoc("b", b.Endpoints(), "3s") + instanceDoc("VI_2", "b", "192.0.2.101")
	if err := s.Apply(ctx, cfgOf(t, cfg3)); err != nil {
		t.Fatal(err)
	}
	if bClient.Ctx().Err() == nil {
		t.Fatal("the changed cluster's old client is still open")
	}
	waitFor(t, 10*time.Second, "changed cluster b healthy", func() bool {
		c, _ := s.cluster("b")
		return c.Lease.State == lease.Healthy.String() && c.Lease.LeaseID != cb.Lease.LeaseID
	})

	// An instance moves to cluster a: it takes a's current state at once.
	cfg4 := base + instanceDoc("VI_2", "a", "192.0.2.101")
	if err := s.Apply(ctx, cfgOf(t, cfg4)); err != nil {
		t.Fatal(err)
	}
	if d.last("b").Ctx().Err() == nil {
		t.Fatal("the removed cluster's client is still open")
	}
	if _, ok := s.cluster("b"); ok {
		t.Fatal("removed cluster still runs")
	}
	if v, _, _ := rec.get("VI_2"); v != 0 {
		t.Fatal("VI_2 moved to healthy cluster a but is not unfenced")
	}

	// A reload that changes nothing changes nothing, and nor does a
	// keepalived (re)start when the files are right.
	if err := s.Apply(ctx, cfgOf(t, cfg4)); err != nil {
		t.Fatal(err)
	}
	s.RewriteTracks(ctx)

	// Through all of it cluster a kept its lease and VI_1 its track file.
	ca, _ = s.cluster("a")
	if ca.Lease.LeaseID != leaseA || ca.Lease.State != lease.Healthy.String() || ca.Lease.Fences[string(lease.ReasonDeadline)] != 0 {
		t.Fatalf("cluster a was disturbed: lease %x -> %x, state %s, fences %v", leaseA, ca.Lease.LeaseID, ca.Lease.State, ca.Lease.Fences)
	}
	if _, w, _ := rec.get("VI_1"); w != writesVI1 {
		t.Fatalf("VI_1's track file was written %d more times by reloads that did not touch it", w-writesVI1)
	}
}

// One failing cluster never blocks another: a cluster whose etcd is down
// stays fenced while its neighbour is healthy, and can be removed.
func TestIntegrationFailingClusterDoesNotBlockOthers(t *testing.T) {
	a := etcdtest.Start(t)
	rec, d := newRecorder(), &dialer{clients: map[string][]*clientv3.Client{}}
	s := &Supervisor{Node: "node-a", Actuator: rec, Dial: d.dial, ProgressEvery: 200 * time.Millisecond}
	t.Cleanup(s.Stop)
	down := []string{"http://127.0.0.1:1"} // nothing listens
	doc := clusterDoc("a", a.Endpoints(), "2s") + clusterDoc("dead", down, "2s") +
		instanceDoc("VI_1", "a", "192.0.2.100") + instanceDoc("VI_2", "dead", "192.0.2.101")
	if err := s.Apply(context.Background(), cfgOf(t, doc)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "cluster a healthy beside a dead one", func() bool { return healthy(s, "a") })
	if v, _, _ := rec.get("VI_2"); v != 1 {
		t.Fatal("the instance of the unreachable cluster is not fenced")
	}
	if snap := s.Snapshot(); snap.State != "starting" && snap.State != "fenced" {
		t.Fatalf("overall state %q with a cluster that never got a lease", snap.State)
	}
	start := time.Now()
	if err := s.Apply(context.Background(), cfgOf(t, clusterDoc("a", a.Endpoints(), "2s")+instanceDoc("VI_1", "a", "192.0.2.100"))); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("removing the dead cluster took %s", took)
	}
	if !healthy(s, "a") || !s.Alive(time.Second) {
		t.Fatal("cluster a disturbed by removing the dead one")
	}
}
