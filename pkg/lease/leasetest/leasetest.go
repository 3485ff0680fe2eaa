// Package leasetest has fakes for driving a lease.Holder without etcd or
// real time: a CLOCK_BOOTTIME clock that moves only when told, an etcd
// client whose every request the test answers (or leaves hanging), and a
// fencer that records its calls.
package leasetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/lease"
)

// Wait is how long the helpers wait for the holder to do something.
const Wait = 10 * time.Second

// Clock is a fake lease.Clock. Timers fire when Advance or Set moves the
// clock to or past them.
type Clock struct {
	mu     sync.Mutex
	now    time.Duration
	wall   time.Time
	timers map[*timer]struct{}
}

// NewClock starts at boot time now, with an arbitrary wall clock.
func NewClock(now time.Duration) *Clock {
	return &Clock{now: now, wall: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), timers: map[*timer]struct{}{}}
}

// Now reads the fake CLOCK_BOOTTIME.
func (c *Clock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Wall reads the fake wall clock, which moves with Advance and JumpWall.
func (c *Clock) Wall() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

// Advance moves both clocks forward and fires the timers due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	c.wall = c.wall.Add(d)
	c.fireLocked()
	c.mu.Unlock()
}

// Set moves CLOCK_BOOTTIME to now (never backwards) and fires timers due.
func (c *Clock) Set(now time.Duration) {
	c.mu.Lock()
	if now > c.now {
		c.wall = c.wall.Add(now - c.now)
		c.now = now
	}
	c.fireLocked()
	c.mu.Unlock()
}

// JumpWall steps the wall clock only, as settimeofday or NTP would.
func (c *Clock) JumpWall(d time.Duration) {
	c.mu.Lock()
	c.wall = c.wall.Add(d)
	c.mu.Unlock()
}

// NextTimer is the earliest armed timer, false when none is armed.
func (c *Clock) NextTimer() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at time.Duration
	ok := false
	for t := range c.timers {
		if t.armed && (!ok || t.at < at) {
			at, ok = t.at, true
		}
	}
	return at, ok
}

func (c *Clock) fireLocked() {
	for t := range c.timers {
		if t.armed && t.at <= c.now {
			t.armed = false
			select {
			case t.c <- struct{}{}:
			default:
			}
		}
	}
}

// NewTimer implements lease.Clock.
func (c *Clock) NewTimer() (lease.Timer, error) {
	t := &timer{clock: c, c: make(chan struct{}, 1)}
	c.mu.Lock()
	c.timers[t] = struct{}{}
	c.mu.Unlock()
	return t, nil
}

type timer struct {
	clock *Clock
	c     chan struct{}
	at    time.Duration // guarded by clock.mu
	armed bool          // guarded by clock.mu
}

func (t *timer) C() <-chan struct{} { return t.c }

func (t *timer) Reset(at time.Duration) {
	c := t.clock
	c.mu.Lock()
	t.at, t.armed = at, true
	c.fireLocked()
	c.mu.Unlock()
}

func (t *timer) Close() {
	c := t.clock
	c.mu.Lock()
	delete(c.timers, t)
	c.mu.Unlock()
}

// Op names a client request.
type Op string

// The requests the holder makes.
const (
	OpGrant     Op = "grant"
	OpKeepAlive Op = "keepalive"
	OpRevoke    Op = "revoke"
	OpPut       Op = "put"
	OpGet       Op = "get"
)

// Call is one request waiting for the test's answer. Unanswered, it returns
// when its context ends, as clientv3 does.
type Call struct {
	Op    Op
	Ctx   context.Context
	Lease clientv3.LeaseID // keepalive, revoke, put (WithLease)
	TTL   int64            // grant
	Key   string           // put, get
	Value string           // put
	reply chan reply
}

type reply struct {
	resp any
	err  error
}

// Reply answers with anything.
func (c *Call) Reply(resp any, err error) { c.reply <- reply{resp: resp, err: err} }

// Fail answers with err.
func (c *Call) Fail(err error) { c.reply <- reply{err: err} }

// Grant answers a grant.
func (c *Call) Grant(id clientv3.LeaseID, ttl int64) {
	c.reply <- reply{resp: &clientv3.LeaseGrantResponse{ResponseHeader: header(1), ID: id, TTL: ttl}}
}

// KeepAlive answers a keepalive with ttl; ttl <= 0 means not found.
func (c *Call) KeepAlive(ttl int64) {
	r := reply{resp: &clientv3.LeaseKeepAliveResponse{ResponseHeader: header(1), ID: c.Lease, TTL: ttl}}
	if ttl <= 0 {
		r.err = rpctypes.ErrLeaseNotFound // what clientv3 returns with such an answer
	}
	c.reply <- r
}

// OK answers a put, revoke or get (an empty result) with revision rev.
func (c *Call) OK(rev int64) {
	var resp any
	switch c.Op {
	case OpPut:
		resp = &clientv3.PutResponse{Header: header(rev)}
	case OpRevoke:
		resp = &clientv3.LeaseRevokeResponse{Header: header(rev)}
	case OpGet:
		resp = &clientv3.GetResponse{Header: header(rev)}
	default:
		panic("leasetest: OK does not answer " + string(c.Op))
	}
	c.reply <- reply{resp: resp}
}

// GetKV answers a get with one key held by lease.
func (c *Call) GetKV(rev int64, lease clientv3.LeaseID) {
	c.reply <- reply{resp: &clientv3.GetResponse{Header: header(rev), Kvs: []*mvccpb.KeyValue{{Key: []byte(c.Key), Lease: int64(lease), ModRevision: rev}}}}
}

func header(rev int64) *etcdserverpb.ResponseHeader {
	return &etcdserverpb.ResponseHeader{Revision: rev}
}

// Client is a fake lease.Client. Revokes are answered at once unless
// HoldRevokes was called; every other request waits in Calls.
type Client struct {
	Calls   chan *Call
	Watches chan *Watch

	ctx    context.Context
	cancel context.CancelFunc

	mu          sync.Mutex
	revoked     []clientv3.LeaseID
	holdRevokes bool
}

// HoldRevokes sends later revokes to Calls too.
func (c *Client) HoldRevokes() {
	c.mu.Lock()
	c.holdRevokes = true
	c.mu.Unlock()
}

// NewClient makes a client that is closed in t's cleanup.
func NewClient(t testing.TB) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{Calls: make(chan *Call, 64), Watches: make(chan *Watch, 64), ctx: ctx, cancel: cancel}
	t.Cleanup(cancel)
	return c
}

// Close closes the client: Ctx is done, requests fail.
func (c *Client) Close() { c.cancel() }

// Ctx implements lease.Client.
func (c *Client) Ctx() context.Context { return c.ctx }

// Revoked lists the leases revoked so far.
func (c *Client) Revoked() []clientv3.LeaseID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]clientv3.LeaseID(nil), c.revoked...)
}

var errClosed = errors.New("leasetest: client closed")

func (c *Client) call(ctx context.Context, k *Call) (any, error) {
	if c.ctx.Err() != nil {
		return nil, errClosed
	}
	k.Ctx, k.reply = ctx, make(chan reply, 1)
	c.Calls <- k
	select {
	case r := <-k.reply:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, errClosed
	}
}

// Grant implements lease.Client.
func (c *Client) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	r, err := c.call(ctx, &Call{Op: OpGrant, TTL: ttl})
	resp, _ := r.(*clientv3.LeaseGrantResponse)
	return resp, err
}

// KeepAliveOnce implements lease.Client.
func (c *Client) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	r, err := c.call(ctx, &Call{Op: OpKeepAlive, Lease: id})
	resp, _ := r.(*clientv3.LeaseKeepAliveResponse)
	return resp, err
}

// Revoke implements lease.Client.
func (c *Client) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	c.mu.Lock()
	c.revoked = append(c.revoked, id)
	hold := c.holdRevokes
	c.mu.Unlock()
	if !hold {
		return &clientv3.LeaseRevokeResponse{Header: header(1)}, nil
	}
	r, err := c.call(ctx, &Call{Op: OpRevoke, Lease: id})
	resp, _ := r.(*clientv3.LeaseRevokeResponse)
	return resp, err
}

// Put implements lease.Client.
func (c *Client) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	op := clientv3.OpPut(key, val, opts...)
	r, err := c.call(ctx, &Call{Op: OpPut, Key: key, Value: val, Lease: leaseOf(op)})
	resp, _ := r.(*clientv3.PutResponse)
	return resp, err
}

// leaseOf reads WithLease back out of a put; clientv3.Op has no accessor.
func leaseOf(op clientv3.Op) clientv3.LeaseID {
	if f := reflect.ValueOf(op).FieldByName("leaseID"); f.IsValid() {
		return clientv3.LeaseID(f.Int())
	}
	return 0
}

// Get implements lease.Client.
func (c *Client) Get(ctx context.Context, key string, _ ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := c.call(ctx, &Call{Op: OpGet, Key: key})
	resp, _ := r.(*clientv3.GetResponse)
	return resp, err
}

// Watch is one watch the holder opened; the test sends its responses.
type Watch struct {
	Key string
	Rev int64
	Ctx context.Context
	in  chan clientv3.WatchResponse
}

// Send delivers a response; false if the watch was cancelled meanwhile.
func (w *Watch) Send(r clientv3.WatchResponse) bool {
	select {
	case w.in <- r:
		return true
	case <-w.Ctx.Done():
		return false
	}
}

// Delete delivers the deletion of the watched key at rev.
func (w *Watch) Delete(rev int64) bool {
	return w.Send(clientv3.WatchResponse{Header: *header(rev), Events: []*clientv3.Event{{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{Key: []byte(w.Key), ModRevision: rev}}}})
}

// Put delivers a write of the watched key under lease at rev.
func (w *Watch) Put(rev int64, lease clientv3.LeaseID) bool {
	return w.Send(clientv3.WatchResponse{Header: *header(rev), Events: []*clientv3.Event{{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: []byte(w.Key), ModRevision: rev, Lease: int64(lease)}}}})
}

// Close ends the watch from the server side, as a cancelled watch would.
func (w *Watch) Close() { close(w.in) }

// Watch implements lease.Client. Like clientv3, the returned channel closes
// when ctx ends.
func (c *Client) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	w := &Watch{Key: key, Rev: clientv3.OpGet(key, opts...).Rev(), Ctx: ctx, in: make(chan clientv3.WatchResponse)}
	out := make(chan clientv3.WatchResponse)
	go func() { // stops when ctx ends or the test closes the watch
		defer close(out)
		for {
			select {
			case r, ok := <-w.in:
				if !ok {
					return
				}
				select {
				case out <- r:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	c.Watches <- w
	return out
}

// Next waits for the next request, which must be op.
func (c *Client) Next(t testing.TB, op Op) *Call {
	t.Helper()
	select {
	case k := <-c.Calls:
		if k.Op != op {
			t.Fatalf("next etcd request: got %s, want %s", k.Op, op)
		}
		return k
	case <-time.After(Wait):
		t.Fatalf("no %s request within %s", op, Wait)
	}
	return nil
}

// NoCall checks that no request is waiting.
func (c *Client) NoCall(t testing.TB) {
	t.Helper()
	select {
	case k := <-c.Calls:
		t.Fatalf("unexpected %s request (lease %x)", k.Op, k.Lease)
	default:
	}
}

// NextWatch waits for the holder to open a watch.
func (c *Client) NextWatch(t testing.TB) *Watch {
	t.Helper()
	select {
	case w := <-c.Watches:
		return w
	case <-time.After(Wait):
		t.Fatalf("no watch within %s", Wait)
	}
	return nil
}

// FenceCall is one call to Fence or Unfence.
type FenceCall struct {
	Unfence bool
	Reason  string
	At      time.Duration // the clock when the call returned
}

// Fencer records calls. Set Err to make Fence and Unfence fail.
type Fencer struct {
	Clock lease.Clock
	Calls chan FenceCall

	mu  sync.Mutex
	err error
	log []FenceCall
}

// NewFencer records times on clock.
func NewFencer(clock lease.Clock) *Fencer {
	return &Fencer{Clock: clock, Calls: make(chan FenceCall, 1024)}
}

// SetErr makes later calls fail with err (nil: succeed).
func (f *Fencer) SetErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *Fencer) record(c FenceCall) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.At = f.Clock.Now()
	f.log = append(f.log, c)
	f.Calls <- c
	return f.err
}

// Fence implements lease.Fencer.
func (f *Fencer) Fence(_ context.Context, reason string) error {
	return f.record(FenceCall{Reason: reason})
}

// Unfence implements lease.Fencer.
func (f *Fencer) Unfence(context.Context) error { return f.record(FenceCall{Unfence: true}) }

// Log returns every call so far.
func (f *Fencer) Log() []FenceCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FenceCall(nil), f.log...)
}

// Next waits for the next call.
func (f *Fencer) Next(t testing.TB) FenceCall {
	t.Helper()
	select {
	case c := <-f.Calls:
		return c
	case <-time.After(Wait):
		t.Fatalf("no fence or unfence within %s", Wait)
	}
	return FenceCall{}
}

// None checks that no call is waiting.
func (f *Fencer) None(t testing.TB) {
	t.Helper()
	select {
	case c := <-f.Calls:
		t.Fatalf("unexpected call %+v", c)
	default:
	}
}
