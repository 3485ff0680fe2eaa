package lease

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// adopt takes over a lease a predecessor handed over. The host is as the
// predecessor left it (unfenced), so the holder starts Healthy, with the
// predecessor's expiry, not a new one: no renewal this process has seen
// acknowledged proves more. The first tick fences if the deadline has
// passed already and otherwise renews at once.
func (h *Holder) adopt(now time.Duration, a HandedLease) {
	wctx, stop := context.WithCancel(h.wctx)
	margin := h.cfg.Cluster.Margin
	h.lease = &held{
		id:        a.LeaseID,
		ttl:       a.TTL,
		expiry:    a.Expiry,
		deadline:  min(a.Deadline, a.Expiry-margin),
		next:      now,
		holdFrom:  -1,
		stopWatch: stop,
	}
	h.state, h.since = Healthy, h.clock.Wall()
	h.log.Info("lease adopted from the previous process", "lease_id", fmt.Sprintf("%x", a.LeaseID), "valid_for", h.lease.deadline-now)
	h.publish()
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(h.Status())
	}
	// The member key must still be under this lease; then watch it as after
	// a grant.
	id := a.LeaseID
	h.spawn(func() {
		gone, next, err := h.checkMember(wctx, id)
		switch {
		case err != nil:
			// Unknown: the renewals decide; watch from now on.
			h.watchMember(wctx, id, 0)
		case gone != "":
			h.post(event{kind: evKeyGone, lease: id, detail: gone})
		default:
			h.watchMember(wctx, id, next)
		}
	})
}

// PrepareHandoff makes the next graceful stop (Run's context cancelled)
// hand the lease over instead of fencing and revoking it, if the holder
// is Healthy then. Call it just before cancelling.
func (h *Holder) PrepareHandoff() { h.handoff.Store(true) }

// Handed is the lease handed over when Run returned, if it was.
func (h *Holder) Handed() (HandedLease, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handed == nil {
		return HandedLease{}, false
	}
	return *h.handed, true
}

// handOver stops using the lease without fencing or revoking: it keeps
// running on the server until its expiry unless the successor renews it.
// The expiry handed over is the last acknowledged one; a renewal still in
// flight may extend the server's lease, never shorten it.
func (h *Holder) handOver(l *held) {
	l.stopWatch()
	// One last renewal, so the successor gets as much validity as the
	// lease can give (TTL - margin), not what is left of a renewal period.
	if now := h.clock.Now(); now < l.deadline {
		ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(context.WithoutCancel(h.wctx)), min(h.cfg.Cluster.RequestTimeout, l.deadline-now))
		resp, err := h.cli.KeepAliveOnce(ctx, l.id)
		cancel()
		if err == nil && resp.TTL > 0 {
			if e := now + min(time.Duration(resp.TTL)*time.Second, l.ttl); e > l.expiry {
				l.expiry, l.deadline = e, e-h.cfg.Cluster.Margin
			}
		}
	}
	hl := HandedLease{
		Cluster: h.cfg.Cluster.Name, Prefix: h.cfg.Cluster.Prefix, Endpoints: h.cfg.Cluster.Endpoints,
		LeaseID: l.id, TTL: l.ttl, Expiry: l.expiry, Deadline: l.deadline,
	}
	h.mu.Lock()
	h.handed = &hl
	h.mu.Unlock()
	h.log.Info("lease handed over", "lease_id", fmt.Sprintf("%x", l.id), "valid_for", l.deadline-h.clock.Now())
	h.lease = nil
	h.publish()
}
