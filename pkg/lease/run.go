package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// reasonUnfenceFailed only labels the retry of a Fence that undoes a failed
// Unfence; it is not counted, the host was not Healthy.
const reasonUnfenceFailed Reason = "unfence-failed"

// never is how far ahead the loop's timer is armed when nothing is due.
const never = 24 * time.Hour

type eventKind int

const (
	evAcquired eventKind = iota // grant and member put finished
	evRenewed                   // a KeepAliveOnce finished
	evKeyGone                   // the member key was deleted or replaced
)

// event is what a worker goroutine reports to the loop. Every event names
// its lease, so an answer for a lease the loop already dropped is ignored.
type event struct {
	kind    eventKind
	lease   clientv3.LeaseID
	sent    time.Duration // CLOCK_BOOTTIME before the request went out
	ttl     time.Duration // granted or renewed TTL
	rev     int64         // revision of the member put
	latency time.Duration
	err     error
	detail  string
}

// Run holds the lease until ctx is cancelled or the client is closed. All
// RPCs run on goroutines of their own, bounded by timeouts; the loop only
// selects, so the local deadline fires even while an RPC hangs. When Run
// returns, every goroutine it started has stopped, and the host is fenced
// unless ctx was cancelled with KeepOnStop set.
func (h *Holder) Run(ctx context.Context) (err error) {
	if !h.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	timer, err := h.clock.NewTimer()
	if err != nil {
		return fmt.Errorf("run lease holder: %w", err) // still Starting: fenced
	}
	defer timer.Close()

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.wctx = wctx
	h.events = make(chan event)
	h.done = make(chan struct{})
	defer func() {
		// Whatever ends the loop, a panic included, leaves the host fenced.
		h.shutdown(ctx.Err() != nil && err == nil)
		cancel()
		close(h.done)
		h.wg.Wait()
	}()

	if a := h.cfg.Adopt; a != nil {
		h.adopt(h.clock.Now(), *a)
	}
	if h.cfg.OnRun != nil {
		h.cfg.OnRun()
	}
	for {
		now := h.clock.Now()
		h.tick(now)
		h.publish()
		select {
		case h.progress <- struct{}{}:
		default:
		}
		timer.Reset(h.nextWake(now))

		select {
		case <-ctx.Done():
			return nil
		case <-h.cli.Ctx().Done():
			h.lose(ReasonClientClosed, "etcd client closed")
			return fmt.Errorf("hold lease on %s: %w", h.endpoints(), ErrClientClosed)
		case <-timer.C():
		case ev := <-h.events:
			h.handle(ev)
		}
	}
}

// tick does what is due at now, the deadline first.
func (h *Holder) tick(now time.Duration) {
	h.checkDeadline(now)
	if h.fencePending != "" && now >= h.fenceRetryAt {
		h.retryFence()
	}
	l := h.lease
	if l == nil {
		if !h.acquiring && now >= h.nextAcquire {
			h.acquire(now)
		}
		return
	}
	if l.inflight == 0 && now >= h.renewDue(l) || l.inflight == 1 && now >= l.hedgeAt {
		h.renew(now, l)
	}
}

func (h *Holder) checkDeadline(now time.Duration) {
	if l := h.lease; l != nil && now >= l.deadline {
		h.lose(ReasonDeadline, fmt.Sprintf("local validity of lease %x ended %s ago without an acknowledged renewal", l.id, now-l.deadline))
	}
}

// renewDue is the next renewal, or the end of the hold-down if sooner: the
// holder unfences only after a renewal sent once the hold-down is over.
func (h *Holder) renewDue(l *held) time.Duration {
	if h.state != Healthy && l.holdFrom >= 0 {
		return min(l.next, l.holdFrom+h.cfg.Cluster.HoldDown)
	}
	return l.next
}

func (h *Holder) nextWake(now time.Duration) time.Duration {
	at := now + never
	if h.cfg.ProgressEvery > 0 {
		at = now + h.cfg.ProgressEvery
	}
	if h.fencePending != "" {
		at = min(at, h.fenceRetryAt)
	}
	if l := h.lease; l != nil {
		at = min(at, l.deadline)
		switch l.inflight {
		case 0:
			at = min(at, h.renewDue(l))
		case 1:
			at = min(at, l.hedgeAt)
		}
	} else if !h.acquiring {
		at = min(at, h.nextAcquire)
	}
	return at
}

func (h *Holder) handle(ev event) {
	now := h.clock.Now()
	// An answer that arrives after the deadline must not revive the lease.
	h.checkDeadline(now)
	switch ev.kind {
	case evAcquired:
		h.acquired(now, ev)
		return
	}
	l := h.lease
	if l == nil || l.id != ev.lease {
		h.log.Debug("ignored answer for a dropped lease", "lease_id", fmt.Sprintf("%x", ev.lease), "err", ev.err)
		return
	}
	switch ev.kind {
	case evRenewed:
		h.renewed(now, l, ev)
	case evKeyGone:
		h.lose(ReasonKeyDeleted, ev.detail)
	}
}

// spawn runs f on a worker goroutine that Run waits for.
func (h *Holder) spawn(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// post hands an event to the loop; false once the loop has exited.
func (h *Holder) post(ev event) bool {
	select {
	case h.events <- ev:
		return true
	case <-h.done:
		return false
	}
}

// rpcCtx bounds one request and makes a member without a leader refuse it
// instead of forwarding or queueing it.
func (h *Holder) rpcCtx(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(h.wctx), timeout)
}

// acquire grants a lease and writes the member key under it.
func (h *Holder) acquire(now time.Duration) {
	h.acquiring = true
	c := h.cfg.Cluster
	h.spawn(func() {
		ctx, cancel := h.rpcCtx(c.RequestTimeout)
		g, err := h.cli.Grant(ctx, h.ttlSecs)
		cancel()
		if err != nil {
			h.post(event{kind: evAcquired, sent: now, err: fmt.Errorf("grant lease (ttl %s) on %s: %w", c.TTL, h.endpoints(), err)})
			return
		}
		ttl := time.Duration(g.TTL) * time.Second
		left := now + ttl - c.Margin - h.clock.Now()
		if left <= 0 || g.TTL <= 0 {
			h.revokeBestEffort(h.wctx, g.ID)
			h.post(event{kind: evAcquired, sent: now, err: fmt.Errorf("grant lease (ttl %s) on %s: answer came after its validity ended", c.TTL, h.endpoints())})
			return
		}
		ctx, cancel = h.rpcCtx(min(c.RequestTimeout, left))
		p, err := h.cli.Put(ctx, h.key, h.member, clientv3.WithLease(g.ID))
		cancel()
		if err != nil {
			h.revokeBestEffort(h.wctx, g.ID)
			h.post(event{kind: evAcquired, sent: now, err: fmt.Errorf("put member key %s (lease %x) on %s: %w", h.key, g.ID, h.endpoints(), err)})
			return
		}
		if !h.post(event{kind: evAcquired, lease: g.ID, sent: now, ttl: ttl, rev: p.Header.Revision}) {
			// The loop is gone; do not leave the key behind.
			h.revokeBestEffort(context.WithoutCancel(h.wctx), g.ID)
		}
	})
}

func (h *Holder) acquired(now time.Duration, ev event) {
	h.acquiring = false
	if ev.err != nil {
		h.acquireFails++
		h.nextAcquire = max(now, ev.sent+h.retry)
		if h.acquireFails == 1 {
			h.log.Warn("cannot get a lease, retrying", "err", ev.err)
		} else {
			h.log.Debug("cannot get a lease, retrying", "attempt", h.acquireFails, "err", ev.err)
		}
		return
	}
	expiry := ev.sent + ev.ttl
	if now >= expiry-h.cfg.Cluster.Margin {
		h.spawn(func() { h.revokeBestEffort(h.wctx, ev.lease) })
		h.nextAcquire = now
		return
	}
	h.acquireFails = 0
	wctx, stop := context.WithCancel(h.wctx)
	h.lease = &held{
		id:        ev.lease,
		ttl:       ev.ttl,
		expiry:    expiry,
		deadline:  expiry - h.cfg.Cluster.Margin,
		next:      ev.sent + h.cfg.Cluster.RenewEvery,
		holdFrom:  now,
		stopWatch: stop,
	}
	h.spawn(func() { h.watchMember(wctx, ev.lease, ev.rev+1) })
	h.log.Info("lease granted", "lease_id", fmt.Sprintf("%x", ev.lease), "ttl", ev.ttl, "key", h.key, "hold_down", h.cfg.Cluster.HoldDown)
}

// minHedge is the least validity a second renewal attempt must have left.
const minHedge = 100 * time.Millisecond

// renew sends one KeepAliveOnce, bounded by the request timeout and by the
// validity left: an answer after the deadline is useless. When the first
// attempt has not answered once half of that validity is gone, a second
// one goes out beside it (a hedge; clientv3's round robin sends it through
// another member): a frozen member keeps its connection up and answers
// nothing, so the first could hang until the deadline although the rest of
// the cluster would renew, while a merely slow cluster still gets its whole
// timeout.
func (h *Holder) renew(now time.Duration, l *held) {
	l.inflight++
	l.hedgeAt = l.deadline // no third attempt
	if left := l.deadline - now; l.inflight == 1 && left/2 >= minHedge {
		l.hedgeAt = now + left/2
	}
	id := l.id
	timeout := min(h.cfg.Cluster.RequestTimeout, l.deadline-now)
	h.spawn(func() {
		ctx, cancel := h.rpcCtx(timeout)
		resp, err := h.cli.KeepAliveOnce(ctx, id)
		cancel()
		ev := event{kind: evRenewed, lease: id, sent: now, latency: h.clock.Now() - now, err: err}
		if err == nil {
			ev.ttl = time.Duration(resp.TTL) * time.Second
		}
		h.post(ev)
	})
}

func (h *Holder) renewed(now time.Duration, l *held, ev event) {
	l.inflight--
	// A failure of an attempt sent before the last acknowledged one (the
	// hedge answered first) changes nothing.
	stale := ev.err != nil && !errors.Is(ev.err, rpctypes.ErrLeaseNotFound) && ev.sent+l.ttl < l.expiry
	switch {
	case stale:
		h.counters.RenewalsFailed++
		h.log.Debug("renewal attempt failed after a later one succeeded", "lease_id", fmt.Sprintf("%x", l.id), "err", ev.err)
	case ev.err == nil && ev.ttl > 0:
		// Acknowledged renewals only: a timed-out one took its timeout,
		// not a round trip, and an etcd outage is not a slow etcd.
		h.counters.LastRenewLatency = ev.latency
		h.counters.RenewalsOK++
		if e := ev.sent + min(ev.ttl, l.ttl); e > l.expiry {
			l.expiry, l.deadline = e, e-h.cfg.Cluster.Margin
		}
		if h.cfg.OnRenew != nil {
			// After the new deadline is in Status: the runtime records it.
			h.publish()
			h.cfg.OnRenew(ev.latency)
		}
		l.next = max(l.next, ev.sent+h.cfg.Cluster.RenewEvery)
		if h.state == Healthy {
			return
		}
		if l.holdFrom < 0 {
			l.holdFrom = now
		} else if ev.sent >= l.holdFrom+h.cfg.Cluster.HoldDown {
			h.unfence(l)
		}
	case ev.err == nil || errors.Is(ev.err, rpctypes.ErrLeaseNotFound):
		h.counters.RenewalsFailed++
		h.lose(ReasonLeaseNotFound, fmt.Sprintf("server answered lease %x not found", l.id))
	default:
		h.counters.RenewalsFailed++
		// Space attempts from their send times: a renewal that timed out is
		// retried at once with what validity is left, fast failures do not
		// spin. (While a hedge is out, the retry waits for its answer.)
		l.next = max(now, ev.sent+h.retry)
		if h.state != Healthy {
			l.holdFrom = -1 // the hold-down restarts after the next success
		}
		h.log.Warn("cannot renew lease", "lease_id", fmt.Sprintf("%x", l.id), "valid_for", l.deadline-now, "err", fmt.Errorf("renew lease %x on %s: %w", l.id, h.endpoints(), ev.err))
	}
}

func (h *Holder) unfence(l *held) {
	ctx, cancel := context.WithTimeout(h.wctx, l.deadline-h.clock.Now())
	err := h.fencer.Unfence(ctx)
	cancel()
	if err != nil {
		h.log.Error("cannot unfence, staying fenced", "err", err)
		// Undo whatever part of Unfence happened; try again after a full
		// hold-down.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(h.wctx), time.Second)
		defer cancel()
		if ferr := h.fencer.Fence(ctx, "unfence failed"); ferr != nil {
			h.log.Error("cannot fence after a failed unfence", "err", ferr)
			h.fencePending, h.fenceRetryAt = reasonUnfenceFailed, h.clock.Now()+h.retry
		}
		l.holdFrom = -1
		return
	}
	h.fencePending = ""
	h.setState(Healthy)
}

// lose drops the current lease. Leaving Healthy calls Fence at once; in the
// other states the host is fenced already.
func (h *Holder) lose(r Reason, detail string) {
	l := h.lease
	if l == nil {
		return
	}
	h.lease = nil
	l.stopWatch()
	h.nextAcquire = h.clock.Now()
	if h.state == Healthy {
		h.fence(r, detail, l)
	} else {
		h.log.Warn("lease lost before unfencing", "lease_id", fmt.Sprintf("%x", l.id), "reason", r, "detail", detail)
	}
	if r != ReasonLeaseNotFound {
		// A peer need not wait for a lease nobody renews any more.
		h.spawn(func() { h.revokeBestEffort(h.wctx, l.id) })
	}
	h.publish()
}

// fence calls the Fencer, measures the lead over the earliest possible
// server expiry and leaves Healthy.
func (h *Holder) fence(r Reason, detail string, l *held) {
	// The budget is the time left to the server's expiry; fencing late still
	// beats not fencing, so it never drops below a second.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.wctx), max(l.expiry-h.clock.Now(), time.Second))
	err := h.fencer.Fence(ctx, string(r)+": "+detail)
	cancel()
	at := h.clock.Now()
	lead := l.expiry - at
	c := &h.counters
	c.Fences[r]++
	c.LastFenceReason, c.LastFenceAt, c.LastFenceLead = r, at, lead
	attrs := []any{"lease_id", fmt.Sprintf("%x", l.id), "reason", r, "detail", detail, "lead", lead}
	switch {
	case err != nil:
		h.fencePending, h.fenceRetryAt = r, at+h.retry
		h.log.Error("fence failed, retrying", append(attrs, "err", err)...)
	case lead <= 0:
		h.log.Error("fenced after the earliest possible server expiry", attrs...)
	default:
		h.log.Warn("fenced", attrs...)
	}
	h.setState(Fenced)
}

func (h *Holder) retryFence() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.wctx), time.Second)
	defer cancel()
	if err := h.fencer.Fence(ctx, string(h.fencePending)+": retry"); err != nil {
		h.fenceRetryAt = h.clock.Now() + h.retry
		h.log.Error("fence failed, retrying", "reason", h.fencePending, "err", err)
		return
	}
	h.fencePending = ""
}

// revokeBestEffort revokes a lease the holder no longer uses.
func (h *Holder) revokeBestEffort(parent context.Context, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(parent, h.cfg.Cluster.RequestTimeout)
	defer cancel()
	if _, err := h.cli.Revoke(ctx, id); err != nil {
		h.log.Debug("cannot revoke dropped lease", "lease_id", fmt.Sprintf("%x", id), "err", err)
	}
}

// shutdown runs when the loop exits.
func (h *Holder) shutdown(graceful bool) {
	l := h.lease
	if l == nil {
		return
	}
	if graceful && h.handoff.Load() && h.state == Healthy && h.fencePending == "" {
		h.handOver(l)
		return
	}
	if h.state == Healthy && !(graceful && h.cfg.KeepOnStop) {
		h.fence(ReasonStopped, "lease holder stopping", l)
	}
	l.stopWatch()
	if h.cfg.RevokeOnStop && h.state != Healthy {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(h.wctx), min(h.cfg.Cluster.RequestTimeout, 2*time.Second))
		defer cancel()
		if _, err := h.cli.Revoke(ctx, l.id); err != nil {
			h.log.Warn("cannot revoke lease on stop", "lease_id", fmt.Sprintf("%x", l.id), "err", fmt.Errorf("revoke lease %x on %s: %w", l.id, h.endpoints(), err))
		} else {
			h.log.Info("lease revoked on stop", "lease_id", fmt.Sprintf("%x", l.id))
		}
	}
	h.lease = nil
	h.publish()
}
