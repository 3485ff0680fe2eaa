package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/vip"
)

// Net talks to one network namespace's routing subsystem over netlink.
type Net struct {
	h *netlink.Handle
}

// Open binds to the calling process's network namespace.
func Open() (*Net, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return &Net{h: h}, nil
}

// OpenAt binds to another network namespace (tests, fenced in a lab).
func OpenAt(ns netns.NsHandle) (*Net, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink in netns: %w", err)
	}
	return &Net{h: h}, nil
}

// Close releases the netlink socket.
func (n *Net) Close() { n.h.Close() }

// Link looks an interface up by name.
func (n *Net) Link(dev string) (Link, error) {
	l, err := n.h.LinkByName(dev)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return Link{}, fmt.Errorf("interface %q: %w", dev, ErrNoSuchDevice)
		}
		return Link{}, fmt.Errorf("look up interface %q: %w", dev, err)
	}
	a := l.Attrs()
	return Link{
		Name:  a.Name,
		Index: a.Index,
		MAC:   a.HardwareAddr,
		Up:    a.Flags&net.FlagUp != 0,
		NoARP: a.RawFlags&unix.IFF_NOARP != 0,
	}, nil
}

// Addrs lists the addresses of one family (unix.AF_INET or unix.AF_INET6,
// 0 for both) on a link, in kernel order.
func (n *Net) Addrs(l Link, family int) ([]Addr, error) {
	list, err := n.h.AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Name, err)
	}
	out := make([]Addr, 0, len(list))
	for _, a := range list {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		out = append(out, Addr{
			Prefix:     p,
			Secondary:  a.Flags&unix.IFA_F_SECONDARY != 0,
			Deprecated: a.Flags&unix.IFA_F_DEPRECATED != 0,
			Tentative:  a.Flags&unix.IFA_F_TENTATIVE != 0 && a.Flags&unix.IFA_F_OPTIMISTIC == 0,
			DADFailed:  a.Flags&unix.IFA_F_DADFAILED != 0,
			Global:     a.Scope == unix.RT_SCOPE_UNIVERSE,
		})
	}
	return out, nil
}

func familyOf(v vip.VIP) int {
	if v.Is6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// Primary picks the hint source for v on l (see PickPrimary).
func (n *Net) Primary(l Link, v vip.VIP) (netip.Addr, error) {
	addrs, err := n.Addrs(l, familyOf(v))
	if err != nil {
		return netip.Addr{}, err
	}
	return PickPrimary(l.Name, addrs, v)
}

// CheckSource validates an operator-chosen hint source on l.
func (n *Net) CheckSource(l Link, v vip.VIP, src netip.Addr) error {
	addrs, err := n.Addrs(l, 0)
	if err != nil {
		return err
	}
	return CheckSource(l.Name, addrs, v, src)
}

// CheckRelease validates a release of v on l against the kernel's
// addresses (see CheckRelease).
func (n *Net) CheckRelease(l Link, v vip.VIP, removeAddr, added bool) error {
	addrs, err := n.Addrs(l, familyOf(v))
	if err != nil {
		return err
	}
	return CheckRelease(l.Name, addrs, v, removeAddr, added)
}

// CheckFloating reports a VIP that is one of dev's own addresses (see
// Owned). An interface that does not exist yet passes: it is checked again
// when vipkit acts on it.
func (n *Net) CheckFloating(dev string, v vip.VIP) error {
	l, err := n.Link(dev)
	if errors.Is(err, ErrNoSuchDevice) {
		return nil
	} else if err != nil {
		return err
	}
	return n.CheckRelease(l, v, false, false)
}

// IsAssigned reports whether v's address is on l (any prefix length).
func (n *Net) IsAssigned(l Link, v vip.VIP) (bool, error) {
	addrs, err := n.Addrs(l, familyOf(v))
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if a.Prefix.Addr() == v.Addr() {
			return true, nil
		}
	}
	return false, nil
}

// AssignedAnywhere reports whether addr is assigned on any interface.
func (n *Net) AssignedAnywhere(addr netip.Addr) (bool, error) {
	fam := unix.AF_INET
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	list, err := n.h.AddrList(nil, fam)
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range list {
		if p, ok := prefixOf(a.IPNet); ok && p.Addr() == addr {
			return true, nil
		}
	}
	return false, nil
}

// AddVIP assigns v to l. It is idempotent. IPv6 VIPs skip duplicate address
// detection (the VRRP election already decided the owner, and a tentative
// address cannot be announced) and are deprecated (preferred lifetime 0) so
// the kernel never picks them as a source, as keepalived does.
func (n *Net) AddVIP(l Link, v vip.VIP) error {
	a := &netlink.Addr{IPNet: ipNet(v.Prefix())}
	if v.Is6() {
		a.Flags = unix.IFA_F_NODAD
		a.PreferedLft = 0
		a.ValidLft = 0xffffffff // forever
	}
	err := n.h.AddrAdd(dummy(l), a)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", v.Prefix(), l.Name, err)
	}
	return nil
}

// DelVIP removes v's address from l, whatever prefix length it was added
// with. It is idempotent.
func (n *Net) DelVIP(l Link, v vip.VIP) error {
	addrs, err := n.Addrs(l, familyOf(v))
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Prefix.Addr() != v.Addr() {
			continue
		}
		err := n.h.AddrDel(dummy(l), &netlink.Addr{IPNet: ipNet(a.Prefix)})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("delete %s from %s: %w", a.Prefix, l.Name, err)
		}
	}
	return nil
}

// LocalRoutes lists the local-table host routes for addr (all of them:
// the kernel's, vipkit's and any other).
func (n *Net) LocalRoutes(addr netip.Addr) ([]LocalRoute, error) {
	fam := unix.AF_INET
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: ipNet(netip.PrefixFrom(addr, addr.BitLen()))}
	rs, err := n.h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil {
		return nil, fmt.Errorf("list local routes for %s: %w", addr, err)
	}
	return n.toLocal(rs), nil
}

// AllLocalRoutes lists every local-type host route in the local table.
func (n *Net) AllLocalRoutes() ([]LocalRoute, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL}
	rs, err := n.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if err != nil {
		return nil, fmt.Errorf("list local routes: %w", err)
	}
	return n.toLocal(rs), nil
}

func (n *Net) toLocal(rs []netlink.Route) []LocalRoute {
	names := map[int]string{}
	var out []LocalRoute
	for _, r := range rs {
		if r.Type != unix.RTN_LOCAL || r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || p.Bits() != p.Addr().BitLen() {
			continue
		}
		lr := LocalRoute{Dst: p.Addr(), LinkIndex: r.LinkIndex, Protocol: int(r.Protocol), Metric: r.Priority}
		if src, ok := netip.AddrFromSlice(r.Src); ok && r.Src != nil {
			lr.Src = src.Unmap()
		}
		if name, ok := names[r.LinkIndex]; ok {
			lr.Dev = name
		} else if l, err := n.h.LinkByIndex(r.LinkIndex); err == nil {
			lr.Dev = l.Attrs().Name
			names[r.LinkIndex] = lr.Dev
		}
		out = append(out, lr)
	}
	return out
}

// SetHint makes local connections to v use src as their source address.
//
// IPv4: the kernel's route is replaced in place (same table, destination,
// metric). IPv6: user space cannot create a metric-0 route, so the hint is
// added at the default metric and the kernel's metric-0 route is deleted
// after it, never leaving the VIP without a local route.
func (n *Net) SetHint(l Link, v vip.VIP, src netip.Addr) error {
	// Once vipkit has swapped the kernel's IPv6 route (a hint or a stand-in
	// is there), the kernel never puts it back; only a fresh address gets one.
	swapped := false
	if v.Is6() {
		before, err := n.LocalRoutes(v.Addr())
		if err != nil {
			return err
		}
		for _, r := range before {
			swapped = swapped || r.IsHint()
		}
	}
	hint := n.hintRoute(l, v, src)
	if err := n.h.RouteReplace(hint); err != nil {
		return fmt.Errorf("set source hint %s for %s on %s: %w", src, v.Addr(), l.Name, err)
	}
	if !v.Is6() {
		return nil
	}
	// The kernel inserts an IPv6 address's local route from a work queue,
	// after the address is added (duplicate address detection completing,
	// even with nodad). Wait for it, briefly, so it cannot appear after the
	// swap and shadow the hint.
	deadline := time.Now().Add(kernelRouteWait)
	for {
		routes, err := n.LocalRoutes(v.Addr())
		if err != nil {
			return err
		}
		kernelSeen := false
		for _, r := range routes {
			if r.IsHint() && r.Src == src && r.Metric == hintMetric6 {
				continue // the hint just installed
			}
			kernelSeen = kernelSeen || r.IsKernel()
			if err := n.delete(r); err != nil {
				return fmt.Errorf("set source hint for %s: remove other local route %s: %w", v.Addr(), r, err)
			}
		}
		if kernelSeen || swapped || !l.Up || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// kernelRouteWait bounds the wait for the kernel's IPv6 local route.
const kernelRouteWait = 250 * time.Millisecond

// ClearHint removes the hint for v. If v is still assigned on l the kernel's
// route (source = VIP) is put back first: deleting a replaced route would
// leave an assigned VIP with no local route at all, and the host would stop
// accepting traffic for it. IPv6 cannot restore the kernel's metric-0 route,
// so an equivalent route without a source takes its place; it is not tied to
// the address, which is why fenced's route guard watches address deletions.
func (n *Net) ClearHint(l Link, v vip.VIP) error {
	routes, err := n.LocalRoutes(v.Addr())
	if err != nil {
		return err
	}
	assigned, err := n.IsAssigned(l, v)
	if err != nil {
		return err
	}
	if assigned {
		if err := n.restoreKernelRoute(l, v, routes); err != nil {
			return err
		}
	}
	for _, r := range routes {
		if !r.IsHint() || !r.Src.IsValid() {
			continue // not a hint (an IPv6 stand-in has no source)
		}
		// IPv4 restore replaced the hint in place; deleting now would find
		// nothing (ESRCH), which delete tolerates.
		if err := n.delete(r); err != nil {
			return fmt.Errorf("clear source hint for %s: %w", v.Addr(), err)
		}
	}
	return nil
}

func (n *Net) restoreKernelRoute(l Link, v vip.VIP, routes []LocalRoute) error {
	for _, r := range routes {
		if !r.IsHint() && r.LinkIndex == l.Index {
			return nil // the kernel's own route is still there
		}
		if r.IsHint() && !r.Src.IsValid() {
			return nil // an IPv6 stand-in is already there
		}
	}
	r := &netlink.Route{
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Dst:       ipNet(v.HostRoute()),
		LinkIndex: l.Index,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  kernelProtocol,
	}
	if !v.Is6() {
		// Exactly the route the kernel creates, so that the kernel deletes
		// it again together with the address.
		r.Src = v.Addr().AsSlice()
	} else {
		// A stand-in, vipkit's own so that cleanup can find it once the
		// address goes; metric 1 wins over the hint until that is deleted.
		r.Scope = netlink.SCOPE_UNIVERSE
		r.Protocol = HintProtocol
		r.Priority = 1
	}
	if err := n.h.RouteReplace(r); err != nil {
		return fmt.Errorf("restore kernel local route for %s on %s: %w", v.Addr(), l.Name, err)
	}
	return nil
}

// Release removes an owned VIP in the only order that leaves nothing behind
// (DESIGN §2): vipkit's routes for it first, then the address. Deleting the
// address first would leave the hint, and the host would go on treating the
// VIP as local and answering ARP for it.
func (n *Net) Release(l Link, v vip.VIP) error {
	routes, err := n.LocalRoutes(v.Addr())
	if err != nil {
		return err
	}
	for _, r := range routes {
		if !r.IsHint() {
			continue
		}
		if err := n.delete(r); err != nil {
			return fmt.Errorf("release %s: delete %s: %w", v.Addr(), r, err)
		}
	}
	return n.DelVIP(l, v)
}

// DeleteRoute removes one local route (orphan cleanup).
func (n *Net) DeleteRoute(r LocalRoute) error {
	if err := n.delete(r); err != nil {
		return fmt.Errorf("delete %s: %w", r, err)
	}
	return nil
}

func (n *Net) delete(r LocalRoute) error {
	nr := &netlink.Route{
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Dst:       ipNet(netip.PrefixFrom(r.Dst, r.Dst.BitLen())),
		LinkIndex: r.LinkIndex,
		Protocol:  netlink.RouteProtocol(r.Protocol),
		Priority:  r.Metric,
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if !r.Dst.Is6() {
		nr.Scope = netlink.SCOPE_HOST
	}
	err := n.h.RouteDel(nr)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

func (n *Net) hintRoute(l Link, v vip.VIP, src netip.Addr) *netlink.Route {
	r := &netlink.Route{
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Dst:       ipNet(v.HostRoute()),
		LinkIndex: l.Index,
		Src:       src.AsSlice(),
		Protocol:  HintProtocol,
		Scope:     netlink.SCOPE_HOST,
	}
	if v.Is6() {
		r.Scope = netlink.SCOPE_UNIVERSE
		r.Priority = hintMetric6
	}
	return r
}

// hintMetric6 is the metric of IPv6 hints: the kernel's default for routes
// from user space, set explicitly so the hint is recognisable.
const hintMetric6 = 1024

// Orphans lists local host routes whose destination is not assigned on any
// interface: left behind, they make the host treat the VIP as its own and
// (IPv4) answer ARP for it. Routes the kernel made for an address never
// qualify; vipkit's hints always do; others qualify only when they carry a
// source other than their destination (hint-shaped, like the classic shell
// hook's), so deliberate AnyIP routes are left alone.
func (n *Net) Orphans() ([]LocalRoute, error) {
	routes, err := n.AllLocalRoutes()
	if err != nil {
		return nil, err
	}
	var out []LocalRoute
	for _, r := range routes {
		if r.IsKernel() && !r.Dst.Is6() {
			continue
		}
		hintShaped := r.IsHint() || (r.Src.IsValid() && r.Src != r.Dst)
		if !hintShaped {
			continue
		}
		assigned, err := n.AssignedAnywhere(r.Dst)
		if err != nil {
			return nil, err
		}
		if !assigned {
			out = append(out, r)
		}
	}
	return out, nil
}

func dummy(l Link) netlink.Link {
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}
}

func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	bits := a.BitLen()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}
