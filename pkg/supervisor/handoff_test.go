package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// A planned restart end to end through the supervisor and a real etcd:
// the first supervisor hands its healthy lease over (no fence, no
// revoke), the second adopts it without fencing first and keeps it alive.
func TestIntegrationHandoffThenAdopt(t *testing.T) {
	e := etcdtest.Start(t)
	doc := clusterDoc("a", e.Endpoints(), "3s") + instanceDoc("VI_1", "a", "192.0.2.100")
	rec, d := newRecorder(), &dialer{clients: map[string][]*clientv3.Client{}}
	s1 := &Supervisor{Node: "node-a", Actuator: rec, Dial: d.dial, ProgressEvery: 200 * time.Millisecond}
	if err := s1.Apply(context.Background(), cfgOf(t, doc)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "healthy", func() bool { return healthy(s1, "a") })
	_, writes, _ := rec.get("VI_1")
	handed := s1.Handoff()
	if len(handed) != 1 || handed[0].Cluster != "a" || handed[0].LeaseID == 0 {
		t.Fatalf("handed %+v, want cluster a's lease", handed)
	}
	if v, w, _ := rec.get("VI_1"); v != 0 || w != writes {
		t.Fatalf("the handoff wrote the track file (value %d, writes %d -> %d)", v, writes, w)
	}
	cli := etcdClient(t, e.Endpoints())
	if ttl, err := cli.TimeToLive(context.Background(), handed[0].LeaseID); err != nil || ttl.TTL <= 0 {
		t.Fatalf("handed lease %x not alive on the server: %v %+v", handed[0].LeaseID, err, ttl)
	}

	s2 := &Supervisor{Node: "node-a", Actuator: rec, Dial: d.dial, ProgressEvery: 200 * time.Millisecond,
		Adopt: lease.Handoff{Leases: handed}}
	if err := s2.Apply(context.Background(), cfgOf(t, doc)); err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	// Longer than the TTL: the lease is still alive on the server only if
	// the adopting holder renewed it.
	time.Sleep(4 * time.Second)
	c, ok := s2.cluster("a")
	if !ok || c.Lease.State != lease.Healthy.String() || c.Lease.LeaseID != int64(handed[0].LeaseID) {
		t.Fatalf("after adoption: %+v, want lease %x healthy", c.Lease, handed[0].LeaseID)
	}
	if ttl, err := cli.TimeToLive(context.Background(), handed[0].LeaseID); err != nil || ttl.TTL <= 0 {
		t.Fatalf("adopted lease %x expired: %v %+v", handed[0].LeaseID, err, ttl)
	}
	if v, w, _ := rec.get("VI_1"); v != 0 || w != writes {
		t.Errorf("adoption wrote the track file (value %d, writes %d -> %d)", v, writes, w)
	}
}

// Until its holder runs (the etcd client may take long), the supervisor
// enforces an adopted lease's deadline itself.
func TestAdoptedDeadlineGuardedBeforeTheHolder(t *testing.T) {
	rec := newRecorder()
	never := func(ctx context.Context, _ config.Cluster) (lease.Client, func() error, error) {
		return nil, nil, errors.New("etcd unreachable")
	}
	doc := clusterDoc("a", []string{"http://192.0.2.1:2379"}, "3s") + instanceDoc("VI_1", "a", "192.0.2.100")
	cfg := cfgOf(t, doc)
	now := lease.SystemClock().Now()
	hl := lease.HandedLease{Cluster: "a", Prefix: cfg.Clusters[0].Prefix, Endpoints: cfg.Clusters[0].Endpoints,
		LeaseID: 7, TTL: 3 * time.Second, Expiry: now + 800*time.Millisecond, Deadline: now + 300*time.Millisecond}
	s := &Supervisor{Node: "node-a", Actuator: rec, Dial: never, ProgressEvery: 100 * time.Millisecond,
		Adopt: lease.Handoff{Leases: []lease.HandedLease{hl}}}
	if err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, w, _ := rec.get("VI_1"); w != 0 {
		t.Fatal("an adopted cluster was fenced at start")
	}
	waitFor(t, 5*time.Second, "the guard's fence", func() bool { v, _, ok := rec.get("VI_1"); return ok && v == 1 })
	if lease.SystemClock().Now() < hl.Deadline {
		t.Error("fenced before the adopted deadline")
	}
}

// A stop before the holder of an adopted lease ever ran leaves nobody to
// renew it: the instances are fenced then, not at the adopted deadline.
func TestAdoptedFencedOnStopBeforeTheHolder(t *testing.T) {
	rec := newRecorder()
	never := func(ctx context.Context, _ config.Cluster) (lease.Client, func() error, error) {
		return nil, nil, errors.New("etcd unreachable")
	}
	doc := clusterDoc("a", []string{"http://192.0.2.1:2379"}, "3s") + instanceDoc("VI_1", "a", "192.0.2.100")
	cfg := cfgOf(t, doc)
	now := lease.SystemClock().Now()
	hl := lease.HandedLease{Cluster: "a", Prefix: cfg.Clusters[0].Prefix, Endpoints: cfg.Clusters[0].Endpoints,
		LeaseID: 7, TTL: time.Minute, Expiry: now + time.Minute, Deadline: now + 50*time.Second}
	s := &Supervisor{Node: "node-a", Actuator: rec, Dial: never, ProgressEvery: 100 * time.Millisecond,
		Adopt: lease.Handoff{Leases: []lease.HandedLease{hl}}}
	if err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, w, _ := rec.get("VI_1"); w != 0 {
		t.Fatal("an adopted cluster was fenced at start")
	}
	s.Stop()
	if v, _, ok := rec.get("VI_1"); !ok || v != 1 {
		t.Fatalf("after a stop before the holder ran: track file %d (written %v), want 1", v, ok)
	}
}

func etcdClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
