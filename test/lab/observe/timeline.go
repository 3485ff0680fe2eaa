// Package observe is the lab's timeline: typed events on one clock, the
// queries over them (who held the VIP when, which state, which MAC) and
// the failover metrics derived from them. It has no side effects; package
// watch feeds it from the running lab.
//
// Every event is stamped with Go's monotonic clock (CLOCK_MONOTONIC)
// relative to the timeline's start, so keepalived FIFO lines, netlink
// notifications from every namespace, frames captured on the switch and
// client probes are comparable without wall-clock or cross-process skew.
// Stamping at receipt adds each source's delivery latency (microseconds
// on an idle machine); see docs/lab.md.
package observe

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind says what an event is about; each kind uses a subset of Event's
// fields.
type Kind uint8

const (
	KindState   Kind = iota + 1 // keepalived instance state: Instance, State, Priority
	KindAddr                    // address added/removed on a host: IP, Prefix, Dev, Present
	KindRoute                   // local-table route for a VIP: IP, Src, Proto, Dev, Present
	KindNeigh                   // router neighbour entry for a VIP: IP, MAC, Owner, NeighState, Present
	KindFrame                   // ARP/NDP/VRRP frame on the switch: Op, IP, MAC, Owner, ...
	KindProbe                   // one client probe: IP, Seqno, OK, Owner (who answered), RTT
	KindFault                   // a fault the lab injected or undid: Text
	KindProcess                 // a lab process started, signalled or exited: Text
	KindLease                   // an etcd key/lease event: Text, Key, Lease
	KindNote                    // anything else worth a line: Text
	KindTrack                   // a keepalived track file written on a host: Key (file name), Text (content)
	KindConn                    // a TCP client's connection changed: IP (dst), Src (local), Owner, OK, Text
)

var kindNames = map[Kind]string{
	KindState: "state", KindAddr: "addr", KindRoute: "route", KindNeigh: "neigh",
	KindFrame: "frame", KindProbe: "probe", KindFault: "fault", KindProcess: "process",
	KindLease: "lease", KindNote: "note", KindTrack: "track", KindConn: "conn",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Frame operations recorded by the switch capture.
const (
	OpARPRequest = "arp-request"
	OpARPReply   = "arp-reply"
	OpNS         = "ndp-ns"
	OpNA         = "ndp-na"
	OpVRRP       = "vrrp"
)

// Event is one observation. At is the time since the timeline started.
type Event struct {
	Seq    int           // insertion order, from 1
	At     time.Duration // when it happened (probes: when sent)
	Kind   Kind
	Host   string // where: node-a, router, client, switch, etcd
	Source string // fifo, log, netlink, poll, capture, probe, lab, etcd

	Instance string // KindState
	State    string // KindState: MASTER, BACKUP, FAULT, STOP, ...
	Priority int    // KindState, KindFrame (VRRP advert priority)

	IP      netip.Addr   // the address concerned
	Prefix  netip.Prefix // KindAddr: the address with its length
	Src     netip.Addr   // KindRoute: preferred source
	Proto   int          // KindRoute: routing protocol (2 kernel, 18 keepalived, 86 vipkit)
	Dev     string       // interface, when known
	Present bool         // KindAddr/KindRoute/KindNeigh: added/exists (true) or removed

	MAC        string // KindNeigh, KindFrame: link-layer address (sender for frames)
	Owner      string // host owning MAC; KindProbe: host that answered
	NeighState string // KindNeigh: REACHABLE, STALE, ...

	Op         string // KindFrame: OpARPRequest, ...
	Target     netip.Addr
	Gratuitous bool // KindFrame: ARP with sender IP = target IP
	Override   bool // KindFrame: NA override flag
	Solicited  bool // KindFrame: NA solicited flag

	Seqno int           // KindProbe
	OK    bool          // KindProbe: answered in time
	RTT   time.Duration // KindProbe

	Key   string // KindLease: the etcd key; KindTrack: the file name
	Lease int64  // KindLease

	Text string
}

// Answered is when a probe's answer arrived.
func (e Event) Answered() time.Duration { return e.At + e.RTT }

// String is a one-line rendering for logs and failure messages.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-7s %-6s", FormatAt(e.At), e.Host, e.Kind)
	switch e.Kind {
	case KindState:
		fmt.Fprintf(&b, " %s %s prio %d (%s)", e.Instance, e.State, e.Priority, e.Source)
	case KindAddr:
		fmt.Fprintf(&b, " %s %s dev %s", plusMinus(e.Present), e.Prefix, e.Dev)
	case KindRoute:
		fmt.Fprintf(&b, " %s local %s", plusMinus(e.Present), e.IP)
		if e.Src.IsValid() {
			fmt.Fprintf(&b, " src %s", e.Src)
		}
		fmt.Fprintf(&b, " proto %d", e.Proto)
	case KindNeigh:
		fmt.Fprintf(&b, " %s %s lladdr %s (%s) %s", plusMinus(e.Present), e.IP, e.MAC, e.Owner, e.NeighState)
	case KindFrame:
		fmt.Fprintf(&b, " %s from %s (%s)", e.Op, e.MAC, e.Owner)
		if e.Op == OpVRRP {
			fmt.Fprintf(&b, " prio %d", e.Priority)
		} else {
			fmt.Fprintf(&b, " %s -> %s", e.IP, e.Target)
		}
		if e.Gratuitous {
			b.WriteString(" gratuitous")
		}
		if e.Override {
			b.WriteString(" override")
		}
	case KindProbe:
		if e.OK {
			fmt.Fprintf(&b, " %s #%d answered by %s in %s", e.IP, e.Seqno, e.Owner, e.RTT.Round(time.Microsecond))
		} else {
			fmt.Fprintf(&b, " %s #%d lost", e.IP, e.Seqno)
		}
	case KindLease:
		fmt.Fprintf(&b, " %s key %s lease %x", e.Text, e.Key, e.Lease)
	case KindTrack:
		fmt.Fprintf(&b, " %s = %q", e.Key, e.Text)
	case KindConn:
		fmt.Fprintf(&b, " %s -> %s %s", e.Src, e.IP, e.Text)
		if e.Owner != "" {
			fmt.Fprintf(&b, " (served by %s)", e.Owner)
		}
	default:
		b.WriteString(" " + e.Text)
	}
	return b.String()
}

func plusMinus(present bool) string {
	if present {
		return "+"
	}
	return "-"
}

// FormatAt renders a lab time as seconds with microseconds.
func FormatAt(d time.Duration) string { return fmt.Sprintf("%+11.6fs", d.Seconds()) }

// Timeline is the ordered, queryable record of a lab run. It is safe for
// concurrent use.
type Timeline struct {
	epoch time.Time

	mu      sync.Mutex
	events  []Event // insertion order
	changed chan struct{}
	macs    map[string]string // MAC → host
}

// NewTimeline starts a timeline; its clock reads zero now.
func NewTimeline() *Timeline {
	return &Timeline{epoch: time.Now(), changed: make(chan struct{}), macs: map[string]string{}}
}

// Now is the current lab time.
func (t *Timeline) Now() time.Duration { return time.Since(t.epoch) }

// FromWall converts a CLOCK_REALTIME stamp (a kernel packet timestamp) to
// lab time, through the current offset between the wall clock and the
// monotonic clock (both read at once), so a packet is placed where the
// kernel received it even if this process read it late.
func (t *Timeline) FromWall(ts time.Time) time.Duration {
	now := time.Now()
	return now.Sub(t.epoch) - now.Round(0).Sub(ts)
}

// Epoch is the wall-clock time at which the lab clock read zero, to
// correlate with logs that carry wall-clock stamps.
func (t *Timeline) Epoch() time.Time { return t.epoch }

// SetMAC names the host a MAC belongs to, so frames and neighbour entries
// say which host they point at.
func (t *Timeline) SetMAC(mac, host string) {
	t.mu.Lock()
	t.macs[strings.ToLower(mac)] = host
	t.mu.Unlock()
}

// HostOf returns the host owning mac, or "" when unknown.
func (t *Timeline) HostOf(mac string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.macs[strings.ToLower(mac)]
}

// MACOf returns a host's MAC, or "" when unknown.
func (t *Timeline) MACOf(host string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for m, h := range t.macs {
		if h == host {
			return m
		}
	}
	return ""
}

// Add records an event; a zero At means now. It returns the event as
// stored (with Seq, At and Owner filled in).
func (t *Timeline) Add(e Event) Event {
	if e.At == 0 {
		e.At = t.Now()
	}
	t.mu.Lock()
	if e.Owner == "" && e.MAC != "" {
		e.Owner = t.macs[strings.ToLower(e.MAC)]
	}
	e.Seq = len(t.events) + 1
	t.events = append(t.events, e)
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	return e
}

// Mark records a lab action (fault, process) now and returns its time.
func (t *Timeline) Mark(kind Kind, host, text string) time.Duration {
	return t.Add(Event{Kind: kind, Host: host, Source: "lab", Text: text}).At
}

// Events returns the events matching filter (all when nil), ordered by At
// and, for equal times, by insertion.
func (t *Timeline) Events(filter func(Event) bool) []Event {
	t.mu.Lock()
	out := make([]Event, 0, len(t.events))
	for _, e := range t.events {
		if filter == nil || filter(e) {
			out = append(out, e)
		}
	}
	t.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Len is the number of events recorded.
func (t *Timeline) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.events)
}

// WaitFor returns the first event (in recording order) for which pred
// holds, looking at what is already recorded and then at new events as
// they arrive, for at most within. It never sleeps in place of an event:
// it wakes on each new event.
func (t *Timeline) WaitFor(ctx context.Context, pred func(Event) bool, within time.Duration) (Event, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	next := 0
	for {
		t.mu.Lock()
		pending := t.events[next:]
		changed := t.changed
		next = len(t.events)
		t.mu.Unlock()
		for _, e := range pending {
			if pred(e) {
				return e, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("wait for event: %w after %s (%d events seen)", ctx.Err(), within, next)
		}
	}
}

// WaitState waits for host to report instance entering state at or after
// the lab time since.
func (t *Timeline) WaitState(ctx context.Context, host, instance, state string, since, within time.Duration) (Event, error) {
	e, err := t.WaitFor(ctx, func(e Event) bool {
		return e.Kind == KindState && e.Host == host && e.Instance == instance && e.State == state && e.At >= since
	}, within)
	if err != nil {
		return e, fmt.Errorf("wait for %s %s to enter %s: %w", host, instance, state, err)
	}
	return e, nil
}
