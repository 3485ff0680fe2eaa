package supervisor

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// Two supervisors (node-a, node-b) on one real etcd with a witnessed
// instance and a plain one: the plain one follows each node's lease, the
// witnessed one is OK on exactly one node, the one of higher priority; a
// reload that raises node-b's priority moves it there; stopping the owner
// hands it over before its lease goes.
func TestIntegrationWitnessedInstanceHasOneOwner(t *testing.T) {
	srv := etcdtest.Start(t)
	type node struct {
		s   *Supervisor
		rec *recorder
	}
	doc := func(name string, prio int) string {
		return "node = \"" + name + "\"\n" + clusterDoc("a", srv.Endpoints(), "2s") +
			instanceDoc("VI_1", "a", "192.0.2.100") + fmt.Sprintf("witness = true\npriority = %d\n", prio) +
			instanceDoc("VI_2", "a", "192.0.2.101")
	}
	start := func(name string, prio int) node {
		rec := newRecorder()
		s := &Supervisor{Node: name, Actuator: rec, Dial: (&dialer{clients: map[string][]*clientv3.Client{}}).dial, ProgressEvery: 200 * time.Millisecond}
		t.Cleanup(s.Stop)
		if err := s.Apply(context.Background(), cfgOf(t, doc(name, prio))); err != nil {
			t.Fatal(err)
		}
		return node{s, rec}
	}
	val := func(n node, in string) int { v, _, _ := n.rec.get(in); return v }
	a := start("node-a", 150)
	b := start("node-b", 100)
	waitFor(t, 10*time.Second, "both healthy", func() bool { return healthy(a.s, "a") && healthy(b.s, "a") })
	waitFor(t, 2*time.Second, "plain VI_2 unfenced on both", func() bool { return val(a, "VI_2") == 0 && val(b, "VI_2") == 0 })
	waitFor(t, 5*time.Second, "VI_1 OK on node-a only", func() bool { return val(a, "VI_1") == 0 && val(b, "VI_1") == 1 })
	time.Sleep(500 * time.Millisecond)
	if val(b, "VI_1") != 1 {
		t.Fatal("node-b's track file for the witnessed VI_1 says OK while node-a owns it")
	}
	// node-b's priority raised above node-a's by a reload: node-a hands over.
	if err := b.s.Apply(context.Background(), cfgOf(t, doc("node-b", 200))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "VI_1 moved to node-b", func() bool { return val(a, "VI_1") == 1 && val(b, "VI_1") == 0 })
	// A reload that changes the owner's priority again restarts its
	// session, which keeps the instance: no write, no FAULT flap (I8).
	time.Sleep(300 * time.Millisecond)
	_, before, _ := b.rec.get("VI_1")
	if err := b.s.Apply(context.Background(), cfgOf(t, doc("node-b", 210))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if v, after, _ := b.rec.get("VI_1"); v != 0 || after != before {
		t.Fatalf("the owner's reload: VI_1 track file %d after %d writes (was %d)", v, after-before, before)
	}
	// vipctl handover's request on the owner: the key moves to node-a,
	// node-b stays out (its priority is higher) until its maintenance
	// ends; the answer is in the state file. A plain instance is not the
	// witness's.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if h := b.s.Handover(ctx, "VI_2", "req-0"); h.Outcome != fencedstate.NotHeld {
		t.Errorf("handover of the plain VI_2: %+v, want %s", h, fencedstate.NotHeld)
	}
	if h := b.s.Handover(ctx, "VI_1", "req-1"); h.Outcome != fencedstate.HandedOver || h.To != "node-a" || h.ID != "req-1" {
		t.Fatalf("requested handover: %+v, want handed over to node-a", h)
	}
	waitFor(t, 2*time.Second, "VI_1 on node-a after the requested handover", func() bool { return val(a, "VI_1") == 0 && val(b, "VI_1") == 1 })
	if got, ok := b.s.Snapshot().HandoverFor("VI_1", "req-1"); !ok || got.Outcome != fencedstate.HandedOver {
		t.Errorf("the state file's answer for req-1: %+v (found %v)", got, ok)
	}
	time.Sleep(500 * time.Millisecond)
	if val(b, "VI_1") != 1 {
		t.Fatal("node-b took VI_1 back while in maintenance")
	}
	b.s.SetMaintenance("VI_1", false)
	waitFor(t, 5*time.Second, "VI_1 back on node-b after its maintenance", func() bool { return val(a, "VI_1") == 1 && val(b, "VI_1") == 0 })
	// A planned stop of node-b hands VI_1 back to node-a at once, not at
	// the lease's expiry.
	b.s.Stop()
	if v := val(b, "VI_1"); v != 1 {
		t.Fatalf("stopped node-b's VI_1 track file says %d", v)
	}
	waitFor(t, time.Second, "VI_1 back on node-a after node-b's stop", func() bool { return val(a, "VI_1") == 0 })
}

func TestRequestAnswerKeepsOut(t *testing.T) {
	handed := fencedstate.Handover{ID: "r1", Outcome: fencedstate.HandedOver}
	for _, tt := range []struct {
		name     string
		file     bool
		id       string
		last     fencedstate.Handover
		answered bool
		ask, out bool
	}{
		{"nothing", false, "", fencedstate.Handover{}, false, false, false},
		{"maintenance file alone", true, "", fencedstate.Handover{}, false, false, true},
		{"new request", false, "r1", fencedstate.Handover{}, false, true, false},
		{"request answered: handed over", false, "r1", handed, true, false, true},
		{"request answered: failed", false, "r1", fencedstate.Handover{ID: "r1", Outcome: fencedstate.Failed}, true, false, true},
		{"request refused: no successor", false, "r1", fencedstate.Handover{ID: "r1", Outcome: fencedstate.NoSuccessor}, true, false, false},
		{"request refused: not held", false, "r1", fencedstate.Handover{ID: "r1", Outcome: fencedstate.NotHeld}, true, false, false},
		{"a newer request", false, "r2", handed, true, true, false},
		{"request gone after the file", true, "", handed, true, false, true},
		{"request gone, --undo", false, "", handed, true, false, false},
	} {
		if got := askFenced(tt.id, tt.last, tt.answered); got != tt.ask {
			t.Errorf("%s: askFenced = %v, want %v", tt.name, got, tt.ask)
		}
		if got := keptOut(tt.file, tt.id, tt.last, tt.answered); got != tt.out {
			t.Errorf("%s: keptOut = %v, want %v", tt.name, got, tt.out)
		}
	}
}
