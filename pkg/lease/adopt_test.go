package lease_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/lease/leasetest"
)

// adoptCalls takes the adopting holder's first two requests, which race:
// the member check (Get) and the immediate renewal (KeepAlive).
func adoptCalls(t *testing.T, r *rig) (get, keep *leasetest.Call) {
	t.Helper()
	for get == nil || keep == nil {
		select {
		case k := <-r.cli.Calls:
			switch k.Op {
			case leasetest.OpGet:
				get = k
			case leasetest.OpKeepAlive:
				keep = k
			default:
				t.Fatalf("adopting holder sent %s (lease %x), want only a member check and a renewal", k.Op, k.Lease)
			}
		case <-time.After(leasetest.Wait):
			t.Fatalf("adopting holder: get %v, keepalive %v within %s", get != nil, keep != nil, leasetest.Wait)
		}
	}
	return get, keep
}

// A planned stop hands the lease over: no Fence, no Revoke, and the record
// carries the expiry proven by the last acknowledged renewal (its send
// time + TTL), not anything later.
func TestHandoffKeepsLeaseAndDeadline(t *testing.T) {
	r := start(t, func(c *lease.Config) { c.RevokeOnStop = true })
	r.healthy(7)
	r.waitTimer(t0 + renew)
	r.clock.Set(t0 + renew)
	k := r.cli.Next(t, leasetest.OpKeepAlive)
	r.clock.Set(t0 + renew + 300*time.Millisecond)
	k.KeepAlive(5)
	r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 2 })
	r.h.PrepareHandoff()
	handAt := t0 + 2*time.Second
	r.clock.Set(handAt)
	r.cancel()
	// The holder renews once more before handing over; this answer is
	// lost, so the expiry stays the one the last acknowledged renewal
	// proved.
	r.cli.Next(t, leasetest.OpKeepAlive).Fail(context.DeadlineExceeded)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil
	r.fencer.None(t)
	if got := r.cli.Revoked(); len(got) != 0 {
		t.Errorf("revoked %v on a handoff", got)
	}
	h, ok := r.h.Handed()
	if !ok {
		t.Fatal("no handed lease after a handoff of a healthy holder")
	}
	wantExpiry := t0 + renew + ttl
	if h.LeaseID != 7 || h.TTL != ttl || h.Expiry != wantExpiry || h.Deadline != wantExpiry-margin || h.Cluster != "c1" || h.Prefix != "/vipkit" {
		t.Errorf("handed %+v, want lease 7, ttl %s, expiry t0+%s, deadline t0+%s", h, ttl, wantExpiry-t0, wantExpiry-margin-t0)
	}
}

// The renewal sent at the handoff, when acknowledged, gives the successor
// a full TTL - margin from its send time.
func TestHandoffRenewsOnceMore(t *testing.T) {
	r := start(t, nil)
	r.healthy(7)
	r.h.PrepareHandoff()
	handAt := t0 + time.Second
	r.clock.Set(handAt)
	r.cancel()
	k := r.cli.Next(t, leasetest.OpKeepAlive)
	r.clock.Set(handAt + 200*time.Millisecond)
	k.KeepAlive(5)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil
	h, ok := r.h.Handed()
	if !ok || h.Expiry != handAt+ttl || h.Deadline != handAt+ttl-margin {
		t.Fatalf("handed %+v (%v), want expiry t0+%s", h, ok, handAt+ttl-t0)
	}
	r.fencer.None(t)
}

// A holder that is not Healthy (still in its hold-down, or fenced) has
// nothing to hand over: a stop fences and revokes as always.
func TestHandoffOnlyWhenHealthy(t *testing.T) {
	r := start(t, func(c *lease.Config) { c.RevokeOnStop = true })
	r.grant(3)
	r.cli.Next(t, leasetest.OpKeepAlive) // the hold-down's renewal, unanswered: not Healthy
	r.h.PrepareHandoff()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil
	if got := r.cli.Revoked(); !equal(got, []clientv3.LeaseID{3}) {
		t.Errorf("revoked %v, want [3]", got)
	}
	if _, ok := r.h.Handed(); ok {
		t.Error("a holder in its hold-down handed its lease over")
	}
}

// The successor starts Healthy with the predecessor's deadline (no Unfence:
// the host is as it was left), renews at once, and from a good answer on
// holds the lease as if it had granted it.
func TestAdoptRenewsAtOnce(t *testing.T) {
	expiry := t0 + 2*time.Second
	r := start(t, func(c *lease.Config) {
		c.Adopt = &lease.HandedLease{Cluster: "c1", Prefix: "/vipkit", LeaseID: 9, TTL: ttl, Expiry: expiry, Deadline: expiry - margin}
	})
	s := r.waitFor("adopted", func(s lease.Status) bool { return s.State == lease.Healthy })
	if s.LeaseID != 9 || s.ValidFor != expiry-margin-t0 {
		t.Fatalf("adopted: lease %x valid for %s, want 9 valid for %s", s.LeaseID, s.ValidFor, expiry-margin-t0)
	}
	get, keep := adoptCalls(t, r)
	if keep.Lease != 9 || get.Key != "/vipkit/members/node-a" {
		t.Fatalf("renewed lease %x, checked key %q", keep.Lease, get.Key)
	}
	get.GetKV(40, 9)
	if w := r.cli.NextWatch(t); w.Rev != 41 {
		t.Errorf("member watch from revision %d, want 41", w.Rev)
	}
	r.clock.Set(t0 + 100*time.Millisecond)
	keep.KeepAlive(5)
	s = r.waitFor("renewed", func(s lease.Status) bool { return s.RenewalsOK == 1 })
	if want := ttl - margin - 100*time.Millisecond; s.ValidFor != want {
		t.Errorf("valid for %s after the first renewal, want %s (from its send time)", s.ValidFor, want)
	}
	r.fencer.None(t) // neither Fence nor Unfence
	if g := r.cli.Revoked(); len(g) != 0 {
		t.Errorf("revoked %v", g)
	}
}

// The successor fences exactly at the handed deadline when it cannot renew
// (I4 across the restart), and when the lease is gone it fences at once.
func TestAdoptFencesAtHandedDeadline(t *testing.T) {
	t.Run("no answer", func(t *testing.T) {
		deadline := t0 + 800*time.Millisecond
		r := start(t, func(c *lease.Config) {
			c.Adopt = &lease.HandedLease{Cluster: "c1", Prefix: "/vipkit", LeaseID: 9, TTL: ttl, Expiry: deadline + margin, Deadline: deadline}
		})
		_, _ = adoptCalls(t, r) // never answered
		hedge := t0 + (deadline-t0)/2
		r.waitTimer(hedge)
		r.clock.Set(hedge)
		r.cli.Next(t, leasetest.OpKeepAlive) // the hedge, never answered either
		r.waitTimer(deadline)
		r.clock.Set(deadline - time.Nanosecond)
		r.fencer.None(t)
		r.clock.Set(deadline)
		if c := r.wantFence(lease.ReasonDeadline); c.At != deadline {
			t.Errorf("fenced at t0+%s, want the handed deadline t0+%s", c.At-t0, deadline-t0)
		}
	})
	t.Run("lease gone", func(t *testing.T) {
		r := start(t, func(c *lease.Config) {
			c.Adopt = &lease.HandedLease{Cluster: "c1", Prefix: "/vipkit", LeaseID: 9, TTL: ttl, Expiry: t0 + ttl, Deadline: t0 + ttl - margin}
		})
		get, keep := adoptCalls(t, r)
		get.GetKV(40, 9)
		keep.KeepAlive(0) // the server says: not found
		r.wantFence(lease.ReasonLeaseNotFound)
	})
	t.Run("deadline already passed", func(t *testing.T) {
		r := start(t, func(c *lease.Config) {
			c.Adopt = &lease.HandedLease{Cluster: "c1", Prefix: "/vipkit", LeaseID: 9, TTL: ttl, Expiry: t0 + 500*time.Millisecond, Deadline: t0 + 500*time.Millisecond - margin}
		})
		r.wantFence(lease.ReasonDeadline)
	})
}

func TestParseHandoff(t *testing.T) {
	good := lease.Handoff{BootID: "b1", Node: "n", PID: 10, WrittenAt: 50 * time.Second, Leases: []lease.HandedLease{
		{Cluster: "c1", Prefix: "/vipkit", Endpoints: []string{"http://a", "http://b"}, LeaseID: 1, TTL: ttl, Expiry: 60 * time.Second, Deadline: 58 * time.Second},
		{Cluster: "c2", Prefix: "/vipkit", Endpoints: []string{"http://c"}, LeaseID: 2, TTL: ttl, Expiry: 52 * time.Second, Deadline: 51 * time.Second},
	}}
	b, err := lease.MarshalHandoff(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		boot   string
		now    time.Duration
		leases []clientv3.LeaseID // kept; nil: an error
	}{
		{"both usable", b, "b1", 50 * time.Second, []clientv3.LeaseID{1, 2}},
		{"one too near its deadline", b, "b1", 50500 * time.Millisecond, []clientv3.LeaseID{1}},
		{"all past", b, "b1", 59 * time.Second, nil},
		{"other boot", b, "b2", 50 * time.Second, nil},
		{"written in the future", b, "b1", 40 * time.Second, nil},
		{"garbage", []byte("{"), "b1", 50 * time.Second, nil},
		{"other version", []byte(`{"version":2,"boot_id":"b1"}`), "b1", 50 * time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := lease.ParseHandoff(tc.data, tc.boot, tc.now, time.Second)
			if tc.leases == nil {
				if err == nil {
					t.Fatalf("accepted: %+v", h)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []clientv3.LeaseID
			for _, l := range h.Leases {
				got = append(got, l.LeaseID)
			}
			if !equal(got, tc.leases) {
				t.Errorf("kept leases %v, want %v", got, tc.leases)
			}
		})
	}
	h, _ := lease.ParseHandoff(b, "b1", 50*time.Second, time.Second)
	for _, tc := range []struct {
		name      string
		endpoints []string
		prefix    string
		ok        bool
	}{
		{"same endpoints in another order", []string{"http://b", "http://a"}, "/vipkit", true},
		{"other endpoints", []string{"http://a"}, "/vipkit", false},
		{"other prefix", []string{"http://a", "http://b"}, "/other", false},
	} {
		cl := config.Cluster{Name: "c1", Prefix: tc.prefix, Endpoints: tc.endpoints}
		if _, ok := h.For(cl); ok != tc.ok {
			t.Errorf("%s: For = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}
