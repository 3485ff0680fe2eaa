// Package fencedstate is the schema of fenced.json, fenced's state file in
// the state directory: fenced writes it, `fenced status`, `fenced check` and
// `vipctl status` read it. It imports nothing heavy: vipctl links it, and
// every hook pays for what vipctl links.
package fencedstate

import "time"

// File is the state file's name in the state directory.
const File = "fenced.json"

// Snapshot is the whole file.
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
	State     string     `json:"state"`
	Clusters  []Cluster  `json:"clusters"`
	Instances []Instance `json:"instances"`
}

// Cluster is one etcd cluster's lease holder.
type Cluster struct {
	Name      string   `json:"name"`
	Endpoints []string `json:"endpoints"`
	Lease     Lease    `json:"lease"`
	// Margin is the configured margin; FenceDuration how long the last
	// fence of all the cluster's instances took (0: none yet). The margin
	// must cover the fence with room to spare (fenced check).
	Margin        time.Duration `json:"margin"`
	FenceDuration time.Duration `json:"fence_duration"`
}

// Lease is a lease holder's status (pkg/lease Status, in plain types).
type Lease struct {
	// State is "starting", "healthy" or "fenced".
	State string `json:"state"`
	// Since is when State was entered, on the wall clock (display only).
	Since   time.Time `json:"since"`
	LeaseID int64     `json:"lease_id"`
	// TTL is the TTL the server granted.
	TTL time.Duration `json:"ttl"`
	// ValidFor is the local validity left when the snapshot was taken.
	ValidFor         time.Duration `json:"valid_for"`
	LastRenewLatency time.Duration `json:"last_renew_latency"`
	RenewalsOK       uint64        `json:"renewals_ok"`
	RenewalsFailed   uint64        `json:"renewals_failed"`
	// Fences counts fences by reason.
	Fences          map[string]uint64 `json:"fences"`
	LastFenceReason string            `json:"last_fence_reason,omitempty"`
	// LastFenceAt is the CLOCK_BOOTTIME reading when the fence returned.
	LastFenceAt time.Duration `json:"last_fence_at,omitempty"`
	// LastFenceLead is the earliest possible server expiry (send time of the
	// last acknowledged renewal + TTL) minus LastFenceAt. I4 needs it > 0.
	LastFenceLead time.Duration `json:"last_fence_lead,omitempty"`
}

// Instance is one guarded keepalived instance.
type Instance struct {
	Name      string   `json:"name"`
	Cluster   string   `json:"cluster"`
	TrackFile string   `json:"track_file"`
	Fenced    bool     `json:"fenced"`
	VIPs      []string `json:"vips"`
}
