package topo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CutMethod chooses how a host is cut from etcd.
type CutMethod int

const (
	// CutBlackhole adds blackhole routes to etcd's addresses on the host.
	// Segments of established TCP connections vanish without an error
	// (the connection just stops getting answers), but new connect() and
	// UDP sends fail at once with EINVAL, so a client that reconnects
	// learns about the cut immediately.
	CutBlackhole CutMethod = iota
	// CutNeighbour pins etcd's addresses to an unused MAC on the host:
	// every packet leaves the host and is flooded by the switch to nobody.
	// Nothing on the host can tell the cut from a dead path (reconnects
	// time out), which is what a real partition looks like.
	CutNeighbour
)

func (m CutMethod) String() string {
	switch m {
	case CutBlackhole:
		return "blackhole"
	case CutNeighbour:
		return "neighbour"
	}
	return fmt.Sprintf("cut(%d)", int(m))
}

// deadMAC is never assigned to a lab interface.
var deadMAC = net.HardwareAddr{0x02, 0x00, 0xde, 0xad, 0x00, 0x01}

// CutEtcd cuts one host from etcd only; it keeps reaching the router and
// its peers.
func (t *Topology) CutEtcd(host string, m CutMethod) error {
	h, err := t.Host(host)
	if err != nil {
		return err
	}
	l, err := h.NS.Link(h.Dev)
	if err != nil {
		return err
	}
	for _, a := range t.EtcdAddrs() {
		switch m {
		case CutBlackhole:
			r := &netlink.Route{Dst: hostNet(a), Type: unix.RTN_BLACKHOLE}
			if err := h.NS.nl.RouteReplace(r); err != nil {
				return fmt.Errorf("cut %s from etcd: add blackhole route %s: %w", host, a, err)
			}
		case CutNeighbour:
			n := &netlink.Neigh{LinkIndex: l.Attrs().Index, IP: a.AsSlice(), HardwareAddr: deadMAC, State: netlink.NUD_PERMANENT, Family: family(a)}
			if err := h.NS.nl.NeighSet(n); err != nil {
				return fmt.Errorf("cut %s from etcd: pin neighbour %s: %w", host, a, err)
			}
		default:
			return fmt.Errorf("cut %s from etcd: unknown method %d", host, int(m))
		}
	}
	return nil
}

// RestoreEtcd undoes CutEtcd (either method); restoring an uncut host is
// not an error.
func (t *Topology) RestoreEtcd(host string) error {
	h, err := t.Host(host)
	if err != nil {
		return err
	}
	l, err := h.NS.Link(h.Dev)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range t.EtcdAddrs() {
		r := &netlink.Route{Dst: hostNet(a), Type: unix.RTN_BLACKHOLE}
		if err := h.NS.nl.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("restore %s to etcd: delete blackhole route %s: %w", host, a, err))
		}
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, IP: a.AsSlice(), Family: family(a)}
		if err := h.NS.nl.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("restore %s to etcd: delete neighbour %s: %w", host, a, err))
		}
	}
	return errors.Join(errs...)
}

// IsolatePorts sets bridge port isolation on the given hosts' switch ports.
// Isolated ports cannot talk to each other but still reach every
// non-isolated port: isolating both nodes splits them from each other
// while both keep the router and etcd (a split brain).
func (t *Topology) IsolatePorts(on bool, hosts ...string) error {
	for _, name := range hosts {
		h, err := t.Host(name)
		if err != nil {
			return err
		}
		if h.Port == "" {
			return fmt.Errorf("isolate %s: host has no switch port", name)
		}
		p, err := t.Switch.Link(h.Port)
		if err != nil {
			return err
		}
		if err := t.Switch.nl.LinkSetIsolated(p, on); err != nil {
			return fmt.Errorf("set isolation %t on switch port %s: %w", on, h.Port, err)
		}
	}
	return nil
}

// CutPeers cuts host from each of peers, both ways, while every one of
// them keeps the router, etcd and the rest of the segment (bridge port
// isolation cannot do this: an isolated port still reaches every port
// that is not). Each side gets blackhole routes to the other's addresses,
// so nothing it sends them leaves, and strict reverse-path filtering on
// its interface, so an IPv4 packet from them fails the source check and is
// dropped: VRRP adverts (multicast, IPv4 here) included. What still
// passes: ARP and IPv6 neighbour discovery, and IPv6 packets the peers
// send (IPv6 routing has no source check). on=false undoes it and puts
// reverse-path filtering back to off, the lab's setting.
func (t *Topology) CutPeers(host string, peers []string, on bool) error {
	h, err := t.Host(host)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range peers {
		p, err := t.Host(name)
		if err != nil {
			return err
		}
		for _, pair := range [][2]*Host{{h, p}, {p, h}} {
			if err := blackholeHost(pair[0], pair[1], on); err != nil {
				errs = append(errs, fmt.Errorf("cut %s from %s: %w", host, name, err))
			}
		}
	}
	if t.peerCuts == nil {
		t.peerCuts = map[[2]string]bool{}
	}
	for _, name := range peers {
		t.peerCuts[[2]string{host, name}] = on
		t.peerCuts[[2]string{name, host}] = on
	}
	// Filtering stays on wherever another cut still needs it.
	for _, name := range append([]string{host}, peers...) {
		x, _ := t.Host(name)
		rp := "0"
		for pair, cut := range t.peerCuts {
			if cut && pair[0] == name {
				rp = "1"
			}
		}
		// The effective value is the higher of "all" and the interface's.
		if err := x.NS.Sysctl("net.ipv4.conf."+x.Dev+".rp_filter", rp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// blackholeHost adds (or, with on false, deletes) blackhole routes on
// from to both addresses of to.
func blackholeHost(from, to *Host, on bool) error {
	for _, a := range []netip.Addr{to.Addr4, to.Addr6} {
		r := &netlink.Route{Dst: hostNet(a), Type: unix.RTN_BLACKHOLE}
		if on {
			if err := from.NS.nl.RouteReplace(r); err != nil {
				return fmt.Errorf("add blackhole route %s on %s: %w", a, from.Name, err)
			}
		} else if err := from.NS.nl.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete blackhole route %s on %s: %w", a, from.Name, err)
		}
	}
	return nil
}

// SetPort brings a host's switch port up or down: the host sees its carrier
// go away, as if its cable were pulled.
func (t *Topology) SetPort(host string, up bool) error {
	h, err := t.Host(host)
	if err != nil {
		return err
	}
	if h.Port == "" {
		return fmt.Errorf("set switch port of %s: host has no switch port", host)
	}
	return setLink(t.Switch, h.Port, up)
}

// SetLink brings a host's own interface up or down (an administrative
// `ip link set eth0 down` on the host).
func (t *Topology) SetLink(host string, up bool) error {
	h, err := t.Host(host)
	if err != nil {
		return err
	}
	return setLink(h.NS, h.Dev, up)
}

func setLink(ns *NS, dev string, up bool) error {
	l, err := ns.Link(dev)
	if err != nil {
		return err
	}
	if up {
		err = ns.nl.LinkSetUp(l)
	} else {
		err = ns.nl.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set %s up=%t in netns %s: %w", dev, up, ns.Name, err)
	}
	return nil
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// ForgetNeighbours deletes the router's neighbour entries (server side) for
// the given addresses, as its garbage collector eventually does: the next
// packet for one makes the router ask again (ARP request, Neighbor
// Solicitation), and whoever answers becomes the entry. Absent entries are
// fine.
func (t *Topology) ForgetNeighbours(ips ...netip.Addr) error {
	l, err := t.Router.NS.Link(t.Router.Dev)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, IP: ip.AsSlice(), Family: family(ip)}
		if err := t.Router.NS.nl.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete router neighbour %s: %w", ip, err)
		}
	}
	return nil
}
