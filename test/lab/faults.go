package lab

import (
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/topo"
)

// Every fault is marked on the timeline (KindFault) immediately before it
// is applied; the returned lab time is that mark, the origin of the
// failover metrics.

// Signal sends sig to a lab process's group (SIGSTOP, SIGCONT, SIGKILL,
// SIGTERM) and marks it on the timeline.
func (l *Lab) Signal(host string, p *proc.Proc, sig syscall.Signal) (time.Duration, error) {
	if p == nil {
		return 0, fmt.Errorf("signal %s on %s: process not started", sig, host)
	}
	at := l.TL.Mark(observe.KindFault, host, fmt.Sprintf("%s %s", signalName(sig), p.Name))
	if err := p.Signal(sig); err != nil {
		return at, err
	}
	if sig == syscall.SIGTERM {
		// A paused process must run to act on SIGTERM.
		_ = p.Signal(syscall.SIGCONT)
	}
	return at, nil
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGSTOP:
		return "SIGSTOP"
	case syscall.SIGCONT:
		return "SIGCONT"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// KillKeepalived SIGKILLs node n's keepalived (parent and VRRP child at
// once): no priority-0 advert, and the VIP stays on the node.
func (l *Lab) KillKeepalived(n *Node) (time.Duration, error) {
	return l.Signal(n.Name, n.Keepalived(), syscall.SIGKILL)
}

// StopKeepalived sends SIGTERM: keepalived resigns cleanly (priority-0
// advert, VIP removed).
func (l *Lab) StopKeepalived(n *Node) (time.Duration, error) {
	return l.Signal(n.Name, n.Keepalived(), syscall.SIGTERM)
}

// PauseKeepalived freezes node n's keepalived (SIGSTOP): adverts stop but
// the VIP stays, as with a hung daemon.
func (l *Lab) PauseKeepalived(n *Node) (time.Duration, error) {
	return l.Signal(n.Name, n.Keepalived(), syscall.SIGSTOP)
}

// ResumeKeepalived thaws it (SIGCONT).
func (l *Lab) ResumeKeepalived(n *Node) (time.Duration, error) {
	return l.Signal(n.Name, n.Keepalived(), syscall.SIGCONT)
}

// CutEtcd cuts node n from etcd only (see topo.CutMethod for how each
// method looks to the node).
func (l *Lab) CutEtcd(n *Node, m topo.CutMethod) (time.Duration, error) {
	at := l.TL.Mark(observe.KindFault, n.Name, "cut from etcd ("+m.String()+")")
	return at, l.Topo.CutEtcd(n.Name, m)
}

// RestoreEtcd reconnects node n to etcd.
func (l *Lab) RestoreEtcd(n *Node) (time.Duration, error) {
	at := l.TL.Mark(observe.KindFault, n.Name, "reconnected to etcd")
	return at, l.Topo.RestoreEtcd(n.Name)
}

// IsolatePeers turns bridge port isolation on or off for every node port:
// the nodes stop hearing each other (a split brain) while all of them
// still reach the router and etcd.
func (l *Lab) IsolatePeers(on bool) (time.Duration, error) {
	text := "nodes isolated from each other"
	if !on {
		text = "node isolation lifted"
	}
	at := l.TL.Mark(observe.KindFault, "switch", text)
	names := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		names[i] = n.Name
	}
	return at, l.Topo.IsolatePorts(on, names...)
}

// SetPort brings node n's switch port down (cable pulled: the node sees
// carrier loss) or up.
func (l *Lab) SetPort(n *Node, up bool) (time.Duration, error) {
	at := l.TL.Mark(observe.KindFault, n.Name, fmt.Sprintf("switch port %s up=%t", n.Host.Port, up))
	return at, l.Topo.SetPort(n.Name, up)
}

// SetLink brings node n's own eth0 down or up.
func (l *Lab) SetLink(n *Node, up bool) (time.Duration, error) {
	at := l.TL.Mark(observe.KindFault, n.Name, fmt.Sprintf("%s up=%t", n.Host.Dev, up))
	return at, l.Topo.SetLink(n.Name, up)
}

// ForgetNeighbours makes the router forget its entries for the VIPs: the
// next probe makes it ask the segment again (ARP request, Neighbor
// Solicitation), so every host that still answers for a VIP shows on the
// switch. It is a stimulus, not a fault, but is marked the same way.
func (l *Lab) ForgetNeighbours() (time.Duration, error) {
	at := l.TL.Mark(observe.KindFault, "router", "router forgets its neighbour entries for the VIPs")
	return at, l.Topo.ForgetNeighbours(l.VIPs()...)
}

// PauseEtcd freezes the etcd server (SIGSTOP): connections stay open but
// nothing is answered.
func (l *Lab) PauseEtcd() (time.Duration, error) {
	return l.Signal("etcd", l.Etcd(), syscall.SIGSTOP)
}

// ResumeEtcd thaws it.
func (l *Lab) ResumeEtcd() (time.Duration, error) {
	return l.Signal("etcd", l.Etcd(), syscall.SIGCONT)
}

// KillEtcd SIGKILLs the etcd server.
func (l *Lab) KillEtcd() (time.Duration, error) {
	return l.Signal("etcd", l.Etcd(), syscall.SIGKILL)
}

// Failover derives the failover metrics for one VIP from the timeline:
// fault at lab time fault, window until end (now when zero), from the
// node that held the VIP to node to (nil: the first other node to become
// MASTER).
func (l *Lab) Failover(vip netip.Addr, fault, end time.Duration, from, to *Node) observe.Failover {
	spec := observe.FailoverSpec{Fault: fault, End: end, VIP: vip, Instance: Instance}
	if from != nil {
		spec.From = from.Name
	}
	if to != nil {
		spec.To = to.Name
	}
	for _, n := range l.Nodes {
		spec.Hosts = append(spec.Hosts, n.Name)
	}
	return l.TL.Failover(spec)
}
