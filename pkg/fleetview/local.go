// Package fleetview is the fleet view's logic: what one node publishes
// about its instances (Local), and every node's views merged into one
// picture of who holds what, with the instances held by two nodes or by
// none flagged (Build). It has no side effects and imports nothing heavy:
// vipctl links it, and fenced feeds it what it read from the host and from
// etcd.
package fleetview

import (
	"net"
	"slices"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

// Where an instance's state comes from (fencedstate.InstanceView.StateFrom).
const (
	// FromHooks: the hooks' record of the instance in vipctl's state
	// (runstate.Instance): keepalived's own word from notify and the FIFO,
	// MASTER or RELEASED from per-state up and down hooks.
	FromHooks = "hooks"
	// FromVIPs: no hook named the instance (--dev hooks matching no single
	// configured instance); derived from the last transition of its VIPs.
	FromVIPs = "vips"
	// FromFence: fenced holds the instance fenced (track file 1), so
	// keepalived is in FAULT whatever the last hook said.
	FromFence = "fence"
)

// Link is what the host says about one interface.
type Link struct {
	MAC net.HardwareAddr
	// Assigned holds the addresses on the link; nil when the link could
	// not be read (nothing is then reported as held).
	Assigned map[string]bool
}

// Host is one sample of the host: vipctl's state and the links the
// instances are on.
type Host struct {
	State *runstate.State
	Links map[string]Link
	// Fenced is true while fenced holds the instances fenced.
	Fenced bool
	Now    time.Time
}

// Local is this node's view of its instances in one sample. prev is the
// previous sample's view (nil at first): an instance still held keeps the
// time it was first seen held.
func Local(ins []vip.Target, h Host, prev []fencedstate.InstanceView) []fencedstate.InstanceView {
	before := map[string]fencedstate.InstanceView{}
	for _, p := range prev {
		before[p.Name] = p
	}
	out := make([]fencedstate.InstanceView, 0, len(ins))
	for _, t := range ins {
		iv := fencedstate.InstanceView{Name: t.Instance, Dev: t.Dev, VIPs: []string{}, Held: []string{}}
		l, ok := h.Links[t.Dev]
		if ok && len(l.MAC) > 0 {
			iv.MAC = l.MAC.String()
		}
		for _, v := range t.VIPs {
			iv.VIPs = append(iv.VIPs, v.String())
			if ok && l.Assigned[v.Addr().String()] {
				iv.Held = append(iv.Held, v.String())
			}
		}
		iv.State, iv.StateFrom, iv.Since = stateOf(t, h.State)
		if h.Fenced && iv.State != "FAULT" && iv.State != "STOP" && iv.State != "DELETED" {
			// A fence writes 1 to the track file: keepalived is in FAULT
			// (or about to be) whatever the last hook said.
			iv.State, iv.StateFrom = "FAULT", FromFence
			if p, ok := before[t.Instance]; ok && p.StateFrom == FromFence {
				iv.Since = p.Since
			} else {
				iv.Since = h.Now
			}
		}
		if len(iv.Held) > 0 {
			switch p, ok := before[t.Instance]; {
			case ok && len(p.Held) > 0 && !p.HeldSince.IsZero():
				iv.HeldSince = p.HeldSince
			case iv.State == "MASTER" && !iv.Since.IsZero() && !iv.Since.After(h.Now):
				iv.HeldSince = iv.Since
			default:
				iv.HeldSince = h.Now
			}
		}
		out = append(out, iv)
	}
	return out
}

// stateOf is keepalived's state for t as vipctl's state knows it: the
// hooks' record of the instance when there is one and it is not older than
// the last transition of its VIPs, else that transition.
func stateOf(t vip.Target, st *runstate.State) (state, from string, since time.Time) {
	if st == nil {
		return "", "", time.Time{}
	}
	var last *runstate.Entry
	for _, v := range t.VIPs {
		e := st.Entry(v)
		if e == nil || !transition(e.Action) {
			continue
		}
		if last == nil || e.Ticket.After(last.Ticket) {
			last = e
		}
	}
	if rec := st.Instances[t.Instance]; rec != nil && rec.State != "" && (last == nil || !last.Ticket.After(rec.Ticket)) {
		return rec.State, FromHooks, rec.Since
	}
	if last == nil {
		return "", "", time.Time{}
	}
	if last.Action == runstate.ActionUp {
		return "MASTER", FromVIPs, last.At
	}
	return runstate.StateReleased, FromVIPs, last.At
}

// transition reports the actions that follow keepalived's transitions
// (an announcement or the hint alone do not).
func transition(action string) bool {
	return slices.Contains([]string{runstate.ActionUp, runstate.ActionDown, runstate.ActionHandover, runstate.ActionFence}, action)
}
