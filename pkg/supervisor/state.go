package supervisor

import (
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"slices"
	"sort"
	"time"

	"github.com/vipkit/vipkit/pkg/lease"
)

// StateFile is fenced's state file in the state directory.
const StateFile = fencedstate.File

// leaseOf is a holder's status in the state file's plain types.
func leaseOf(st lease.Status) fencedstate.Lease {
	l := fencedstate.Lease{
		State: st.State.String(), Since: st.Since, LeaseID: int64(st.LeaseID), TTL: st.TTL, ValidFor: st.ValidFor,
		LastRenewLatency: st.LastRenewLatency, RenewalsOK: st.RenewalsOK, RenewalsFailed: st.RenewalsFailed,
		LastFenceReason: string(st.LastFenceReason), LastFenceAt: st.LastFenceAt, LastFenceLead: st.LastFenceLead,
	}
	if st.Fences != nil {
		l.Fences = map[string]uint64{}
		for r, n := range st.Fences {
			l.Fences[string(r)] = n
		}
	}
	return l
}

// Snapshot describes the running state.
func (s *Supervisor) Snapshot() fencedstate.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := fencedstate.Snapshot{Node: s.Node, Version: s.Version, State: "healthy", Clusters: []fencedstate.Cluster{}, Instances: []fencedstate.Instance{}}
	rank := map[string]int{"healthy": 0, "starting": 1, "fenced": 2}
	cs := make([]*cluster, 0, len(s.clusters))
	for name, c := range s.clusters {
		cs = append(cs, c)
		st := lease.Status{State: lease.Starting}
		if h := c.holder.Load(); h != nil {
			// Current: renewals, latency and validity change without a
			// state change (OnChange reports only those).
			st = h.Status()
		} else if p := c.status.Load(); p != nil {
			st = *p
		}
		l := leaseOf(st)
		if h := c.holder.Load(); h != nil {
			// The current validity, not the one of the last state change.
			if cur := h.Status(); cur.State == lease.Healthy && cur.ValidUntil > 0 {
				l.ValidFor, l.ValidUntil = cur.ValidFor, cur.ValidUntil
			}
		}
		cs := fencedstate.Cluster{Name: name, Endpoints: slices.Clone(c.cfg.Endpoints), Lease: l,
			Margin: c.cfg.Margin, FenceDuration: time.Duration(c.fenceTook.Load())}
		if p := c.servers.Load(); p != nil {
			cs.Servers = slices.Clone(*p)
		}
		snap.Clusters = append(snap.Clusters, cs)
		if rank[st.State.String()] > rank[snap.State] {
			snap.State = st.State.String()
		}
		fenced := c.isFenced()
		for _, in := range c.memberList() {
			is := fencedstate.Instance{Name: in.Instance, Cluster: name, TrackFile: in.TrackFile, Fenced: fenced}
			for _, v := range in.VIPs {
				is.VIPs = append(is.VIPs, v.String())
			}
			snap.Instances = append(snap.Instances, is)
		}
	}
	if len(s.clusters) == 0 {
		snap.State = "starting"
	}
	snap.Fleet = s.fleet(cs)
	for _, h := range s.handovers {
		snap.Handovers = append(snap.Handovers, h)
	}
	sort.Slice(snap.Handovers, func(i, j int) bool { return snap.Handovers[i].Instance < snap.Handovers[j].Instance })
	sort.Slice(snap.Clusters, func(i, j int) bool { return snap.Clusters[i].Name < snap.Clusters[j].Name })
	sort.Slice(snap.Instances, func(i, j int) bool { return snap.Instances[i].Name < snap.Instances[j].Name })
	return snap
}
