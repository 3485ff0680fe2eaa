package witness_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/witness"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// The pre-grant (docs/witness.md): a planned handover of a keepalived-owned
// instance to a successor of lower priority, on the VRRP model of the
// world (world.vrrp).

func newVRRPWorld(t *testing.T, down time.Duration) *world {
	w := newWorld(t)
	w.vrrp, w.down = true, down
	w.prio = map[string]int{"node-a": 150, "node-b": 100, "node-c": 50}
	w.epoch, w.stall, w.refuse = map[string]int{}, map[string]chan struct{}{}, map[string]bool{}
	return w
}

// permitVRRP: called with w.mu held.
func (w *world) permitVRRP(s *witness.Session, node, in string) error {
	if w.refuse[node] {
		return context.Canceled
	}
	// The runtime's rule: no OK once the session stopped holding (a
	// pre-grant's bound ran out before this write).
	if !s.Holds(in) {
		return context.Canceled
	}
	w.ok[node] = true
	w.epoch[node]++
	for n, held := range w.vips {
		if !held || n == node {
			continue
		}
		if w.prio[n] <= w.prio[node] {
			// It would preempt the holder: both MASTER for a moment.
			w.dual++
			w.t.Errorf("I9: %s (priority %d) out of FAULT while %s (priority %d) holds the VIPs; events: %v", node, w.prio[node], n, w.prio[n], w.log)
			return nil
		}
		w.event("backup %s", node)
		e := w.epoch[node]
		time.AfterFunc(w.down, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.epoch[node] == e && w.ok[node] && !w.vips[node] {
				w.takeVIPs(node, "master-down")
			}
		})
		return nil
	}
	w.takeVIPs(node, "master")
	return nil
}

// takeVIPs: called with w.mu held.
func (w *world) takeVIPs(node, how string) {
	for n, held := range w.vips {
		if held && n != node {
			w.dual++
			w.t.Errorf("I9: %s took the VIPs (%s) while %s holds them; events: %v", node, how, n, w.log)
		}
	}
	w.vips[node] = true
	w.event("%s %s", how, node)
}

// priorityZero: a node resigned; the best BACKUP takes over at once (no
// skew: the worst). Called with w.mu held.
func (w *world) priorityZero(from string) {
	best := ""
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		if n != from && w.ok[n] && !w.vips[n] && (best == "" || w.prio[n] > w.prio[best]) {
			best = n
		}
	}
	if best != "" {
		w.takeVIPs(best, "master")
	}
}

func (w *world) since(from int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.log[from:])
}

func (w *world) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.log)
}

func kaOwned(p int) witness.Instance { return witness.Instance{Name: "VI_1", Priority: p} }

func ask(t *testing.T, n *node) witness.HandoverResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.sess.Handover(ctx, "VI_1")
}

// generous: the bounds of the order test are far above what etcd needs,
// so that a loaded machine still takes the pre-grant; the bound's own test
// below uses short ones.
func generous(s *witness.Session) {
	s.HandoverWait, s.PregrantBound = 2*time.Second, 3*time.Second
}

func offerGone(t *testing.T, srv *etcdtest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := srv.Client(t).Get(ctx, witness.OfferKey(prefix, "VI_1")); err != nil || len(r.Kvs) != 0 {
		t.Errorf("the offer key is still there after the handover (%v)", err)
	}
}

// Offer, ready, resign, move: the successor is BACKUP before the owner
// resigns, takes over on the owner's priority-0 advert, and the key
// follows; a preemption back takes the path without an offer; a planned
// stop (Drain) is pre-granted too.
func TestIntegrationPregrantOrder(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newVRRPWorld(t, 10*time.Second)
	admin := srv.Client(t)
	a := startNodeWith(t, srv, w, "node-a", kaOwned(150), generous)
	waitHolder(t, w, "node-a")
	b := startNodeWith(t, srv, w, "node-b", kaOwned(100), generous)
	startNodeWith(t, srv, w, "node-c", kaOwned(50), generous)
	time.Sleep(300 * time.Millisecond)
	waitHolder(t, w, "node-a")

	from := w.mark()
	r := ask(t, a)
	if r.Outcome != witness.HandedOver || r.To != "node-b" || r.Err != nil {
		t.Fatalf("handover: %+v, want handed over to node-b", r)
	}
	if !r.SuccessorHeld {
		t.Errorf("node-a resigned before node-b accepted the offer (took %s)", r.Took)
	}
	waitHolder(t, w, "node-b")
	want := []string{"backup node-b", "resign node-a", "master node-b"}
	if got := w.since(from); !slices.Equal(got, want) {
		t.Errorf("handover events %v, want %v", got, want)
	}
	if o, l := owner(t, admin); o != "node-b" || l != int64(b.lease) {
		t.Errorf("owner key = %q under %x, want node-b under %x", o, l, b.lease)
	}
	offerGone(t, srv)

	// Back from maintenance node-a preempts: no offer (node-b would be
	// asked to leave FAULT below an owner of lower priority); node-b
	// resigns, then node-a is permitted.
	from = w.mark()
	a.sess.SetMaintenance("VI_1", false)
	waitHolder(t, w, "node-a")
	if got, want := w.since(from), []string{"resign node-b", "master node-a"}; !slices.Equal(got, want) {
		t.Errorf("preemption events %v, want %v", got, want)
	}

	// A planned stop of the owner.
	from = w.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.sess.Drain(ctx)
	waitHolder(t, w, "node-b")
	if got := w.since(from); !slices.Equal(got, want) {
		t.Errorf("planned stop events %v, want %v", got, want)
	}
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
	t.Logf("requested handover: request to the owner's resign and move %s", r.Took)
}

// The owner stalls after the successor accepted, still holding the VIPs,
// and its adverts are lost (the model's down timer): the successor's bound
// puts it back into FAULT before it could elect itself. When the owner
// goes on, the key moves and the successor takes the instance.
func TestIntegrationPregrantBound(t *testing.T) {
	srv := etcdtest.Start(t)
	const bound = 150 * time.Millisecond
	w := newVRRPWorld(t, 3*bound) // above twice the bound, as fenced check requires
	_, stall, from, res := stalledHandover(t, srv, w, bound)

	// node-b accepts, then goes back to FAULT on its own.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(w.since(from), "resign node-b") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Well past the model's master-down interval: node-b never elected
	// itself while node-a held the VIPs.
	time.Sleep(2 * w.down)
	got := w.since(from)
	if want := []string{"backup node-b", "resign node-b"}; !slices.Equal(got, want) {
		t.Errorf("while node-a stalls: events %v, want %v", got, want)
	}
	if h := w.holders(); !slices.Equal(h, []string{"node-a"}) {
		t.Errorf("while node-a stalls the holders are %v, want node-a", h)
	}
	close(stall)
	r := <-res
	if r.Outcome != witness.HandedOver || r.To != "node-b" {
		t.Fatalf("handover: %+v, want handed over to node-b", r)
	}
	waitHolder(t, w, "node-b")
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
	t.Logf("events: %s", strings.Join(w.since(from), ", "))
}

// The successor never accepts (its runtime refuses the OK): the owner
// falls back, within its wait, to the path without an offer — resign,
// then the key moves — and never two owners.
func TestIntegrationPregrantFallback(t *testing.T) {
	srv := etcdtest.Start(t)
	w := newVRRPWorld(t, 10*time.Second)
	admin := srv.Client(t)
	a := startNode(t, srv, w, "node-a", kaOwned(150))
	waitHolder(t, w, "node-a")
	b := startNode(t, srv, w, "node-b", kaOwned(100))
	time.Sleep(300 * time.Millisecond)
	waitHolder(t, w, "node-a")
	w.mu.Lock()
	w.refuse["node-b"] = true
	w.mu.Unlock()
	from := w.mark()
	r := ask(t, a)
	if r.Outcome != witness.HandedOver || r.To != "node-b" {
		t.Fatalf("handover: %+v, want handed over to node-b", r)
	}
	if r.SuccessorHeld {
		t.Errorf("node-b refused every OK, yet the handover says it accepted")
	}
	if got, want := w.since(from), []string{"resign node-a"}; !slices.Equal(got, want) {
		t.Errorf("fallback events %v, want %v", got, want)
	}
	if o, l := owner(t, admin); o != "node-b" || l != int64(b.lease) {
		t.Errorf("owner key = %q under %x, want node-b under %x", o, l, b.lease)
	}
	offerGone(t, srv)
	w.mu.Lock()
	w.refuse["node-b"] = false
	w.mu.Unlock()
	b.sess.SetEligible(true) // a poke: its runtime permits again
	waitHolder(t, w, "node-b")
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
	t.Logf("fallback: request to resign and move %s (the owner's wait %s)", r.Took, witness.DefaultHandoverWait)
}

// A session stopped during a pre-grant (the runtime's stopSession: a
// fence, a lease no longer healthy, a reload) hands its pre-grants to the
// caller, which writes FAULT; the stopped session's bound does not fire
// afterwards over what the next session writes.
func TestIntegrationPregrantEndedByStop(t *testing.T) {
	srv := etcdtest.Start(t)
	const bound = 500 * time.Millisecond // room to call EndPregrants before it fires
	w := newVRRPWorld(t, 10*time.Second)
	b, stall, from, res := stalledHandover(t, srv, w, bound)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(w.since(from), "backup node-b") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := b.sess.EndPregrants()
	if !slices.Equal(got, []string{"VI_1"}) {
		t.Fatalf("EndPregrants = %v, want [VI_1] (events %v)", got, w.since(from))
	}
	if b.sess.Holds("VI_1") {
		t.Error("after EndPregrants node-b's session still says it holds VI_1")
	}
	_ = act{w, "node-b"}.Resign(context.Background(), "VI_1", "stopSession")
	time.Sleep(2 * bound)
	if got, want := w.since(from), []string{"backup node-b", "resign node-b"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v: the ended pre-grant's bound must not fire", got, want)
	}
	close(stall)
	<-res
	waitHolder(t, w, "node-b")
	if w.dual != 0 {
		t.Errorf("%d moments with two holders", w.dual)
	}
}

// stalledHandover starts node-a (150, the holder) and node-b (100), both
// keepalived-owned with the given pre-grant bound, makes node-a's next
// resign wait for stall, and asks node-a for a handover: the offer goes
// out while node-a cannot finish it. It returns node-b, the stall to
// close, the log mark before the request and the request's answer.
func stalledHandover(t *testing.T, srv *etcdtest.Server, w *world, bound time.Duration) (b *node, stall chan struct{}, from int, res chan witness.HandoverResult) {
	t.Helper()
	tune := func(s *witness.Session) { s.HandoverWait, s.PregrantBound = 2*time.Second, bound }
	a := startNodeWith(t, srv, w, "node-a", kaOwned(150), tune)
	waitHolder(t, w, "node-a")
	b = startNodeWith(t, srv, w, "node-b", kaOwned(100), tune)
	time.Sleep(300 * time.Millisecond)
	waitHolder(t, w, "node-a")
	stall = make(chan struct{})
	w.mu.Lock()
	w.stall["node-a"] = stall
	w.mu.Unlock()
	from = w.mark()
	res = make(chan witness.HandoverResult, 1)
	go func() { res <- ask(t, a) }()
	return b, stall, from, res
}
