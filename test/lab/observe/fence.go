package observe

import (
	"net/netip"
	"time"
)

// TrackWrites returns the writes of host's track file name (a base name
// such as VI_1.fence) recorded in [from, to].
func (t *Timeline) TrackWrites(host, name string, from, to time.Duration) []Event {
	return t.Events(func(e Event) bool {
		return e.Kind == KindTrack && e.Host == host && e.Key == name && e.At >= from && e.At <= to
	})
}

// TrackAt is the content of host's track file name at lab time at, ""
// before its first recorded write.
func (t *Timeline) TrackAt(host, name string, at time.Duration) string {
	v := ""
	for _, e := range t.Events(func(e Event) bool { return e.Kind == KindTrack && e.Host == host && e.Key == name }) {
		if e.At > at {
			break
		}
		v = e.Text
	}
	return v
}

// FenceSpec says which fence to measure: Host lost its lease at or after
// Since (e.g. the moment it was cut from etcd).
type FenceSpec struct {
	Host     string
	Instance string       // keepalived instance, VI_1 when empty
	VIPs     []netip.Addr // the addresses the fence must remove
	Track    string       // the fence track file's base name, e.g. VI_1.fence
	Key      string       // the host's member key, e.g. /vipkit/members/node-a
	Since    time.Duration
	End      time.Duration // now when zero
}

// Fence is a fence as seen from outside the fenced node. Times are lab
// times, None when the event was not seen.
type Fence struct {
	FenceSpec
	// Released is when the last of the VIPs stopped being claimed by Host
	// (address and local route both gone); Since if none was claimed.
	Released time.Duration
	// Tracked is when the track file first said 1 after Since.
	Tracked time.Duration
	// Fenced is when both held: max(Released, Tracked).
	Fenced time.Duration
	// Fault is when keepalived first reported FAULT after Since.
	Fault time.Duration
	// Expired is when a watcher on the etcd server saw the member key
	// deleted: the server expired (or revoked) the lease.
	Expired time.Duration
	// Lead is Expired − Fenced: how long before the server could grant the
	// VIP's holder role elsewhere the node had already let go (DESIGN I4).
	// None when either end was not seen.
	Lead time.Duration
}

// Fence derives when a node let go of its VIPs and said FAULT, and when
// the etcd server expired its lease.
func (t *Timeline) Fence(spec FenceSpec) Fence {
	if spec.Instance == "" {
		spec.Instance = "VI_1"
	}
	if spec.End == 0 {
		spec.End = t.Now()
	}
	f := Fence{FenceSpec: spec, Released: spec.Since, Tracked: None, Fenced: None, Fault: None, Expired: None, Lead: None}
	for _, ip := range spec.VIPs {
		for _, s := range t.ClaimSpans(spec.Host, ip, spec.End) {
			if s.From <= spec.Since && s.To > spec.Since {
				if s.To >= spec.End {
					f.Released = None // still claimed
				} else if f.Released != None {
					f.Released = max(f.Released, s.To)
				}
			}
		}
		if f.Released == None {
			break
		}
	}
	for _, e := range t.TrackWrites(spec.Host, spec.Track, spec.Since, spec.End) {
		if e.Text == "1" {
			f.Tracked = e.At
			break
		}
	}
	if f.Released != None && f.Tracked != None {
		f.Fenced = max(f.Released, f.Tracked)
	}
	for _, e := range t.Events(func(e Event) bool {
		return e.Kind == KindState && e.Host == spec.Host && e.Instance == spec.Instance && e.State == "FAULT" && e.At >= spec.Since && e.At <= spec.End
	}) {
		f.Fault = e.At
		break
	}
	for _, e := range t.Events(func(e Event) bool {
		return e.Kind == KindLease && e.Key == spec.Key && e.Text == "delete" && e.At >= spec.Since && e.At <= spec.End
	}) {
		f.Expired = e.At
		break
	}
	if f.Fenced != None && f.Expired != None {
		f.Lead = f.Expired - f.Fenced
	}
	return f
}
