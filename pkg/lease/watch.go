package lease

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchMember reports when the member key stops belonging to lease id: it was
// deleted (someone revoked the lease) or overwritten under another lease. It
// watches from rev, the revision after the holder's own put, so it misses no
// change; it re-watches after errors and stops when ctx is cancelled (the
// lease is dropped or the loop exits).
func (h *Holder) watchMember(ctx context.Context, id clientv3.LeaseID, rev int64) {
	var retry Timer
	defer func() {
		if retry != nil {
			retry.Close()
		}
	}()
	for {
		// A member without a leader cancels the watch, so the client moves
		// to one that can see deletions.
		wch := h.cli.Watch(clientv3.WithRequireLeader(ctx), h.key, clientv3.WithRev(rev))
		for resp := range wch {
			if resp.CompactRevision != 0 {
				// History since rev is gone: look at the key itself.
				if gone, next, err := h.checkMember(ctx, id); err == nil {
					if gone != "" {
						h.post(event{kind: evKeyGone, lease: id, detail: gone})
						return
					}
					rev = next
				}
				break
			}
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if gone := keyGone(ev, id); gone != "" {
					h.post(event{kind: evKeyGone, lease: id, detail: gone})
					return
				}
			}
			rev = resp.Header.Revision + 1
		}
		if ctx.Err() != nil {
			return
		}
		if retry == nil {
			var err error
			if retry, err = h.clock.NewTimer(); err != nil {
				h.log.Error("cannot re-watch member key", "key", h.key, "err", err)
				return // the local deadline still guards the lease
			}
		}
		retry.Reset(h.clock.Now() + h.retry)
		select {
		case <-ctx.Done():
			return
		case <-retry.C():
		}
	}
}

func keyGone(ev *clientv3.Event, id clientv3.LeaseID) string {
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		return fmt.Sprintf("member key %s deleted at revision %d", ev.Kv.Key, ev.Kv.ModRevision)
	case clientv3.LeaseID(ev.Kv.Lease) != id:
		return fmt.Sprintf("member key %s rewritten under lease %x at revision %d", ev.Kv.Key, ev.Kv.Lease, ev.Kv.ModRevision)
	}
	return ""
}

// checkMember reads the member key after its history was compacted.
func (h *Holder) checkMember(ctx context.Context, id clientv3.LeaseID) (gone string, next int64, err error) {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), h.cfg.Cluster.RequestTimeout)
	defer cancel()
	g, err := h.cli.Get(ctx, h.key)
	if err != nil {
		return "", 0, fmt.Errorf("get member key %s: %w", h.key, err)
	}
	switch {
	case len(g.Kvs) == 0:
		return fmt.Sprintf("member key %s is gone", h.key), 0, nil
	case clientv3.LeaseID(g.Kvs[0].Lease) != id:
		return fmt.Sprintf("member key %s is held by lease %x", h.key, g.Kvs[0].Lease), 0, nil
	}
	return "", g.Header.Revision + 1, nil
}
