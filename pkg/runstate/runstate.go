// Package runstate is vipctl's memory between processes: one host-wide lock
// and, per VIP, the last action applied, by which process, and which
// refresher is announcing it.
//
// keepalived forks hooks without waiting (DESIGN §2): a hook forked earlier
// can run later. Every state-changing vipctl process carries a Ticket, the
// moment it was forked; under the lock it applies its change to a VIP only
// if no later-forked process already did (I6). Concurrent flaps therefore
// converge to the action of the last process started.
package runstate

import (
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/vipkit/vipkit/pkg/vip"
)

// File names inside the state directory.
const (
	LockFile  = "vipctl.lock"
	StateFile = "vipctl.state"
)

// Actions recorded per VIP.
const (
	ActionUp          = "up"
	ActionDown        = "down"
	ActionRouteSrcAdd = "route-src-add"
	ActionRouteSrcDel = "route-src-del"
	ActionHandover    = "handover"
	ActionFence       = "fence"
	ActionAnnounce    = "announce"
)

// Ticket orders vipctl processes by fork time: clock ticks since boot (the
// kernel's process start time, 10 ms resolution), then PID, which the kernel
// hands out in order, to order processes forked within one tick.
type Ticket struct {
	Ticks int64 `json:"ticks"`
	PID   int   `json:"pid"`
}

// nowPID marks a ticket taken "now" by a long-running process (the FIFO
// reader, fenced) rather than at fork: it orders after every process forked
// in the same tick, so a fence is never undone by a hook forked just before.
const nowPID = math.MaxInt32

// After reports whether t was taken after o.
func (t Ticket) After(o Ticket) bool {
	if t.Ticks != o.Ticks {
		return t.Ticks > o.Ticks
	}
	return t.PID > o.PID
}

// IsZero reports an unset ticket.
func (t Ticket) IsZero() bool { return t == Ticket{} }

// Proc identifies a process across PID reuse: its PID and start time.
type Proc struct {
	PID   int   `json:"pid"`
	Start int64 `json:"start"`
}

// Entry is what vipctl last did with one VIP.
type Entry struct {
	VIP       vip.VIP    `json:"vip"`
	Dev       string     `json:"dev"`
	Own       bool       `json:"own,omitempty"`
	Instance  string     `json:"instance,omitempty"`
	Action    string     `json:"action"`
	Ticket    Ticket     `json:"ticket"`
	Src       netip.Addr `json:"src,omitzero"`
	Refresher *Proc      `json:"refresher,omitempty"`
	// Announced is when vipctl or fenced's defender last sent a burst of
	// announcements for the VIP (a refresher's later rounds are not
	// recorded: they write nothing).
	Announced time.Time `json:"announced,omitzero"`
	At        time.Time `json:"at"`
}

// Holding reports whether the last action left the host holding the VIP.
func (e *Entry) Holding() bool {
	return e.Action == ActionUp || e.Action == ActionRouteSrcAdd || e.Action == ActionAnnounce
}

// State is the whole file.
type State struct {
	Version int               `json:"version"`
	Entries map[string]*Entry `json:"entries"`
	// Horizon is the latest ticket of an entry pruned so far: a process
	// forked before it may be too late for a VIP whose entry is gone, so it
	// is superseded there (see Prune).
	Horizon Ticket `json:"horizon"`
	// Instances and Hooks are what the hooks saw (seen.go).
	Instances map[string]*Instance  `json:"instances,omitempty"`
	Hooks     map[string]*HookStats `json:"hooks,omitempty"`
}

// PruneAfter is how old (in clock ticks) a released entry must be before
// Prune forgets it: six times longer than any vipctl process waits for the
// lock (10 s), so no process that could still act predates a pruned entry
// unless it was stopped for that long, and such a process is refused.
const PruneAfter = 60 * clockTicks

// ActionPruned names the stand-in entry of a VIP forgotten by Prune.
const ActionPruned = "pruned"

// Prune forgets entries that can no longer matter, so that a hook's cost
// depends on the VIPs it names and not on every VIP the host ever touched
// (I10). An entry matters for ordering (I6) only to a process forked before
// it; it matters for announcing only while it names a refresher or holds
// the VIP. So an entry is forgotten when it is released (not holding), names
// no refresher, and its ticket is older than now - PruneAfter. Horizon keeps
// the latest such ticket: a process forked before it is superseded for
// every VIP without an entry. It is refused, as a process that waited too
// long for the lock is, rather than risk re-adding a VIP that a later,
// forgotten transition released.
func (s *State) Prune(now Ticket) int {
	cutoff := now.Ticks - PruneAfter
	n := 0
	for k, e := range s.Entries {
		if e.Holding() || e.Refresher != nil || e.Ticket.Ticks >= cutoff {
			continue
		}
		if e.Ticket.After(s.Horizon) {
			s.Horizon = e.Ticket
		}
		delete(s.Entries, k)
		n++
	}
	return n
}

func newState() *State { return &State{Version: 1, Entries: map[string]*Entry{}} }

// Entry returns the record for v, nil if vipctl never touched it.
func (s *State) Entry(v vip.VIP) *Entry { return s.Entries[v.Addr().String()] }

// Supersedes reports the entry that makes a process with ticket t too late
// to act on v: one written by a process forked after t.
func (s *State) Supersedes(v vip.VIP, t Ticket) (*Entry, bool) {
	e := s.Entry(v)
	if e == nil && s.Horizon.After(t) {
		return &Entry{VIP: v, Action: ActionPruned, Ticket: s.Horizon}, true
	}
	if e == nil || !e.Ticket.After(t) {
		return nil, false
	}
	return e, true
}

// Record stores e, replacing the VIP's previous entry.
func (s *State) Record(e Entry) {
	cp := e
	s.Entries[e.VIP.Addr().String()] = &cp
}

// Sorted lists entries in address order, for stable output.
func (s *State) Sorted() []*Entry {
	out := make([]*Entry, 0, len(s.Entries))
	for _, e := range s.Entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VIP.Addr().Less(out[j].VIP.Addr()) })
	return out
}

// Refreshers lists each distinct refresher process still referenced.
func (s *State) Refreshers() []Proc {
	seen := map[Proc]bool{}
	var out []Proc
	for _, e := range s.Sorted() {
		if e.Refresher != nil && !seen[*e.Refresher] {
			seen[*e.Refresher] = true
			out = append(out, *e.Refresher)
		}
	}
	return out
}

// Wanted lists the VIPs a refresher p may still announce: those whose entry
// holds them and names p.
func (s *State) Wanted(p Proc) []*Entry {
	var out []*Entry
	for _, e := range s.Sorted() {
		if e.Refresher != nil && *e.Refresher == p && e.Holding() {
			out = append(out, e)
		}
	}
	return out
}
