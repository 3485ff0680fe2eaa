// Package topo builds the DESIGN §7 lab network out of named network
// namespaces, veth pairs and a Linux bridge, and injects network faults
// into it.
//
//	client ── router ── switch (br0) ─┬─ node-a
//	                                   ├─ node-b
//	                                   └─ etcd
//
// Every namespace name starts with a per-run prefix (NewPrefix), so two
// runs never collide and CleanupStale can find a crashed run's leftovers.
// Links are configured through netlink handles bound to the namespaces;
// no thread is left inside a lab namespace.
package topo

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The address plan. Documentation ranges only.
var (
	VIP4 = netip.MustParseAddr("192.0.2.100")
	VIP6 = netip.MustParseAddr("2001:db8::100")

	ServerNet4 = netip.MustParsePrefix("192.0.2.0/24")
	ServerNet6 = netip.MustParsePrefix("2001:db8::/64")
	ClientNet4 = netip.MustParsePrefix("198.51.100.0/24")
	ClientNet6 = netip.MustParsePrefix("2001:db8:c::/64")

	RouterServer4 = netip.MustParseAddr("192.0.2.1")
	RouterServer6 = netip.MustParseAddr("2001:db8::1")
	RouterClient4 = netip.MustParseAddr("198.51.100.1")
	RouterClient6 = netip.MustParseAddr("2001:db8:c::1")
	Client4       = netip.MustParseAddr("198.51.100.10")
	Client6       = netip.MustParseAddr("2001:db8:c::10")
	Etcd4         = netip.MustParseAddr("192.0.2.20")
	Etcd6         = netip.MustParseAddr("2001:db8::20")
)

// Well-known names inside the namespaces.
const (
	BridgeName = "br0"
	NodeDev    = "eth0" // every host's interface; shipped configs say eth0
	RouterLAN  = "eth1" // the router's leg on the server segment
	RouterWAN  = "eth0" // the router's leg on the client segment
)

// Host is one machine of the lab with its interface on a segment.
type Host struct {
	Name  string // client, router, node-a, node-b, etcd
	NS    *NS
	Dev   string // its interface on the server segment (client: client segment)
	Port  string // the switch-side veth end, "" for the client
	MAC   net.HardwareAddr
	Addr4 netip.Addr
	Addr6 netip.Addr
}

// Config chooses the per-run prefix and how many keepalived nodes to build.
type Config struct {
	Prefix string // from NewPrefix when empty
	Nodes  int    // 2 when zero; node-a, node-b, ... at 192.0.2.11, .12, ...
	Logger *slog.Logger
}

// Topology is the built network. Close deletes all of it.
type Topology struct {
	Prefix string
	Client *Host
	Router *Host // Dev/Addr are the server-side leg; the client leg is RouterWAN
	Switch *NS
	Nodes  []*Host
	Etcd   *Host

	log       *slog.Logger
	etcdExtra []netip.Addr       // AddEtcdAddrs: cut with Etcd's own
	peerCuts  map[[2]string]bool // CutPeers in force, both directions
	all       []*NS
}

// NodeName is the lab name of the i-th node (0 → node-a).
func NodeName(i int) string { return "node-" + string(rune('a'+i)) }

// mac builds a locally administered MAC whose last bytes mirror the host's
// address, so timelines and captures are readable: 02:00:c0:00:02:0b is
// 192.0.2.11.
func mac(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// Build creates every namespace, link, address, route and sysctl of the
// lab. On error it removes what it had created.
func Build(cfg Config) (t *Topology, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = NewPrefix()
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 2
	}
	if cfg.Nodes < 1 || cfg.Nodes > 8 {
		return nil, fmt.Errorf("build lab %s: node count %d out of range 1..8", cfg.Prefix, cfg.Nodes)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t = &Topology{Prefix: cfg.Prefix, log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
			t = nil
		}
	}()

	mk := func(role string) (*NS, error) {
		ns, err := newNS(cfg.Prefix+"-"+role, role)
		if err != nil {
			return nil, err
		}
		t.all = append(t.all, ns)
		return ns, nil
	}
	host := func(name string, a4, a6 netip.Addr) (*Host, error) {
		ns, err := mk(name)
		if err != nil {
			return nil, err
		}
		return &Host{Name: name, NS: ns, Dev: NodeDev, Port: "p-" + name, MAC: mac(a4), Addr4: a4, Addr6: a6}, nil
	}

	if t.Switch, err = mk("switch"); err != nil {
		return nil, err
	}
	if t.Router, err = host("router", RouterServer4, RouterServer6); err != nil {
		return nil, err
	}
	t.Router.Dev = RouterLAN
	if t.Client, err = host("client", Client4, Client6); err != nil {
		return nil, err
	}
	t.Client.Port = ""
	for i := range cfg.Nodes {
		a4 := netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})
		a6 := netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", 11+i))
		n, err := host(NodeName(i), a4, a6)
		if err != nil {
			return nil, err
		}
		t.Nodes = append(t.Nodes, n)
	}
	if t.Etcd, err = host("etcd", Etcd4, Etcd6); err != nil {
		return nil, err
	}

	// Sysctls that must hold before links exist ("default" applies to new
	// links): no DAD anywhere so addresses work at once; no IPv6 on the
	// switch so the bridge itself stays silent in captures.
	for _, ns := range t.all {
		if err := ns.Sysctl("net.ipv6.conf.default.accept_dad", "0"); err != nil {
			return nil, err
		}
		if err := ns.Sysctl("net.ipv6.conf.all.accept_dad", "0"); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{"net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"} {
		if err := t.Switch.Sysctl(k, "1"); err != nil {
			return nil, err
		}
	}
	// keepalived hosts, per the reference: answer ARP only for addresses
	// on the receiving interface, announce with the best local source, and
	// keep secondaries when a primary goes.
	for _, n := range t.Nodes {
		for _, k := range []string{"all", "default"} {
			for key, v := range map[string]string{"arp_ignore": "1", "arp_announce": "2", "promote_secondaries": "1"} {
				if err := n.NS.Sysctl("net.ipv4.conf."+k+"."+key, v); err != nil {
					return nil, err
				}
			}
		}
	}
	// The router forwards both families and, like a default Linux router,
	// does not create neighbour entries from gratuitous ARP.
	for key, v := range map[string]string{
		"net.ipv4.ip_forward":              "1",
		"net.ipv6.conf.all.forwarding":     "1",
		"net.ipv4.conf.all.arp_accept":     "0",
		"net.ipv4.conf.default.arp_accept": "0",
		"net.ipv6.conf.default.forwarding": "1",
		"net.ipv4.conf.all.rp_filter":      "0",
		"net.ipv4.conf.default.rp_filter":  "0",
	} {
		if err := t.Router.NS.Sysctl(key, v); err != nil {
			return nil, err
		}
	}

	// The switch: a bridge without STP (ports forward at once) and without
	// multicast snooping (VRRP and ND multicast are always flooded).
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}, MulticastSnooping: &off}
	if err := t.Switch.nl.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s in netns %s: %w", BridgeName, t.Switch.Name, err)
	}
	if err := t.Switch.LinkUp(BridgeName); err != nil {
		return nil, err
	}
	for _, h := range t.ServerHosts() {
		if err := t.plugIn(h); err != nil {
			return nil, err
		}
	}

	// The client segment: a plain veth between router and client.
	if err := veth(t.Router.NS, RouterWAN, mac(RouterClient4), t.Client.NS, NodeDev, t.Client.MAC); err != nil {
		return nil, err
	}
	if err := addAddrs(t.Router.NS, RouterWAN, netip.PrefixFrom(RouterClient4, 24), netip.PrefixFrom(RouterClient6, 64)); err != nil {
		return nil, err
	}
	if err := addAddrs(t.Client.NS, NodeDev, netip.PrefixFrom(Client4, 24), netip.PrefixFrom(Client6, 64)); err != nil {
		return nil, err
	}
	if err := defaultRoutes(t.Client, RouterClient4, RouterClient6); err != nil {
		return nil, err
	}
	for _, h := range append(append([]*Host{}, t.Nodes...), t.Etcd) {
		if err := defaultRoutes(h, RouterServer4, RouterServer6); err != nil {
			return nil, err
		}
	}
	log.Debug("lab topology built", "prefix", t.Prefix, "nodes", len(t.Nodes))
	return t, nil
}

// ServerHosts are the hosts plugged into the switch: router, nodes, etcd.
func (t *Topology) ServerHosts() []*Host {
	hs := []*Host{t.Router}
	hs = append(hs, t.Nodes...)
	return append(hs, t.Etcd)
}

// Hosts are all hosts, client first.
func (t *Topology) Hosts() []*Host { return append([]*Host{t.Client}, t.ServerHosts()...) }

// Host finds a host by lab name.
func (t *Topology) Host(name string) (*Host, error) {
	for _, h := range t.Hosts() {
		if h.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("find host %q in lab %s: no such host", name, t.Prefix)
}

// Namespaces lists every namespace of the lab.
func (t *Topology) Namespaces() []*NS { return append([]*NS{}, t.all...) }

// plugIn connects a host to the switch: veth with the switch end enslaved
// to the bridge, the host end named h.Dev with the host's MAC and
// addresses.
func (t *Topology) plugIn(h *Host) error {
	if err := veth(t.Switch, h.Port, nil, h.NS, h.Dev, h.MAC); err != nil {
		return err
	}
	port, err := t.Switch.Link(h.Port)
	if err != nil {
		return err
	}
	br, err := t.Switch.Link(BridgeName)
	if err != nil {
		return err
	}
	if err := t.Switch.nl.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("enslave %s to %s in netns %s: %w", h.Port, BridgeName, t.Switch.Name, err)
	}
	return addAddrs(h.NS, h.Dev, netip.PrefixFrom(h.Addr4, 24), netip.PrefixFrom(h.Addr6, 64))
}

// veth creates a veth pair from a to b and brings both ends up.
func veth(a *NS, aName string, aMAC net.HardwareAddr, b *NS, bName string, bMAC net.HardwareAddr) error {
	l := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: aName, HardwareAddr: aMAC},
		PeerName:         bName,
		PeerHardwareAddr: bMAC,
		PeerNamespace:    netlink.NsFd(int(b.handle)),
	}
	if err := a.nl.LinkAdd(l); err != nil {
		return fmt.Errorf("add veth %s(%s)-%s(%s): %w", aName, a.Role, bName, b.Role, err)
	}
	if err := a.LinkUp(aName); err != nil {
		return err
	}
	return b.LinkUp(bName)
}

// addAddrs assigns addresses to a link; IPv6 ones skip DAD.
func addAddrs(ns *NS, dev string, prefixes ...netip.Prefix) error {
	l, err := ns.Link(dev)
	if err != nil {
		return err
	}
	for _, p := range prefixes {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags |= unix.IFA_F_NODAD
		}
		if err := ns.nl.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add address %s to %s in netns %s: %w", p, dev, ns.Name, err)
		}
	}
	return nil
}

// AddAddr adds an address to a host's interface (e.g. a second service
// address on the etcd host).
func (t *Topology) AddAddr(host string, p netip.Prefix) error {
	h, err := t.Host(host)
	if err != nil {
		return err
	}
	return addAddrs(h.NS, h.Dev, p)
}

// AddEtcdAddrs adds addresses to the etcd host for more members of the
// lab's etcd cluster: CutEtcd cuts them with the host's own. Call it
// before any cut.
func (t *Topology) AddEtcdAddrs(a4, a6 netip.Addr) error {
	if err := t.AddAddr(t.Etcd.Name, netip.PrefixFrom(a4, ServerNet4.Bits())); err != nil {
		return err
	}
	if err := t.AddAddr(t.Etcd.Name, netip.PrefixFrom(a6, ServerNet6.Bits())); err != nil {
		return err
	}
	t.etcdExtra = append(t.etcdExtra, a4, a6)
	return nil
}

// EtcdAddrs are the addresses CutEtcd cuts: the etcd host's own and those
// of AddEtcdAddrs.
func (t *Topology) EtcdAddrs() []netip.Addr {
	return append([]netip.Addr{t.Etcd.Addr4, t.Etcd.Addr6}, t.etcdExtra...)
}

// defaultRoutes points both families of a host at the router.
func defaultRoutes(h *Host, gw4, gw6 netip.Addr) error {
	l, err := h.NS.Link(h.Dev)
	if err != nil {
		return err
	}
	for _, gw := range []netip.Addr{gw4, gw6} {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}
		if gw.Is4() {
			r.Dst = &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		} else {
			r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		if err := h.NS.nl.RouteAdd(r); err != nil {
			return fmt.Errorf("add default route via %s in netns %s: %w", gw, h.NS.Name, err)
		}
	}
	return nil
}

// Close deletes every namespace of the lab, killing what runs inside.
func (t *Topology) Close() error {
	if t == nil {
		return nil
	}
	var errs []error
	for i := len(t.all) - 1; i >= 0; i-- {
		if err := t.all[i].delete(); err != nil {
			errs = append(errs, err)
		}
	}
	t.all = nil
	return errors.Join(errs...)
}
