package lease

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/config"
)

// A planned restart (systemctl restart fenced, a package upgrade) hands the
// leases over instead of fencing: etcd leases are not tied to a connection,
// so the next fenced process can renew the same lease. What it must also
// take over is the deadline (I4): the earliest possible server expiry of
// each lease, on CLOCK_BOOTTIME, which is system-wide and keeps counting
// across the restart. docs/fencing.md has the safety argument.

// HandoffVersion is the schema version of Handoff.
const HandoffVersion = 1

// Handoff is the record a stopping fenced writes for its successor.
type Handoff struct {
	Version int `json:"version"`
	// BootID (/proc/sys/kernel/random/boot_id): CLOCK_BOOTTIME readings
	// mean nothing in another boot.
	BootID string `json:"boot_id"`
	Node   string `json:"node"`
	PID    int    `json:"pid"` // the process that handed over
	// WrittenAt is CLOCK_BOOTTIME when the record was written.
	WrittenAt time.Duration `json:"written_at"`
	Leases    []HandedLease `json:"leases"`
}

// HandedLease is one lease a holder stopped renewing without fencing.
type HandedLease struct {
	Cluster   string           `json:"cluster"`
	Prefix    string           `json:"prefix"`
	Endpoints []string         `json:"endpoints"`
	LeaseID   clientv3.LeaseID `json:"lease_id"`
	TTL       time.Duration    `json:"ttl"`
	// Expiry is the earliest possible server expiry: send time of the last
	// acknowledged renewal + TTL, on CLOCK_BOOTTIME.
	Expiry time.Duration `json:"expiry"`
	// Deadline is Expiry - margin: where the local validity ends and the
	// host must be fenced.
	Deadline time.Duration `json:"deadline"`
}

// ErrHandoff marks a handoff record that must not be used.
var ErrHandoff = errors.New("handoff record not usable")

// MarshalHandoff encodes a record.
func MarshalHandoff(h Handoff) ([]byte, error) {
	h.Version = HandoffVersion
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode handoff record: %w", err)
	}
	return b, nil
}

// ParseHandoff decodes a record and checks it belongs to this boot and
// still has time left at now (CLOCK_BOOTTIME): every lease's deadline must
// be at least minLeft away. Leases whose deadline is nearer are dropped
// (their instances must be fenced); a record with none left is an error.
func ParseHandoff(b []byte, bootID string, now, minLeft time.Duration) (Handoff, error) {
	var h Handoff
	if err := json.Unmarshal(b, &h); err != nil {
		return Handoff{}, fmt.Errorf("parse handoff record: %w: %w", ErrHandoff, err)
	}
	switch {
	case h.Version != HandoffVersion:
		return Handoff{}, fmt.Errorf("handoff record version %d, want %d: %w", h.Version, HandoffVersion, ErrHandoff)
	case h.BootID == "" || h.BootID != bootID:
		return Handoff{}, fmt.Errorf("handoff record from boot %q, this is boot %q: %w", h.BootID, bootID, ErrHandoff)
	case h.WrittenAt > now:
		return Handoff{}, fmt.Errorf("handoff record written at %s, after now (%s): %w", h.WrittenAt, now, ErrHandoff)
	}
	h.Leases = slices.DeleteFunc(h.Leases, func(l HandedLease) bool {
		return l.LeaseID == 0 || l.Deadline > l.Expiry || l.Deadline-now < minLeft
	})
	if len(h.Leases) == 0 {
		return Handoff{}, fmt.Errorf("handoff record has no lease with %s of validity left: %w", minLeft, ErrHandoff)
	}
	return h, nil
}

// For returns the handed lease of cluster cl: same name, prefix and
// endpoints (a lease of another cluster must never be renewed here).
func (h Handoff) For(cl config.Cluster) (HandedLease, bool) {
	for _, l := range h.Leases {
		if l.Cluster == cl.Name && l.Prefix == cl.Prefix && sameSet(l.Endpoints, cl.Endpoints) {
			return l, true
		}
	}
	return HandedLease{}, false
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
