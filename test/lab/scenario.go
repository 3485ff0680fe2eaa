package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// Result is what a scenario measured.
type Result struct {
	Name     string
	From, To string        // owner before the fault and after
	Fault    time.Duration // lab time of the fault
	Heal     time.Duration // lab time the fault was undone (0 if never)
	Start    time.Duration // beginning of the interesting window
	End      time.Duration // end of the window (metrics stop here)
	// V4 and V6 measure the move from From to To after the fault (for a
	// split brain: until the heal); V6 is zero when the configs have no
	// IPv6 VIP.
	V4, V6 observe.Failover
	// HealV4 and HealV6 measure the move back after a split brain heals.
	HealV4, HealV6 observe.Failover
	// DualMaster is how long two nodes were MASTER at the same time
	// within the window (from their state reports).
	DualMaster time.Duration
	// HealLabel names the second phase in the summary ("heal" when
	// empty), e.g. "back" for a handover undone.
	HealLabel string
	// Extra are more summary rows (name, value), e.g. a fence's lead time.
	Extra [][2]string
}

// Steady waits until the client's probes on both families, sent at or
// after since, have been answered by m 20 times in a row and the router's
// neighbour entry for the IPv4 VIP points at m: the state every scenario
// starts from. Without probes (Options.NoProbes) only the VIP and the
// router are waited for.
func (l *Lab) Steady(ctx context.Context, m *Node, since, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, vip := range l.probedVIPs() {
		if _, err := l.AnsweredBy(ctx, vip, m, since, 20, time.Until(deadline)); err != nil {
			return err
		}
	}
	mac := m.MAC()
	if l.TL.NeighAt("router", VIP4, l.TL.Now()) == mac {
		return nil
	}
	if _, err := l.TL.WaitFor(ctx, func(e observe.Event) bool {
		return e.Kind == observe.KindNeigh && e.Host == "router" && e.IP == VIP4 && e.MAC == mac
	}, time.Until(deadline)); err != nil {
		return fmt.Errorf("wait for router entry %s -> %s: %w", VIP4, mac, err)
	}
	return nil
}

// AnsweredBy waits until n probes in a row to vip, sent at or after since,
// were answered by node want: the client has settled on it.
func (l *Lab) AnsweredBy(ctx context.Context, vip netip.Addr, want *Node, since time.Duration, n int, within time.Duration) (observe.Event, error) {
	run := map[int]bool{}
	streak := 0
	e, err := l.TL.WaitFor(ctx, func(e observe.Event) bool {
		if e.Kind != observe.KindProbe || e.IP != vip || e.At < since || run[e.Seqno] {
			return false
		}
		run[e.Seqno] = true
		if e.OK && e.Owner == want.Name {
			streak++
		} else {
			streak = 0
		}
		return streak >= n
	}, within)
	if err != nil {
		return e, fmt.Errorf("wait for %d probes to %s answered by %s: %w", n, vip, want.Name, err)
	}
	return e, nil
}

// StartElected starts keepalived with conf on every node and waits for
// the steady state: the highest-priority node (node-a) elected, probes
// answered by it, the router pointing at it.
func (l *Lab) StartElected(ctx context.Context, conf string) (*Node, error) {
	if err := l.StartKeepalivedAll(conf); err != nil {
		return nil, err
	}
	m := l.Nodes[0]
	elected, err := l.WaitElected(ctx, m, 0, 15*time.Second)
	if err != nil {
		return nil, err
	}
	if err := l.Steady(ctx, m, elected, 10*time.Second); err != nil {
		return nil, err
	}
	return m, nil
}

// MasterFault is a fault injected into the elected master.
type MasterFault string

const (
	FaultKill     MasterFault = "kill"      // SIGKILL keepalived: no resignation, the VIP stays
	FaultTerm     MasterFault = "term"      // SIGTERM keepalived: clean resignation (priority 0, VIP removed)
	FaultPause    MasterFault = "pause"     // SIGSTOP keepalived: a hung daemon, the VIP stays
	FaultPortDown MasterFault = "port-down" // the master's switch port goes down (cable pulled)
)

// MasterFaults lists the faults RunMasterFault knows.
var MasterFaults = []MasterFault{FaultKill, FaultTerm, FaultPause, FaultPortDown}

// RunMasterFault starts keepalived with conf (proc.ControlConfig for the
// control runs without vipkit) on every node, waits for the steady state,
// injects fault into the master and waits until the client has settled on
// the new master on both families. The result measures the move.
func (l *Lab) RunMasterFault(ctx context.Context, conf string, fault MasterFault) (Result, error) {
	r := Result{Name: fmt.Sprintf("%s on the master", fault)}
	m, err := l.StartElected(ctx, conf)
	if err != nil {
		return r, err
	}
	peer := l.Peer(m)
	r.Start = l.TL.Now()
	switch fault {
	case FaultKill:
		r.Fault, err = l.KillKeepalived(m)
	case FaultTerm:
		r.Fault, err = l.StopKeepalived(m)
	case FaultPause:
		r.Fault, err = l.PauseKeepalived(m)
	case FaultPortDown:
		r.Fault, err = l.SetPort(m, false)
	default:
		return r, fmt.Errorf("run master fault: unknown fault %q", fault)
	}
	if err != nil {
		return r, err
	}
	if _, err := l.TL.WaitState(ctx, peer.Name, Instance, "MASTER", r.Fault, 10*time.Second); err != nil {
		return r, err
	}
	if err := l.Settle(ctx, &r, peer, r.Fault); err != nil {
		return r, err
	}
	r.From, r.To = m.Name, peer.Name
	r.V4 = l.Failover(VIP4, r.Fault, r.End, m, peer)
	if l.Uses(VIP6) {
		r.V6 = l.Failover(VIP6, r.Fault, r.End, m, peer)
	}
	return r, nil
}

// RunSplitBrain isolates the nodes from each other (both still reach the
// router): the backup stops hearing adverts and becomes MASTER too. After
// hold it lifts the isolation and waits for the lower-priority node to
// step back. DualMaster and the V4 dual-owner time measure the split.
func (l *Lab) RunSplitBrain(ctx context.Context, conf string, hold time.Duration) (Result, error) {
	r := Result{Name: "split brain by bridge port isolation"}
	m, err := l.StartElected(ctx, conf)
	if err != nil {
		return r, err
	}
	peer := l.Peer(m)
	r.Start = l.TL.Now()
	if r.Fault, err = l.IsolatePeers(true); err != nil {
		return r, err
	}
	second, err := l.TL.WaitState(ctx, peer.Name, Instance, "MASTER", r.Fault, 10*time.Second)
	if err != nil {
		return r, err
	}
	// Hold the split for a while, measured on the event stream: until the
	// second master's VIP has been claimed for hold.
	if _, err := l.TL.WaitFor(ctx, func(e observe.Event) bool { return e.At >= second.At+hold }, hold+5*time.Second); err != nil {
		return r, err
	}
	if r.Heal, err = l.IsolatePeers(false); err != nil {
		return r, err
	}
	if _, err := l.TL.WaitState(ctx, peer.Name, Instance, "BACKUP", r.Heal, 10*time.Second); err != nil {
		return r, err
	}
	if err := l.Settle(ctx, &r, m, r.Heal); err != nil {
		return r, err
	}
	r.From, r.To = m.Name, peer.Name
	r.V4 = l.Failover(VIP4, r.Fault, r.Heal, m, peer)
	r.HealV4 = l.Failover(VIP4, r.Heal, r.End, peer, m)
	if l.Uses(VIP6) {
		r.V6 = l.Failover(VIP6, r.Fault, r.Heal, m, peer)
		r.HealV6 = l.Failover(VIP6, r.Heal, r.End, peer, m)
	}
	return r, nil
}

// Settle waits until the client's probes on both families are answered by
// to (20 in a row, 200 ms at the default interval) since origin and the
// router points at it, then closes the window (r.End) and measures
// DualMaster over [r.Fault, r.End].
func (l *Lab) Settle(ctx context.Context, r *Result, to *Node, origin time.Duration) error {
	return l.SettleWithin(ctx, r, to, origin, 15*time.Second)
}

// SettleWithin is Settle waiting up to within for the client (the router
// then gets 10 s more), for moves that can take long: a router that keeps
// a stale entry re-resolves it only after its reachable time (~30 s).
func (l *Lab) SettleWithin(ctx context.Context, r *Result, to *Node, origin, within time.Duration) error {
	for _, vip := range l.probedVIPs() {
		if _, err := l.AnsweredBy(ctx, vip, to, origin, 20, within); err != nil {
			return err
		}
	}
	mac := to.MAC()
	if l.TL.NeighAt("router", VIP4, l.TL.Now()) != mac {
		if _, err := l.TL.WaitFor(ctx, func(e observe.Event) bool {
			return e.Kind == observe.KindNeigh && e.Host == "router" && e.IP == VIP4 && e.MAC == mac && e.At >= origin
		}, 10*time.Second); err != nil {
			return fmt.Errorf("wait for router entry %s -> %s: %w", VIP4, mac, err)
		}
	}
	r.End = l.TL.Now()
	if err := l.Obs.ProbesResolved(ctx, r.End, 5*time.Second); err != nil {
		return err
	}
	var sets [][]observe.Span
	for _, n := range l.Nodes {
		var masters []observe.Span
		for _, s := range l.TL.StateSpans(n.Name, Instance, r.End) {
			if s.State == "MASTER" {
				masters = append(masters, s.Span)
			}
		}
		sets = append(sets, observe.Clip(masters, r.Fault, r.End))
	}
	r.DualMaster = observe.Total(observe.AtLeast(2, sets...))
	return nil
}

// Uses reports whether the running configs mention vip.
func (l *Lab) Uses(vip netip.Addr) bool {
	for _, v := range l.VIPs() {
		if v == vip {
			return true
		}
	}
	return false
}

// probedVIPs are the VIPs whose probes scenarios wait for: none without
// probes.
func (l *Lab) probedVIPs() []netip.Addr {
	if l.noProbes {
		return nil
	}
	return l.VIPs()
}
