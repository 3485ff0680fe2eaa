package witness_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/witness"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// Sessions of three nodes against a real etcd, each with its own lease,
// acting on one shared fake world that models the worst keepalived: a
// track file at OK makes the node add the VIPs at once. The world fails the
// test the moment two nodes hold the VIPs (I9), and records the order of
// releases and permits.

const prefix = "/vipkit-wit"

type world struct {
	t    *testing.T
	mu   sync.Mutex
	ok   map[string]bool // track file says OK
	vips map[string]bool // node holds the VIPs
	log  []string
	dual int

	// vrrp models keepalived-owned VIPs (pregrant_test.go): a node whose
	// track file says OK while a node of higher priority holds the VIPs
	// is BACKUP, takes them the moment that node resigns (its priority-0
	// advert, no skew), and after down elects itself anyway (the owner's
	// adverts lost: the worst case). Otherwise a track file at OK takes
	// the VIPs at once.
	vrrp   bool
	prio   map[string]int
	down   time.Duration
	epoch  map[string]int
	stall  map[string]chan struct{} // a node's Resign waits for it
	refuse map[string]bool          // a node's Permit fails
}

func newWorld(t *testing.T) *world {
	return &world{t: t, ok: map[string]bool{}, vips: map[string]bool{}}
}

func (w *world) event(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf(format, args...))
}

// act is one node's witness.Actuator.
type act struct {
	w    *world
	node string
}

func (a act) Permit(_ context.Context, s *witness.Session, in string) error {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.vrrp {
		return w.permitVRRP(s, a.node, in)
	}
	for n, held := range w.vips {
		if held && n != a.node {
			w.dual++
			w.t.Errorf("I9: %s permitted %s while %s holds its VIPs; events: %v", a.node, in, n, w.log)
		}
	}
	w.ok[a.node], w.vips[a.node] = true, true
	w.event("permit %s", a.node)
	return nil
}

func (a act) Release(_ context.Context, in string) error {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.vips[a.node] = false
	w.event("release %s", a.node)
	return nil
}

func (a act) Resign(_ context.Context, in, reason string) error {
	w := a.w
	w.mu.Lock()
	stall := w.stall[a.node]
	w.mu.Unlock()
	if stall != nil {
		<-stall
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.vips[a.node], w.ok[a.node] = false, false
	w.event("resign %s", a.node)
	if w.vrrp {
		w.epoch[a.node]++
		w.priorityZero(a.node)
	}
	return nil
}

func (w *world) holders() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		if w.vips[n] {
			out = append(out, n)
		}
	}
	return out
}

// node is one running session with its own client and lease.
type node struct {
	name   string
	cli    *clientv3.Client
	lease  clientv3.LeaseID
	sess   *witness.Session
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startNode(t *testing.T, srv *etcdtest.Server, w *world, name string, in witness.Instance) *node {
	t.Helper()
	return startNodeWith(t, srv, w, name, in, nil)
}

// startNodeWith lets tune set the session's fields before it runs.
func startNodeWith(t *testing.T, srv *etcdtest.Server, w *world, name string, in witness.Instance, tune func(*witness.Session)) *node {
	t.Helper()
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := cli.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("grant lease for %s: %v", name, err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	n := &node{name: name, cli: cli, lease: g.ID, cancel: scancel, done: make(chan error, 1)}
	n.sess = &witness.Session{
		KV: cli, Act: act{w, name}, Prefix: prefix, Node: name, Lease: g.ID,
		Instances: []witness.Instance{in}, RequestTimeout: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", name),
	}
	if tune != nil {
		tune(n.sess)
	}
	go func() { n.done <- n.sess.Run(sctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.once.Do(func() {
		n.cancel()
		<-n.done
	})
}

// fence does what the runtime does when the holder fences: the session
// ends, every instance resigns, the lease is revoked.
func (n *node) fence(t *testing.T, w *world) {
	t.Helper()
	n.stop()
	_ = act{w, n.name}.Resign(context.Background(), "VI_1", "fence")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.cli.Revoke(ctx, n.lease); err != nil {
		t.Fatalf("revoke %s's lease: %v", n.name, err)
	}
}

func waitHolder(t *testing.T, w *world, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h := w.holders(); len(h) == 1 && h[0] == want {
			// Stable: nobody else takes it in the next moment either.
			time.Sleep(300 * time.Millisecond)
			if h := w.holders(); len(h) == 1 && h[0] == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Fatalf("holder is not %s: %v; events: %v", want, w.vips, w.log)
}

func owner(t *testing.T, cli *clientv3.Client) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, witness.OwnerKey(prefix, "VI_1"))
	if err != nil {
		t.Fatalf("get owner key: %v", err)
	}
	if len(r.Kvs) == 0 {
		return "", 0
	}
	return string(r.Kvs[0].Value), r.Kvs[0].Lease
}

func clean(t *testing.T, cli *clientv3.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
		t.Fatalf("clean %s: %v", prefix, err)
	}
}

func TestIntegrationClaimsFollowPriorities(t *testing.T) {
	srv := etcdtest.Start(t)
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast=%v", fast), func(t *testing.T) {
			w := newWorld(t)
			if !fast {
				// keepalived-owned: the planned stop is pre-granted, which
				// only the VRRP model tells apart from an overlap.
				w = newVRRPWorld(t, 10*time.Second)
			}
			admin := srv.Client(t)
			clean(t, admin)
			inst := func(p int) witness.Instance { return witness.Instance{Name: "VI_1", Priority: p, Fast: fast} }
			// The lowest starts first and claims; each higher one preempts.
			c := startNode(t, srv, w, "node-c", inst(50))
			waitHolder(t, w, "node-c")
			b := startNode(t, srv, w, "node-b", inst(100))
			waitHolder(t, w, "node-b")
			a := startNode(t, srv, w, "node-a", inst(150))
			waitHolder(t, w, "node-a")
			if o, l := owner(t, admin); o != "node-a" || l != int64(a.lease) {
				t.Errorf("owner key = %q under lease %x, want node-a under %x", o, l, a.lease)
			}
			// The owner fences: the key goes with its lease, the next
			// priority claims it.
			a.fence(t, w)
			waitHolder(t, w, "node-b")
			// node-a comes back with a new lease and preempts.
			a = startNode(t, srv, w, "node-a", inst(150))
			waitHolder(t, w, "node-a")
			// A planned stop of the owner hands over to the next.
			drained := make(chan struct{})
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				a.sess.Drain(ctx)
				close(drained)
			}()
			<-drained
			waitHolder(t, w, "node-b")
			if o, _ := owner(t, admin); o != "node-b" {
				t.Errorf("after the drain the owner key says %q, want node-b", o)
			}
			_ = b
			_ = c
			if w.dual != 0 {
				t.Errorf("%d moments with two VIP holders", w.dual)
			}
			w.mu.Lock()
			t.Logf("events: %v", w.log)
			w.mu.Unlock()
		})
	}
}

func TestIntegrationNopreemptKeepsTheOwner(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newWorld(t)
	b := startNode(t, srv, w, "node-b", witness.Instance{Name: "VI_1", Priority: 100, Nopreempt: true})
	waitHolder(t, w, "node-b")
	startNode(t, srv, w, "node-a", witness.Instance{Name: "VI_1", Priority: 150, Nopreempt: true})
	// node-a is of higher priority but node-b keeps the instance.
	time.Sleep(time.Second)
	waitHolder(t, w, "node-b")
	// Once node-b fences, node-a claims.
	b.fence(t, w)
	waitHolder(t, w, "node-a")
}

func TestIntegrationOwnerKeyLostResigns(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newWorld(t)
	admin := srv.Client(t)
	a := startNode(t, srv, w, "node-a", witness.Instance{Name: "VI_1", Priority: 150})
	waitHolder(t, w, "node-a")
	// Someone else writes the key (an operator, a bug): node-a must not
	// keep holding what etcd no longer says is its own.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := admin.Put(ctx, witness.OwnerKey(prefix, "VI_1"), "node-x"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(w.holders()) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h := w.holders(); len(h) != 0 {
		t.Fatalf("after the owner key changed hands, holders = %v", h)
	}
	// Freed again, the best candidate claims it back.
	if _, err := admin.Delete(ctx, witness.OwnerKey(prefix, "VI_1")); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, w, "node-a")
	_ = a
}

// A node whose keepalived is gone (fenced's reaper) hands its instance to
// the next candidate and withdraws; back, it preempts again. Alone, it
// frees the key for whoever comes.
func TestIntegrationIneligibleHandsOver(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newWorld(t)
	admin := srv.Client(t)
	a := startNode(t, srv, w, "node-a", witness.Instance{Name: "VI_1", Priority: 150})
	waitHolder(t, w, "node-a")
	a.sess.SetEligible(false)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if o, _ := owner(t, admin); o == "" && len(w.holders()) == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if o, _ := owner(t, admin); o != "" {
		t.Fatalf("alone and without keepalived, node-a left the owner key to %q", o)
	}
	b := startNode(t, srv, w, "node-b", witness.Instance{Name: "VI_1", Priority: 100})
	waitHolder(t, w, "node-b")
	a.sess.SetEligible(true)
	waitHolder(t, w, "node-a")
	a.sess.SetEligible(false)
	waitHolder(t, w, "node-b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := admin.Get(ctx, witness.CandidateKey(prefix, "VI_1", "node-a")); err != nil || len(r.Kvs) != 0 {
		t.Errorf("node-a's candidacy is still published without keepalived (%v)", err)
	}
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
	_ = b
}

// An instance in maintenance on its owner (vipctl handover wrote its
// maintenance file) goes to the next candidate; back from maintenance, the
// owner of higher priority takes it again.
func TestIntegrationMaintenanceHandsOver(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newWorld(t)
	a := startNode(t, srv, w, "node-a", witness.Instance{Name: "VI_1", Priority: 150, Fast: true})
	waitHolder(t, w, "node-a")
	startNode(t, srv, w, "node-b", witness.Instance{Name: "VI_1", Priority: 100, Fast: true})
	time.Sleep(300 * time.Millisecond)
	waitHolder(t, w, "node-a")
	a.sess.SetMaintenance("VI_1", true)
	waitHolder(t, w, "node-b")
	a.sess.SetMaintenance("VI_1", false)
	waitHolder(t, w, "node-a")
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
}

// A requested handover (vipctl handover through fenced) refuses, changing
// nothing, on a node that does not hold the instance and when nobody else
// is a candidate; otherwise the fast path in its order: the owner
// releases, the successor is permitted, then the owner resigns. The owner
// stays withdrawn until its maintenance ends, then preempts.
func TestIntegrationRequestedHandover(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newWorld(t)
	admin := srv.Client(t)
	a := startNode(t, srv, w, "node-a", witness.Instance{Name: "VI_1", Priority: 150, Fast: true})
	waitHolder(t, w, "node-a")
	ask := func(n *node, inst string) witness.HandoverResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return n.sess.Handover(ctx, inst)
	}
	for _, tt := range []struct {
		name string
		r    witness.HandoverResult
		want witness.Outcome
	}{
		{"alone", ask(a, "VI_1"), witness.NoSuccessor},
		{"not witnessed here", ask(a, "VI_9"), witness.NotHeld},
	} {
		if tt.r.Outcome != tt.want {
			t.Errorf("%s: outcome %s (%v), want %s", tt.name, tt.r.Outcome, tt.r.Err, tt.want)
		}
	}
	if o, l := owner(t, admin); o != "node-a" || l != int64(a.lease) {
		t.Fatalf("a refused handover changed the owner key to %q under %x", o, l)
	}
	waitHolder(t, w, "node-a")
	b := startNode(t, srv, w, "node-b", witness.Instance{Name: "VI_1", Priority: 100, Fast: true})
	time.Sleep(300 * time.Millisecond)
	waitHolder(t, w, "node-a")
	if r := ask(b, "VI_1"); r.Outcome != witness.NotHeld {
		t.Errorf("handover on node-b, which does not hold VI_1: %s (%v), want %s", r.Outcome, r.Err, witness.NotHeld)
	}
	w.mu.Lock()
	from := len(w.log)
	w.mu.Unlock()
	r := ask(a, "VI_1")
	if r.Outcome != witness.HandedOver || r.To != "node-b" || r.Err != nil {
		t.Fatalf("handover: %+v, want handed over to node-b", r)
	}
	if !r.SuccessorHeld {
		t.Errorf("node-a resigned before node-b said it held VI_1 (took %s)", r.Took)
	}
	w.mu.Lock()
	got := slices.Clone(w.log[from:])
	w.mu.Unlock()
	if want := []string{"release node-a", "permit node-b", "resign node-a"}; !slices.Equal(got[:min(3, len(got))], want) {
		t.Errorf("handover events %v, want %v first", got, want)
	}
	// Withdrawn: node-a, of higher priority, does not take it back.
	time.Sleep(300 * time.Millisecond)
	waitHolder(t, w, "node-b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if g, err := admin.Get(ctx, witness.CandidateKey(prefix, "VI_1", "node-a")); err != nil || len(g.Kvs) != 0 {
		t.Errorf("node-a's candidacy is still published after the handover (%v)", err)
	}
	a.sess.SetMaintenance("VI_1", false)
	waitHolder(t, w, "node-a")
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
	t.Logf("handover took %s (release to resign)", r.Took)
}
