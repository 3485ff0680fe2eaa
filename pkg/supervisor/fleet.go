package supervisor

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/vip"
)

// Observer samples the host for the fleet view: what it holds of the
// instances and what keepalived is doing, as vipkit knows it (cmd/fenced
// reads vipctl's state and the kernel's addresses). prev is the previous
// sample of the same instances.
type Observer func(ins []vip.Target, fenced bool, prev []fencedstate.InstanceView) []fencedstate.InstanceView

// How often the fleet view is sampled and rewritten unchanged, in renewal
// intervals: a second owner shows within half a renewal interval plus a
// write and a watch event; an unchanged view costs one write per ten.
const (
	fleetSamplesPerRenewal = 2
	fleetRefreshRenewals   = 10
)

// fleetRecord is one cluster's part of the fleet view: this node's last
// sample and every other node's view as the watch delivered it.
type fleetRecord struct {
	mu    sync.Mutex
	self  *fencedstate.Seen
	peers map[string]fencedstate.Seen
	revs  map[string]int64 // mod revision of each peer's value
}

func (f *fleetRecord) list() []fencedstate.Seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fencedstate.Seen
	if f.self != nil {
		out = append(out, *f.self)
	}
	for _, p := range f.peers {
		out = append(out, p)
	}
	return out
}

// viewsPrefix is the cluster's key directory of node views.
func viewsPrefix(cl *cluster) string {
	return strings.TrimRight(cl.cfg.Prefix, "/") + fencedstate.ViewsDir
}

// runFleet publishes this node's view of the cluster's instances under the
// holder's lease and watches every node's, until ctx ends.
func (s *Supervisor) runFleet(ctx context.Context, c *cluster, cli lease.Client, h *lease.Holder, node string) {
	if s.Observe == nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.publishView(ctx, c, cli, h, node) })
	wg.Go(func() { s.watchViews(ctx, c, cli, node) })
	wg.Wait()
}

func targets(ins []fence.Instance) []vip.Target {
	out := make([]vip.Target, len(ins))
	for i, in := range ins {
		out[i] = in.Target
	}
	return out
}

// publishView samples the host every half renewal interval and writes the
// view when it changed, when the lease changed, or when the last write is
// a refresh interval old; nothing else is written.
func (s *Supervisor) publishView(ctx context.Context, c *cluster, cli lease.Client, h *lease.Holder, node string) {
	period := max(c.cfg.RenewEvery/fleetSamplesPerRenewal, 50*time.Millisecond)
	refresh := fleetRefreshRenewals * c.cfg.RenewEvery
	key := viewsPrefix(c) + node
	tick := time.NewTicker(period)
	defer tick.Stop()
	var (
		last      fencedstate.NodeView // last written, Seq and Sampled aside
		lastLease clientv3.LeaseID
		lastWrite time.Time
		seq       uint64
		prev      []fencedstate.InstanceView
	)
	for {
		st := h.Status()
		fenced := c.isFenced()
		nv := fencedstate.NodeView{
			Node: node, Cluster: c.cfg.Name, Lease: st.State.String(), Fenced: fenced, RefreshEvery: refresh,
			Instances: s.Observe(targets(c.memberList()), fenced, prev),
		}
		prev = nv.Instances
		now := time.Now()
		nv.Sampled = now.UTC()
		changed := !sameView(nv, last)
		c.fleet.mu.Lock()
		c.fleet.self = &fencedstate.Seen{NodeView: nv, Via: c.cfg.Name, Self: true, Received: nv.Sampled, ReceivedBoot: s.now()}
		c.fleet.mu.Unlock()
		if changed {
			s.changed()
		}
		if st.LeaseID != 0 && (changed || st.LeaseID != lastLease || now.Sub(lastWrite) >= refresh) {
			seq++
			nv.Seq = seq
			if err := putView(ctx, cli, c, key, nv, st.LeaseID); err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Debug("fleet view not written; retrying at the next sample", "key", key, "error", err)
			} else {
				last, lastLease, lastWrite = nv, st.LeaseID, now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sameView compares two views without their sample time and write count.
func sameView(a, b fencedstate.NodeView) bool {
	a.Sampled, b.Sampled, a.Seq, b.Seq = time.Time{}, time.Time{}, 0, 0
	return reflect.DeepEqual(a, b)
}

func putView(ctx context.Context, cli lease.Client, c *cluster, key string, nv fencedstate.NodeView, id clientv3.LeaseID) error {
	b, err := json.Marshal(nv)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	_, err = cli.Put(rctx, key, string(b), clientv3.WithLease(id))
	return err
}

// watchViews keeps the other nodes' views of the cluster: one read of the
// directory, then a watch from the revision after it; after a compaction
// or a watch error it reads again. A view whose key is deleted (its lease
// expired or was revoked) is dropped: that node holds nothing (I5).
func (s *Supervisor) watchViews(ctx context.Context, c *cluster, cli lease.Client, node string) {
	prefix := viewsPrefix(c)
	retry := min(max(c.cfg.RenewEvery/4, 100*time.Millisecond), 500*time.Millisecond)
	for {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		resp, err := cli.Get(rctx, prefix, clientv3.WithPrefix())
		cancel()
		if err == nil {
			c.fleet.mu.Lock()
			old := c.fleet.revs
			c.fleet.revs = map[string]int64{}
			peers := map[string]fencedstate.Seen{}
			for _, kv := range resp.Kvs {
				n := strings.TrimPrefix(string(kv.Key), prefix)
				if n == node {
					continue
				}
				if p, ok := c.fleet.peers[n]; ok && old[n] == kv.ModRevision {
					// Unchanged since last seen: it keeps the time it was
					// received, or a silent publisher would look fresh.
					peers[n], c.fleet.revs[n] = p, kv.ModRevision
					continue
				}
				if sn, ok := s.decodeView(c, kv.Value); ok {
					peers[n], c.fleet.revs[n] = sn, kv.ModRevision
				}
			}
			c.fleet.peers = peers
			c.fleet.mu.Unlock()
			s.changed()
			wctx, stopWatch := context.WithCancel(ctx)
			wch := cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				if wr.CompactRevision != 0 || wr.Err() != nil {
					break
				}
				c.fleet.mu.Lock()
				for _, ev := range wr.Events {
					n := strings.TrimPrefix(string(ev.Kv.Key), prefix)
					if n == node {
						continue
					}
					if ev.Type == clientv3.EventTypeDelete {
						delete(c.fleet.peers, n)
						delete(c.fleet.revs, n)
					} else if sn, ok := s.decodeView(c, ev.Kv.Value); ok {
						c.fleet.peers[n], c.fleet.revs[n] = sn, ev.Kv.ModRevision
					}
				}
				c.fleet.mu.Unlock()
				s.changed()
			}
			stopWatch()
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

func (s *Supervisor) decodeView(c *cluster, b []byte) (fencedstate.Seen, bool) {
	var nv fencedstate.NodeView
	if err := json.Unmarshal(b, &nv); err != nil {
		c.log.Warn("ignoring a fleet view that does not decode: "+err.Error(), "error", err)
		return fencedstate.Seen{}, false
	}
	return fencedstate.Seen{NodeView: nv, Via: c.cfg.Name, Received: time.Now().UTC(), ReceivedBoot: s.now()}, true
}

// fleet lists every cluster's views for the state file.
func (s *Supervisor) fleet(cs []*cluster) []fencedstate.Seen {
	var out []fencedstate.Seen
	for _, c := range cs {
		out = append(out, c.fleet.list()...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Via < out[j].Via
	})
	return out
}
