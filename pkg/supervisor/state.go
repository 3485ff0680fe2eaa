package supervisor

import (
	"slices"
	"sort"
	"time"

	"github.com/vipkit/vipkit/pkg/lease"
)

// StateFile is fenced's state file in the state directory; vipctl status
// and fenced status read it.
const StateFile = "fenced.json"

// Snapshot is fenced's state as written to the state file.
type Snapshot struct {
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Node    string    `json:"node"`
	Started time.Time `json:"started"`
	// Heartbeat is when the runtime last saw every holder make progress;
	// HeartbeatBoot is the same instant on CLOCK_BOOTTIME, which is what
	// liveness checks compare (wall clocks jump).
	Heartbeat     time.Time     `json:"heartbeat"`
	HeartbeatBoot time.Duration `json:"heartbeat_boot_ns"`
	// State is the worst state of any cluster: "fenced", "starting",
	// "healthy", or "stopped" after a clean stop.
	State     string             `json:"state"`
	Clusters  []ClusterSnapshot  `json:"clusters"`
	Instances []InstanceSnapshot `json:"instances"`
}

// ClusterSnapshot is one cluster's holder.
type ClusterSnapshot struct {
	Name      string       `json:"name"`
	Endpoints []string     `json:"endpoints"`
	Lease     lease.Status `json:"lease"`
	// Margin is the configured margin; FenceDuration how long the last
	// fence of all the cluster's instances took (0: none yet). The margin
	// must cover the fence with room to spare (fenced check).
	Margin        time.Duration `json:"margin"`
	FenceDuration time.Duration `json:"fence_duration"`
}

// InstanceSnapshot is one guarded instance.
type InstanceSnapshot struct {
	Name      string   `json:"name"`
	Cluster   string   `json:"cluster"`
	TrackFile string   `json:"track_file"`
	Fenced    bool     `json:"fenced"`
	VIPs      []string `json:"vips"`
}

// Snapshot describes the running state.
func (s *Supervisor) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Node: s.Node, Version: s.Version, State: "healthy", Clusters: []ClusterSnapshot{}, Instances: []InstanceSnapshot{}}
	rank := map[string]int{"healthy": 0, "starting": 1, "fenced": 2}
	for name, c := range s.clusters {
		st := lease.Status{State: lease.Starting}
		if p := c.status.Load(); p != nil {
			st = *p
		}
		snap.Clusters = append(snap.Clusters, ClusterSnapshot{Name: name, Endpoints: slices.Clone(c.cfg.Endpoints), Lease: st,
			Margin: c.cfg.Margin, FenceDuration: time.Duration(c.fenceTook.Load())})
		if rank[st.State.String()] > rank[snap.State] {
			snap.State = st.State.String()
		}
		fenced := c.isFenced()
		for _, in := range c.memberList() {
			is := InstanceSnapshot{Name: in.Instance, Cluster: name, TrackFile: in.TrackFile, Fenced: fenced}
			for _, v := range in.VIPs {
				is.VIPs = append(is.VIPs, v.String())
			}
			snap.Instances = append(snap.Instances, is)
		}
	}
	if len(s.clusters) == 0 {
		snap.State = "starting"
	}
	sort.Slice(snap.Clusters, func(i, j int) bool { return snap.Clusters[i].Name < snap.Clusters[j].Name })
	sort.Slice(snap.Instances, func(i, j int) bool { return snap.Instances[i].Name < snap.Instances[j].Name })
	return snap
}
