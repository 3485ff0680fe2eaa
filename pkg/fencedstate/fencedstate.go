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
	// Fleet is every node's view of its instances as this fenced last saw
	// it in etcd (its own included, straight from its last sample): what
	// `vipctl fleet` shows. Empty before the first sample.
	Fleet []Seen `json:"fleet,omitempty"`
	// Handovers are fenced's answers to `vipctl handover` requests for
	// witnessed instances (RequestFile), the last one per instance.
	Handovers []Handover `json:"handovers,omitempty"`
}

// Handover is fenced's answer to one `vipctl handover` request: the
// request's ID and what the witness did (pkg/witness Outcome:
// "handed-over", "not-held", "no-successor", "failed").
type Handover struct {
	Instance string `json:"instance"`
	ID       string `json:"id"`
	Outcome  string `json:"outcome"`
	// To is the successor the key went to (or was meant to).
	To string `json:"to,omitempty"`
	// SuccessorHeld: the successor said it held the instance (keepalived
	// BACKUP) before this node resigned, so VRRP's priority-0 advert moves
	// it at once; otherwise this node resigned at the bound.
	SuccessorHeld bool          `json:"successor_held,omitempty"`
	Took          time.Duration `json:"took_ns"`
	Error         string        `json:"error,omitempty"`
}

// A handover's outcomes (pkg/witness Outcome).
const (
	HandedOver  = "handed-over"  // the key moved; this node resigned and withdrew
	NotHeld     = "not-held"     // this node does not hold the instance: nothing changed
	NoSuccessor = "no-successor" // no other node is a candidate: nothing changed
	Failed      = "failed"       // the key did not move; this node resigned and withdrew
)

// HandoverFor is the answer to request id for instance, if fenced gave one.
func (s Snapshot) HandoverFor(instance, id string) (Handover, bool) {
	for _, h := range s.Handovers {
		if h.Instance == instance && h.ID == id {
			return h, true
		}
	}
	return Handover{}, false
}

// RequestFile is where `vipctl handover` asks fenced to hand a witnessed
// instance over (its content: the request's ID), beside the instance's
// maintenance file, which fenced watches already.
func RequestFile(maintenanceFile string) string { return maintenanceFile + ".handover" }

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
	// Servers are the cluster's members as they reported their release when
	// the holder was started (etcd's Status RPC).
	Servers []Server `json:"servers,omitempty"`
}

// Server is one etcd member as fenced saw it.
type Server struct {
	Endpoint string `json:"endpoint"`
	Version  string `json:"version,omitempty"`
	// LeaseBugs names the known bugs of that release that void what an
	// acknowledged renewal proves ("etcd#15247"): see fenced check.
	LeaseBugs []string `json:"lease_bugs,omitempty"`
	// Error says why the member did not report its release.
	Error string `json:"error,omitempty"`
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
	ValidFor time.Duration `json:"valid_for"`
	// ValidUntil is the holder's local deadline L on CLOCK_BOOTTIME while
	// it is healthy (0 otherwise): a fenced that stopped renewing, hung or
	// SIGSTOPped, is judged dead once L passed (Alive), before the server
	// can expire the lease (docs/witness.md).
	ValidUntil       time.Duration `json:"valid_until_boot_ns,omitempty"`
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

// ViewsDir is the key directory, under a cluster's prefix, where every
// node's fenced publishes its NodeView (<prefix>/views/<node>), under the
// same lease as its member key. It is a sibling of the member key, not its
// value: the member key's deletion or rewrite under another lease is what
// fences the holder, so a monitoring write must never touch it.
const ViewsDir = "/views/"

// NodeView is what one node's fenced publishes about the instances of one
// cluster: what the host holds and what keepalived is doing, as vipkit
// knows it without asking keepalived (vipctl's state, the kernel's
// addresses, fenced's own fence).
type NodeView struct {
	Node    string `json:"node"`
	Cluster string `json:"cluster"`
	// Lease is the publisher's lease state ("healthy", "starting",
	// "fenced"); Fenced is true while its instances of the cluster are
	// fenced (track files 1: keepalived is in FAULT).
	Lease  string `json:"lease"`
	Fenced bool   `json:"fenced"`
	// Sampled is when the host was last looked at (publisher's wall
	// clock, display only). Seq counts the writes of this process.
	Sampled time.Time `json:"sampled"`
	Seq     uint64    `json:"seq"`
	// RefreshEvery is the longest the publisher goes without rewriting an
	// unchanged view: a reader that has not seen a write for much longer
	// no longer trusts the view (see fleetview.StaleAfter).
	RefreshEvery time.Duration  `json:"refresh_every"`
	Instances    []InstanceView `json:"instances"`
}

// InstanceView is one keepalived instance on the publishing node.
type InstanceView struct {
	Name string `json:"name"`
	// State is keepalived's state as vipkit knows it: MASTER, BACKUP,
	// FAULT, STOP or DELETED; RELEASED after a per-state down hook
	// (BACKUP, FAULT or STOP); "" when no hook ran yet. StateFrom says
	// where it comes from: "hooks" (the hooks' record of the instance in
	// vipctl's state), "vips" (the last transition of its VIPs), "fence"
	// (fenced holds it fenced: keepalived is in FAULT). See
	// pkg/fleetview.
	State     string `json:"state"`
	StateFrom string `json:"state_from,omitempty"`
	// Since is when State was entered (the hook's or the fence's time).
	Since time.Time `json:"since,omitzero"`
	Dev   string    `json:"dev"`
	MAC   string    `json:"mac,omitempty"`
	// VIPs are the instance's configured VIPs; Held those of them
	// assigned on Dev when the host was sampled.
	VIPs []string `json:"vips"`
	Held []string `json:"held"`
	// HeldSince is when this node was first seen holding one of them
	// (since this fenced started), zero while it holds none.
	HeldSince time.Time `json:"held_since,omitzero"`
}

// Seen is a NodeView as one fenced received it.
type Seen struct {
	NodeView
	// Via is the local cluster through which it was seen; Self marks the
	// recording node's own view.
	Via  string `json:"via"`
	Self bool   `json:"self,omitempty"`
	// Received is when it was last written (a change or a refresh), on
	// the recording node: wall clock for display, CLOCK_BOOTTIME for the
	// staleness check (wall clocks jump and differ between nodes).
	Received     time.Time     `json:"received"`
	ReceivedBoot time.Duration `json:"received_boot_ns"`
}
