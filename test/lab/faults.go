package lab

import (
	"context"
	"errors"
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

// PauseEtcd freezes all of etcd (SIGSTOP to every member): connections
// stay open but nothing is answered.
func (l *Lab) PauseEtcd() (time.Duration, error) {
	return l.signalEtcd(syscall.SIGSTOP, "all of etcd frozen", l.etcdMembers()...)
}

// ResumeEtcd thaws every member.
func (l *Lab) ResumeEtcd() (time.Duration, error) {
	return l.signalEtcd(syscall.SIGCONT, "all of etcd thawed", l.etcdMembers()...)
}

// KillEtcd SIGKILLs every member.
func (l *Lab) KillEtcd() (time.Duration, error) {
	return l.signalEtcd(syscall.SIGKILL, "all of etcd killed", l.etcdMembers()...)
}

// EtcdMembers is the number of members of the lab's etcd cluster.
func (l *Lab) EtcdMembers() int { return len(l.etcdMembers()) }

// EtcdMemberName is member i's name ("etcd", "etcd-2", ...).
func (l *Lab) EtcdMemberName(i int) string { return l.etcdMembers()[i].spec.Name }

// PauseEtcdMember freezes member i (SIGSTOP).
func (l *Lab) PauseEtcdMember(i int) (time.Duration, error) {
	return l.signalEtcd(syscall.SIGSTOP, "", l.etcdMembers()[i])
}

// ResumeEtcdMember thaws member i (SIGCONT).
func (l *Lab) ResumeEtcdMember(i int) (time.Duration, error) {
	return l.signalEtcd(syscall.SIGCONT, "", l.etcdMembers()[i])
}

// KillEtcdMember SIGKILLs member i; RestartEtcdMember brings it back.
func (l *Lab) KillEtcdMember(i int) (time.Duration, error) {
	return l.signalEtcd(syscall.SIGKILL, "", l.etcdMembers()[i])
}

// signalEtcd signals members (one mark on the timeline: text, or the
// signal and the member when empty) and keeps track of the frozen ones.
func (l *Lab) signalEtcd(sig syscall.Signal, text string, ms ...*etcdMember) (time.Duration, error) {
	if len(ms) == 0 {
		return 0, fmt.Errorf("signal %s to etcd: not started", signalName(sig))
	}
	if text == "" {
		text = fmt.Sprintf("%s %s", signalName(sig), ms[0].p.Name)
	}
	at := l.TL.Mark(observe.KindFault, "etcd", text)
	var errs []error
	for _, m := range ms {
		l.mu.Lock()
		p := m.p
		switch sig {
		case syscall.SIGSTOP:
			m.paused = true
		case syscall.SIGCONT, syscall.SIGKILL:
			m.paused = false
		}
		l.mu.Unlock()
		if len(ms) > 1 && !p.Running() {
			continue // all of etcd: the members that run (one may be killed)
		}
		if err := p.Signal(sig); err != nil {
			errs = append(errs, err)
		}
	}
	return at, errors.Join(errs...)
}

// RestartEtcdMember starts member i again on its data dir, as a node
// restarts a crashed member: it rejoins the cluster and catches up. It
// does not wait for that (the cluster may have no quorum without it);
// RecoverEtcd does. Restarting a running member is an error.
func (l *Lab) RestartEtcdMember(i int) (time.Duration, error) {
	m := l.etcdMembers()[i]
	l.mu.Lock()
	old := m.p
	l.mu.Unlock()
	if old.Running() {
		return 0, fmt.Errorf("restart %s: still running (pid %d)", old.Name, old.PID)
	}
	at := l.TL.Mark(observe.KindFault, "etcd", "restart "+old.Name+" on its data dir")
	e := m.spec
	e.Rejoin = true
	p, err := l.launchEtcd(e)
	if err != nil {
		return at, err
	}
	l.mu.Lock()
	m.p, m.paused = p, false
	l.mu.Unlock()
	return at, nil
}

// RecoverEtcd undoes what the etcd faults left: it thaws frozen members,
// restarts dead ones on their data dirs and waits until every member is
// healthy.
func (l *Lab) RecoverEtcd(ctx context.Context) error {
	var errs []error
	for i, m := range l.etcdMembers() {
		l.mu.Lock()
		p, paused := m.p, m.paused
		l.mu.Unlock()
		switch {
		case !p.Running():
			if _, err := l.RestartEtcdMember(i); err != nil {
				errs = append(errs, err)
			}
		case paused:
			if _, err := l.ResumeEtcdMember(i); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, m := range l.etcdMembers() {
		l.mu.Lock()
		p := m.p
		l.mu.Unlock()
		if err := l.waitEtcdHealthy(ctx, m.spec, p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("recover etcd: %w", err)
	}
	return nil
}

// EtcdLeader asks every running member that is not frozen for its status
// (etcd's maintenance Status, from the etcd host) and returns the index of
// the member that leads. A frozen member would not answer.
func (l *Lab) EtcdLeader(ctx context.Context) (int, error) {
	dial, err := l.EtcdDialer("etcd")
	if err != nil {
		return -1, err
	}
	ms := l.etcdMembers()
	var errs []error
	for i, m := range ms {
		l.mu.Lock()
		p, paused := m.p, m.paused
		l.mu.Unlock()
		if paused || !p.Running() {
			continue
		}
		url := m.spec.ClientURLs()[0]
		st, err := etcdStatus(ctx, url, dial)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Leader == 0 {
			errs = append(errs, fmt.Errorf("%s knows no leader", m.spec.Name))
			continue
		}
		if st.Leader == st.Header.MemberId {
			return i, nil
		}
	}
	return -1, fmt.Errorf("find the etcd leader: no member says it leads: %w", errors.Join(errs...))
}

// CutPeers cuts node n from the other nodes, both ways, while every node
// keeps etcd and the router (topo.CutPeers); on=false heals it.
func (l *Lab) CutPeers(n *Node, on bool) (time.Duration, error) {
	text := n.Name + " cut from the other nodes"
	if !on {
		text = n.Name + " back with the other nodes"
	}
	var peers []string
	for _, o := range l.Nodes {
		if o != n {
			peers = append(peers, o.Name)
		}
	}
	at := l.TL.Mark(observe.KindFault, "switch", text)
	return at, l.Topo.CutPeers(n.Name, peers, on)
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
