package lease_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/lease/leasetest"
)

// Timings of every unit test unless it says otherwise: TTL 5s, margin 1.5s,
// renewal every TTL/3, request timeout the same.
const (
	t0     = 1000 * time.Second // CLOCK_BOOTTIME when the holder starts
	ttl    = 5 * time.Second
	margin = 1500 * time.Millisecond
	renew  = ttl / 3
	retry  = renew / 4 // pause after a failed request
)

type rig struct {
	t      *testing.T
	clock  *leasetest.Clock
	cli    *leasetest.Client
	fencer *leasetest.Fencer
	h      *lease.Holder
	cancel context.CancelFunc
	done   chan error

	logs *logBuffer

	mu     sync.Mutex
	states []lease.State
}

// logBuffer keeps the holder's log lines for waitLog.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *rig) waitLog(substr string) {
	r.t.Helper()
	deadline := time.Now().Add(leasetest.Wait)
	for !strings.Contains(r.logs.String(), substr) {
		if time.Now().After(deadline) {
			r.t.Fatalf("no log line with %q in:\n%s", substr, r.logs)
		}
		time.Sleep(time.Millisecond)
	}
}

func header(rev int64) *etcdserverpb.ResponseHeader {
	return &etcdserverpb.ResponseHeader{Revision: rev}
}

func start(t *testing.T, edit func(*lease.Config)) *rig {
	t.Helper()
	r := &rig{t: t, clock: leasetest.NewClock(t0), cli: leasetest.NewClient(t), done: make(chan error, 1), logs: &logBuffer{}}
	r.fencer = leasetest.NewFencer(r.clock)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("holder log:\n%s", r.logs)
		}
	})
	cfg := lease.Config{
		Cluster: config.Cluster{Name: "c1", Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/vipkit", TTL: ttl, Margin: margin},
		Node:    "node-a",
		Host:    "host-a",
		Version: "test",
		Clock:   r.clock,
		Logger:  slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnChange: func(s lease.Status) {
			r.mu.Lock()
			r.states = append(r.states, s.State)
			r.mu.Unlock()
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := lease.New(r.cli, r.fencer, cfg)
	if err != nil {
		t.Fatalf("new holder: %v", err)
	}
	r.h = h
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(leasetest.Wait):
			t.Errorf("Run did not return within %s of cancel", leasetest.Wait)
		}
	})
	return r
}

// grant answers the grant, the member put and returns the member watch.
func (r *rig) grant(id clientv3.LeaseID) *leasetest.Watch {
	r.t.Helper()
	g := r.cli.Next(r.t, leasetest.OpGrant)
	if g.TTL != int64(ttl/time.Second) {
		r.t.Errorf("grant ttl: got %d, want %d", g.TTL, int64(ttl/time.Second))
	}
	g.Grant(id, g.TTL)
	p := r.cli.Next(r.t, leasetest.OpPut)
	if p.Key != "/vipkit/members/node-a" || p.Lease != id {
		r.t.Errorf("member put: got key %q lease %x, want /vipkit/members/node-a lease %x", p.Key, p.Lease, id)
	}
	p.OK(10)
	w := r.cli.NextWatch(r.t)
	if w.Key != p.Key || w.Rev != 11 {
		r.t.Errorf("member watch: got key %q from revision %d, want %q from 11", w.Key, w.Rev, p.Key)
	}
	r.waitFor("lease held", func(s lease.Status) bool { return s.LeaseID == id })
	return w
}

// healthy grants lease id with a hold-down of 0 and answers the renewal
// that proves it: the holder unfences.
func (r *rig) healthy(id clientv3.LeaseID) *leasetest.Watch {
	r.t.Helper()
	w := r.grant(id)
	r.cli.Next(r.t, leasetest.OpKeepAlive).KeepAlive(5)
	if c := r.fencer.Next(r.t); !c.Unfence {
		r.t.Fatalf("after the hold-down: got %+v, want Unfence", c)
	}
	r.waitFor("healthy", func(s lease.Status) bool { return s.State == lease.Healthy })
	return w
}

func (r *rig) waitFor(what string, cond func(lease.Status) bool) lease.Status {
	r.t.Helper()
	deadline := time.Now().Add(leasetest.Wait)
	for {
		s := r.h.Status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waiting for %s: status %+v", what, s)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitTimer waits until the loop armed its timer for at: nothing happens
// before then.
func (r *rig) waitTimer(at time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(leasetest.Wait)
	for {
		got, ok := r.clock.NextTimer()
		if ok && got == at {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("loop timer: got t0+%s (armed %v), want t0+%s", got-t0, ok, at-t0)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *rig) wantFence(reason lease.Reason) leasetest.FenceCall {
	r.t.Helper()
	c := r.fencer.Next(r.t)
	if c.Unfence || !strings.HasPrefix(c.Reason, string(reason)+":") {
		r.t.Fatalf("got %+v, want Fence for %s", c, reason)
	}
	s := r.waitFor("fenced", func(s lease.Status) bool { return s.State == lease.Fenced })
	if s.LastFenceReason != reason || s.Fences[reason] != 1 {
		r.t.Errorf("status after fence: reason %q, count %d; want %q, 1", s.LastFenceReason, s.Fences[reason], reason)
	}
	if s.LastFenceLead <= 0 {
		r.t.Errorf("fence lead %s: Fence returned after the earliest possible server expiry", s.LastFenceLead)
	}
	return c
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := lease.Config{Cluster: config.Cluster{Name: "c1", Endpoints: []string{"http://127.0.0.1:2379"}, TTL: ttl, Margin: margin}, Node: "n"}
	for name, edit := range map[string]func(*lease.Config){
		"empty node":           func(c *lease.Config) { c.Node = "" },
		"slash in node":        func(c *lease.Config) { c.Node = "a/b" },
		"margin eats the ttl":  func(c *lease.Config) { c.Cluster.Margin = 4 * time.Second },
		"ttl below etcd's min": func(c *lease.Config) { c.Cluster.TTL = time.Second },
		"revoke but keep":      func(c *lease.Config) { c.KeepOnStop, c.RevokeOnStop = true, true },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base
			edit(&cfg)
			_, err := lease.New(leasetest.NewClient(t), leasetest.NewFencer(leasetest.NewClock(0)), cfg)
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("got %v, want config.ErrInvalid", err)
			}
		})
	}
}

// The validity runs from the SEND time of the last acknowledged renewal, not
// from when its answer arrived, and the fence comes exactly at
// send + TTL - margin, with the whole margin as lead.
func TestDeadlineFromSendTime(t *testing.T) {
	r := start(t, nil)
	r.healthy(1)
	if s := r.h.Status(); s.ValidFor != ttl-margin || s.TTL != ttl {
		t.Fatalf("after grant at t0: valid for %s, ttl %s; want %s, %s", s.ValidFor, s.TTL, ttl-margin, ttl)
	}
	r.waitTimer(t0 + renew)
	r.clock.Set(t0 + renew)
	k := r.cli.Next(t, leasetest.OpKeepAlive)
	r.clock.Set(t0 + 2500*time.Millisecond) // the answer takes 833ms
	k.KeepAlive(5)
	s := r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 2 })
	wantValid := renew + ttl - margin - 2500*time.Millisecond // from send, not receipt
	if s.ValidFor != wantValid {
		t.Fatalf("valid for %s after a late answer, want %s (from the send time)", s.ValidFor, wantValid)
	}
	if s.LastRenewLatency != 2500*time.Millisecond-renew {
		t.Errorf("renew latency %s, want %s", s.LastRenewLatency, 2500*time.Millisecond-renew)
	}

	deadline := t0 + renew + ttl - margin
	r.waitTimer(t0 + 2*renew)
	r.clock.Set(t0 + 2*renew)
	r.cli.Next(t, leasetest.OpKeepAlive) // never answered
	hedge := t0 + 2*renew + (deadline-t0-2*renew)/2
	r.waitTimer(hedge)
	r.clock.Set(hedge)
	r.cli.Next(t, leasetest.OpKeepAlive) // the hedge, never answered either
	r.waitTimer(deadline)
	r.clock.Set(deadline - time.Nanosecond)
	r.fencer.None(t)
	r.clock.Set(deadline)
	c := r.wantFence(lease.ReasonDeadline)
	if c.At != deadline {
		t.Errorf("fenced at t0+%s, want t0+%s", c.At-t0, deadline-t0)
	}
	if s := r.h.Status(); s.LastFenceLead != margin || s.LastFenceAt != deadline {
		t.Errorf("fence lead %s at t0+%s, want %s at t0+%s", s.LastFenceLead, s.LastFenceAt-t0, margin, deadline-t0)
	}
}

// Renewals go out every RenewEvery, counted from the previous send, each
// bounded by the request timeout and by the validity left, and each asks for
// a member with a leader.
func TestRenewCadence(t *testing.T) {
	r := start(t, nil)
	r.healthy(1)
	for i := 1; i <= 6; i++ {
		due := t0 + time.Duration(i)*renew
		r.waitTimer(due)
		r.clock.Set(due - time.Nanosecond)
		r.cli.NoCall(t)
		r.clock.Set(due)
		k := r.cli.Next(t, leasetest.OpKeepAlive)
		checkRPC(t, k, renew)
		r.clock.Set(due + 10*time.Millisecond) // answers take 10ms
		k.KeepAlive(5)
		r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == uint64(i+1) })
	}

	// Failed renewals are retried sooner; once less validity is left than
	// the request timeout, the timeout shrinks to what is left.
	last := t0 + 6*renew
	deadline := last + ttl - margin
	at := last + renew
	for i := 0; at < deadline; i++ {
		r.waitTimer(at)
		r.clock.Set(at)
		k := r.cli.Next(t, leasetest.OpKeepAlive)
		checkRPC(t, k, min(renew, deadline-at))
		k.Fail(errors.New("etcdserver: no leader"))
		r.waitFor("failed renewal", func(s lease.Status) bool { return s.RenewalsFailed == uint64(i+1) })
		at += retry
	}
	if r.h.Status().State != lease.Healthy {
		t.Fatalf("fenced before the deadline")
	}
	r.clock.Set(deadline)
	r.wantFence(lease.ReasonDeadline)
}

// A renewal that used up its timeout is retried at once, with the validity
// left as its timeout, so one lost renewal need not fence.
func TestRenewRetriedAtOnceAfterTimeout(t *testing.T) {
	r := start(t, nil)
	r.healthy(1)
	r.clock.Set(t0 + renew)
	k := r.cli.Next(t, leasetest.OpKeepAlive)
	r.clock.Set(t0 + 2*renew) // the request timeout ran out
	k.Fail(context.DeadlineExceeded)
	// The timeout is no round trip: the last latency stays the grant's.
	if s := r.waitFor("failed renewal", func(s lease.Status) bool { return s.RenewalsFailed == 1 }); s.LastRenewLatency >= renew {
		t.Fatalf("a timed-out renewal set the last renewal latency to %s", s.LastRenewLatency)
	}
	k = r.cli.Next(t, leasetest.OpKeepAlive)
	checkRPC(t, k, ttl-margin-2*renew)
	k.KeepAlive(5)
	s := r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 2 })
	if s.State != lease.Healthy || s.ValidFor != ttl-margin {
		t.Fatalf("after the retry: %+v, want healthy and valid for %s", s, ttl-margin)
	}
	if s.LastRenewLatency != 0 {
		t.Fatalf("last renewal latency %s, want the retry's 0", s.LastRenewLatency)
	}
}

func checkRPC(t *testing.T, k *leasetest.Call, maxTimeout time.Duration) {
	t.Helper()
	dl, ok := k.Ctx.Deadline()
	if !ok {
		t.Fatalf("%s without a timeout", k.Op)
	}
	if left := time.Until(dl); left > maxTimeout {
		t.Errorf("%s timeout %s, want at most %s", k.Op, left, maxTimeout)
	}
	md, _ := metadata.FromOutgoingContext(k.Ctx)
	if v := md.Get(rpctypes.MetadataRequireLeaderKey); len(v) != 1 || v[0] != rpctypes.MetadataHasLeader {
		t.Errorf("%s without WithRequireLeader (metadata %v)", k.Op, md)
	}
}

// The deadline fires while a renewal hangs; the hanging RPC is not waited
// for, and its late success does not revive the lease: only a new lease,
// after the hold-down, unfences again.
func TestDeadlineWhileRenewalHangsAndLateAnswer(t *testing.T) {
	r := start(t, nil)
	r.healthy(1)
	r.clock.Set(t0 + renew)
	k := r.cli.Next(t, leasetest.OpKeepAlive)
	r.clock.Set(t0 + ttl - margin)
	r.wantFence(lease.ReasonDeadline)
	if k.Ctx.Err() != nil {
		t.Fatalf("the hanging renewal ended (%v) before the fence: the fence waited for it", k.Ctx.Err())
	}

	g := r.cli.Next(t, leasetest.OpGrant) // a new lease, at once
	k.KeepAlive(5)                        // the old renewal succeeds, too late
	r.waitLog("ignored answer for a dropped lease")
	s := r.waitFor("fenced", func(s lease.Status) bool { return s.State == lease.Fenced })
	if s.LeaseID != 0 || s.RenewalsOK != 1 {
		t.Fatalf("late answer revived lease %x (renewals ok %d)", s.LeaseID, s.RenewalsOK)
	}
	if got := r.cli.Revoked(); len(got) != 1 || got[0] != 1 {
		t.Errorf("revoked %v, want the dropped lease 1", got)
	}

	g.Grant(2, 5)
	r.cli.Next(t, leasetest.OpPut).OK(20)
	r.cli.NextWatch(t)
	r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
	if c := r.fencer.Next(t); !c.Unfence {
		t.Fatalf("got %+v, want Unfence with the new lease", c)
	}
	s = r.waitFor("healthy", func(s lease.Status) bool { return s.State == lease.Healthy })
	if s.LeaseID != 2 {
		t.Fatalf("healthy with lease %x, want 2", s.LeaseID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := []lease.State{lease.Healthy, lease.Fenced, lease.Healthy}; !equal(r.states, want) {
		t.Errorf("state changes %v, want %v", r.states, want)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Every sign that the lease is gone fences at once, long before the deadline.
func TestFenceAtOnce(t *testing.T) {
	renewal := func(answer func(*leasetest.Call)) func(*rig, *leasetest.Watch) {
		return func(r *rig, _ *leasetest.Watch) {
			r.clock.Set(t0 + renew)
			answer(r.cli.Next(r.t, leasetest.OpKeepAlive))
		}
	}
	for _, tc := range []struct {
		name   string
		reason lease.Reason
		do     func(*rig, *leasetest.Watch)
	}{
		{"renewal answers ttl 0", lease.ReasonLeaseNotFound, renewal(func(k *leasetest.Call) { k.KeepAlive(0) })},
		{"renewal answers ttl 0 without error", lease.ReasonLeaseNotFound, renewal(func(k *leasetest.Call) {
			k.Reply(&clientv3.LeaseKeepAliveResponse{ID: k.Lease, TTL: 0}, nil)
		})},
		{"renewal answers lease not found", lease.ReasonLeaseNotFound, renewal(func(k *leasetest.Call) { k.Fail(rpctypes.ErrLeaseNotFound) })},
		{"member key deleted", lease.ReasonKeyDeleted, func(_ *rig, w *leasetest.Watch) { w.Delete(12) }},
		{"member key taken by another lease", lease.ReasonKeyDeleted, func(_ *rig, w *leasetest.Watch) { w.Put(12, 99) }},
		{"member key gone after compaction", lease.ReasonKeyDeleted, func(r *rig, w *leasetest.Watch) {
			w.Send(clientv3.WatchResponse{CompactRevision: 30, Canceled: true})
			r.cli.Next(r.t, leasetest.OpGet).OK(40)
		}},
		{"client closed", lease.ReasonClientClosed, func(r *rig, _ *leasetest.Watch) { r.cli.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, nil)
			w := r.healthy(1)
			tc.do(r, w)
			c := r.wantFence(tc.reason)
			if c.At >= t0+ttl-margin {
				t.Errorf("fenced at t0+%s, not before the deadline", c.At-t0)
			}
			if tc.reason == lease.ReasonClientClosed {
				select {
				case err := <-r.done:
					if !errors.Is(err, lease.ErrClientClosed) {
						t.Errorf("Run returned %v, want ErrClientClosed", err)
					}
				case <-time.After(leasetest.Wait):
					t.Fatal("Run did not return after the client closed")
				}
				r.done <- nil
			}
		})
	}
}

// A watch that breaks is opened again from where it left off; a compaction
// that leaves the key alone changes nothing.
func TestWatchResumes(t *testing.T) {
	r := start(t, nil)
	w := r.healthy(1)
	w.Send(clientv3.WatchResponse{Header: *header(15)}) // progress
	w.Close()
	r.waitTimer(r.clock.Now() + retry)
	r.clock.Advance(retry)
	w = r.cli.NextWatch(t)
	if w.Rev != 16 {
		t.Fatalf("re-watch from revision %d, want 16", w.Rev)
	}
	w.Send(clientv3.WatchResponse{CompactRevision: 30, Canceled: true})
	r.cli.Next(t, leasetest.OpGet).GetKV(40, 1)
	r.waitTimer(r.clock.Now() + retry)
	r.clock.Advance(retry)
	if w = r.cli.NextWatch(t); w.Rev != 41 {
		t.Fatalf("re-watch after compaction from revision %d, want 41", w.Rev)
	}
	r.fencer.None(t)
	w.Delete(42)
	r.wantFence(lease.ReasonKeyDeleted)
}

// No Unfence before HoldDown of successful renewals; a failure inside the
// hold-down starts it again after the next success.
func TestHoldDown(t *testing.T) {
	const hold = 3 * time.Second
	t.Run("passes", func(t *testing.T) {
		r := start(t, func(c *lease.Config) { c.Cluster.HoldDown = hold })
		r.grant(1)
		r.clock.Set(t0 + renew)
		r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
		r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 1 })
		r.waitTimer(t0 + hold) // a renewal right at the end of the hold-down
		r.fencer.None(t)
		if s := r.h.Status(); s.State != lease.Starting {
			t.Fatalf("state %s inside the hold-down, want starting", s.State)
		}
		r.clock.Set(t0 + hold)
		r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
		if c := r.fencer.Next(t); !c.Unfence || c.At != t0+hold {
			t.Fatalf("got %+v, want Unfence at t0+%s", c, hold)
		}
	})
	t.Run("restarts after a failure", func(t *testing.T) {
		r := start(t, func(c *lease.Config) { c.Cluster.HoldDown = hold })
		r.grant(1)
		r.clock.Set(t0 + renew)
		r.cli.Next(t, leasetest.OpKeepAlive).Fail(errors.New("context deadline exceeded"))
		r.waitFor("failed renewal", func(s lease.Status) bool { return s.RenewalsFailed == 1 })
		ok := t0 + renew + retry // the retry succeeds: the hold-down starts again
		r.clock.Set(ok)
		r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
		r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 1 })
		r.clock.Set(ok + renew)
		r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
		r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 2 })
		if s := r.h.Status(); s.State != lease.Starting {
			t.Fatalf("state %s at t0+%s, want starting: the failure did not restart the hold-down", s.State, ok+renew-t0)
		}
		r.waitTimer(ok + hold)
		r.fencer.None(t)
		r.clock.Set(ok + hold)
		r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
		if c := r.fencer.Next(t); !c.Unfence || c.At != ok+hold {
			t.Fatalf("got %+v, want Unfence at t0+%s", c, ok+hold-t0)
		}
	})
}

// etcd down at start: the holder stays Starting, never unfences, keeps
// trying, and recovers when etcd answers.
func TestFailClosedAtStart(t *testing.T) {
	r := start(t, nil)
	for i := range 3 {
		g := r.cli.Next(t, leasetest.OpGrant)
		checkRPC(t, g, renew)
		g.Fail(errors.New("context deadline exceeded"))
		r.waitTimer(r.clock.Now() + retry)
		r.clock.Advance(retry)
		if s := r.h.Status(); s.State != lease.Starting || s.LeaseID != 0 {
			t.Fatalf("attempt %d: status %+v, want starting without a lease", i, s)
		}
	}
	r.fencer.None(t)
	r.healthy(7)
}

// A step of the wall clock, either way, changes no deadline and no schedule.
func TestWallClockJumpChangesNothing(t *testing.T) {
	r := start(t, nil)
	r.healthy(1)
	before := r.h.Status()
	r.waitTimer(t0 + renew)
	r.clock.JumpWall(-time.Hour)
	r.clock.JumpWall(3 * time.Hour)
	r.clock.Set(t0 + renew - time.Nanosecond)
	r.cli.NoCall(t)
	r.fencer.None(t)
	if s := r.h.Status(); s.ValidFor != before.ValidFor-renew+time.Nanosecond || s.State != lease.Healthy {
		t.Fatalf("after wall jumps: %+v", s)
	}
	r.clock.Set(t0 + renew)
	r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
	r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 2 })
}

func TestStop(t *testing.T) {
	t.Run("fence, then revoke", func(t *testing.T) {
		r := start(t, func(c *lease.Config) { c.RevokeOnStop = true })
		r.healthy(1)
		r.cli.HoldRevokes()
		r.cancel()
		if c := r.fencer.Next(t); c.Unfence || !strings.HasPrefix(c.Reason, "stopped:") {
			t.Fatalf("got %+v, want Fence for stopped", c)
		}
		r.cli.Next(t, leasetest.OpRevoke).OK(30)
		if err := <-r.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		r.done <- nil
	})
	t.Run("keep", func(t *testing.T) {
		r := start(t, func(c *lease.Config) { c.KeepOnStop = true })
		r.healthy(1)
		r.cancel()
		if err := <-r.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		r.done <- nil
		r.fencer.None(t)
	})
	t.Run("second run", func(t *testing.T) {
		r := start(t, nil)
		r.cli.Next(t, leasetest.OpGrant) // the first Run is running
		if err := r.h.Run(context.Background()); !errors.Is(err, lease.ErrAlreadyRun) {
			t.Fatalf("second Run: %v, want ErrAlreadyRun", err)
		}
	})
}

// A Fence that fails is retried until it succeeds.
func TestFenceRetried(t *testing.T) {
	r := start(t, nil)
	w := r.healthy(1)
	r.fencer.SetErr(errors.New("track file: read-only file system"))
	w.Delete(12)
	r.wantFence(lease.ReasonKeyDeleted)
	r.cli.Next(t, leasetest.OpGrant) // left hanging
	for range 2 {
		r.waitTimer(r.clock.Now() + retry)
		r.clock.Advance(retry)
		if c := r.fencer.Next(t); c.Unfence || !strings.HasPrefix(c.Reason, "key-deleted:") {
			t.Fatalf("got %+v, want the Fence again", c)
		}
		r.fencer.SetErr(nil)
	}
	// Nothing is left to retry: the loop sleeps until there is work.
	r.waitTimer(r.clock.Now() + 24*time.Hour)
	r.fencer.None(t)
}

// The loop signals progress on every iteration, at least every
// ProgressEvery; the member record names the node.
func TestProgressAndMemberRecord(t *testing.T) {
	r := start(t, func(c *lease.Config) { c.ProgressEvery = 400 * time.Millisecond })
	g := r.cli.Next(t, leasetest.OpGrant)
	g.Grant(1, 5)
	p := r.cli.Next(t, leasetest.OpPut)
	var m lease.Member
	if err := json.Unmarshal([]byte(p.Value), &m); err != nil || m.Node != "node-a" || m.Host != "host-a" || m.PID == 0 || m.Version != "test" || m.Started.IsZero() {
		t.Fatalf("member record %s (%v)", p.Value, err)
	}
	p.OK(10)
	r.cli.NextWatch(t)
	r.cli.Next(t, leasetest.OpKeepAlive).KeepAlive(5)
	r.fencer.Next(t)
	r.waitFor("healthy", func(s lease.Status) bool { return s.State == lease.Healthy })
	for range 3 {
		r.waitTimer(r.clock.Now() + 400*time.Millisecond)
		select { // drop the signal of the iteration that armed the timer
		case <-r.h.Progress():
		default:
		}
		r.clock.Advance(400 * time.Millisecond)
		select {
		case <-r.h.Progress():
		case <-time.After(leasetest.Wait):
			t.Fatal("no progress after ProgressEvery")
		}
	}
}

// A renewal that hangs (a frozen member of several: its connection stays
// up, nothing answers) gets a second attempt beside it once half the
// validity left at its send is gone; the hedge's answer keeps the lease,
// and the first attempt's later failure changes nothing. A slow answer to
// the first attempt still counts: it keeps its whole timeout.
func TestRenewHedgedWhileAttemptHangs(t *testing.T) {
	r := start(t, nil)
	r.healthy(1)
	at := t0 + renew
	deadline := t0 + ttl - margin
	r.waitTimer(at)
	r.clock.Set(at)
	first := r.cli.Next(t, leasetest.OpKeepAlive)
	checkRPC(t, first, renew)
	hedge := at + (deadline-at)/2
	r.waitTimer(hedge)
	r.clock.Set(hedge - time.Nanosecond)
	r.cli.NoCall(t)
	r.clock.Set(hedge)
	second := r.cli.Next(t, leasetest.OpKeepAlive)
	checkRPC(t, second, deadline-hedge)
	r.clock.Set(hedge + 10*time.Millisecond)
	second.KeepAlive(5)
	s := r.waitFor("renewal", func(s lease.Status) bool { return s.RenewalsOK == 2 })
	if s.State != lease.Healthy || s.ValidUntil != hedge+ttl-margin {
		t.Fatalf("after the hedge: %+v, want healthy until %s", s, hedge+ttl-margin)
	}
	first.Fail(context.DeadlineExceeded)
	r.waitFor("failed renewal", func(s lease.Status) bool { return s.RenewalsFailed == 1 })
	r.cli.NoCall(t) // no retry: the hedge renewed
	// The next renewal counts from the hedge's send.
	r.waitTimer(hedge + renew)

	// Only one hedge: a third attempt waits for one of the two to end.
	r.clock.Set(hedge + renew)
	first = r.cli.Next(t, leasetest.OpKeepAlive)
	deadline = hedge + ttl - margin
	at = hedge + renew
	r.clock.Set(at + (deadline-at)/2)
	second = r.cli.Next(t, leasetest.OpKeepAlive)
	r.clock.Set(deadline - time.Millisecond)
	r.cli.NoCall(t)
	// The first, slow, answers: its renewal counts.
	first.KeepAlive(5)
	s = r.waitFor("slow renewal", func(s lease.Status) bool { return s.RenewalsOK == 3 })
	if s.State != lease.Healthy || s.ValidUntil != at+ttl-margin {
		t.Fatalf("after the slow answer: %+v, want healthy until %s", s, at+ttl-margin)
	}
	second.Fail(context.DeadlineExceeded)
	r.waitFor("failed renewal", func(s lease.Status) bool { return s.RenewalsFailed == 2 })
}
