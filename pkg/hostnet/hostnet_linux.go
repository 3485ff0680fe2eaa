package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
	var list []netlink.Addr
	err := retryDump(func() (err error) {
		list, err = n.h.AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}, family)
		return err
	})
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

// retryDump repeats a netlink dump the kernel interrupted because the table
// changed under it (NLM_F_DUMP_INTR): a busy host changes addresses while a
// fence reads them.
func retryDump(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// View reads l's addresses now and the host's local routes when first
// needed (see hostnet.View).
func (n *Net) View(l Link) (View, error) {
	addrs, err := n.Addrs(l, 0)
	if err != nil {
		return nil, err
	}
	return &view{n: n, l: l, addrs: addrs}, nil
}

// view implements View over one Net.
type view struct {
	n      *Net
	l      Link
	addrs  []Addr
	routes map[netip.Addr][]LocalRoute // nil until first needed
	// settle lists IPv6 VIPs whose hint is in place but whose kernel route
	// may still appear and shadow it.
	settle []netip.Addr
	hints  map[netip.Addr]netip.Addr // the hint source set for each of settle
	// assigned counts addrs by address, built at the first question.
	assigned map[netip.Addr]int
}

func (v *view) Link() Link { return v.l }

func (v *view) Primary(x vip.VIP) (netip.Addr, error) {
	return PickPrimary(v.l.Name, v.addrs, x)
}

func (v *view) CheckSource(x vip.VIP, src netip.Addr) error {
	return CheckSource(v.l.Name, v.addrs, x, src)
}

func (v *view) CheckRelease(x vip.VIP, removeAddr, added bool) error {
	return CheckRelease(v.l.Name, v.addrs, x, removeAddr, added)
}

func (v *view) IsAssigned(x vip.VIP) (bool, error) {
	if v.assigned == nil {
		v.assigned = make(map[netip.Addr]int, len(v.addrs))
		for _, a := range v.addrs {
			v.assigned[a.Prefix.Addr()]++
		}
	}
	return v.assigned[x.Addr()] > 0, nil
}

// added and removed keep addrs and its index in step.
func (v *view) added(a Addr) {
	v.addrs = append(v.addrs, a)
	if v.assigned != nil {
		v.assigned[a.Prefix.Addr()]++
	}
}

func (v *view) removed(a Addr) {
	if v.assigned != nil {
		v.assigned[a.Prefix.Addr()]--
	}
}

func (v *view) localRoutes(addr netip.Addr) ([]LocalRoute, error) {
	if v.routes == nil {
		all, err := v.n.AllLocalRoutes()
		if err != nil {
			return nil, err
		}
		v.routes = map[netip.Addr][]LocalRoute{}
		for _, r := range all {
			v.routes[r.Dst] = append(v.routes[r.Dst], r)
		}
	}
	return v.routes[addr], nil
}

func (v *view) setRoutes(addr netip.Addr, rs []LocalRoute) {
	if len(rs) == 0 {
		delete(v.routes, addr)
		return
	}
	v.routes[addr] = rs
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

// Assigned lists every address assigned on any interface: one dump.
func (n *Net) Assigned() (map[netip.Addr]bool, error) {
	var list []netlink.Addr
	err := retryDump(func() (err error) {
		list, err = n.h.AddrList(nil, netlink.FAMILY_ALL)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	set := make(map[netip.Addr]bool, len(list))
	for _, a := range list {
		if p, ok := prefixOf(a.IPNet); ok {
			set[p.Addr()] = true
		}
	}
	return set, nil
}

// AssignedAnywhere reports whether addr is assigned on any interface.
func (n *Net) AssignedAnywhere(addr netip.Addr) (bool, error) {
	set, err := n.Assigned()
	return set[addr], err
}

// AddVIP assigns v to l. It is idempotent.
func (n *Net) AddVIP(l Link, v vip.VIP) error {
	return n.with(l, func(w View) error { return w.AddVIP(v) })
}

// with runs f on a fresh view of l and settles it.
func (n *Net) with(l Link, f func(View) error) error {
	w, err := n.View(l)
	if err != nil {
		return err
	}
	if err := f(w); err != nil {
		return err
	}
	return w.Settle()
}

// AddVIP assigns the VIP. It is idempotent. IPv6 VIPs skip duplicate
// address detection (the VRRP election already decided the owner, and a
// tentative address cannot be announced) and are deprecated (preferred
// lifetime 0) so the kernel never picks them as a source, as keepalived
// does.
func (v *view) AddVIP(x vip.VIP) error {
	a := &netlink.Addr{IPNet: ipNet(x.Prefix())}
	if x.Is6() {
		a.Flags = unix.IFA_F_NODAD
		a.PreferedLft = 0
		a.ValidLft = 0xffffffff // forever
	}
	err := v.n.h.AddrAdd(dummy(v.l), a)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", x.Prefix(), v.l.Name, err)
	}
	if ok, _ := v.IsAssigned(x); !ok {
		v.added(Addr{Prefix: x.Prefix(), Deprecated: x.Is6(), Global: true})
	}
	return nil
}

// DelVIP removes v's address from l, whatever prefix length it was added
// with. It is idempotent.
func (n *Net) DelVIP(l Link, v vip.VIP) error {
	return n.with(l, func(w View) error { return w.(*view).delVIP(v) })
}

func (v *view) delVIP(x vip.VIP) error {
	kept := v.addrs[:0]
	var err error
	for _, a := range v.addrs {
		if a.Prefix.Addr() != x.Addr() {
			kept = append(kept, a)
			continue
		}
		if derr := v.n.h.AddrDel(dummy(v.l), &netlink.Addr{IPNet: ipNet(a.Prefix)}); derr != nil && !errors.Is(derr, unix.EADDRNOTAVAIL) {
			if err == nil {
				err = fmt.Errorf("delete %s from %s: %w", a.Prefix, v.l.Name, derr)
			}
			kept = append(kept, a)
			continue
		}
		v.removed(a)
	}
	v.addrs = kept
	return err
}

// LocalRoutes lists the local-table host routes for addr (all of them:
// the kernel's, vipkit's and any other).
func (n *Net) LocalRoutes(addr netip.Addr) ([]LocalRoute, error) {
	fam := unix.AF_INET
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: ipNet(netip.PrefixFrom(addr, addr.BitLen()))}
	var rs []netlink.Route
	err := retryDump(func() (err error) {
		rs, err = n.h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list local routes for %s: %w", addr, err)
	}
	return n.toLocal(rs), nil
}

// AllLocalRoutes lists every local-type host route in the local table.
func (n *Net) AllLocalRoutes() ([]LocalRoute, error) {
	return n.localRoutesOf(netlink.FAMILY_ALL)
}

// Hinted lists the addresses whose local route carries vipkit's source
// hint (HintProtocol): one dump, no interface lookups (a scrape's read).
func (n *Net) Hinted() (map[netip.Addr]bool, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Protocol: HintProtocol}
	var rs []netlink.Route
	err := retryDump(func() (err error) {
		rs, err = n.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE|netlink.RT_FILTER_PROTOCOL)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list local routes: %w", err)
	}
	out := make(map[netip.Addr]bool, len(rs))
	for _, r := range rs {
		if r.Dst == nil || r.Protocol != HintProtocol {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() == p.Addr().BitLen() {
			out[p.Addr()] = true
		}
	}
	return out, nil
}

func (n *Net) localRoutesOf(family int) ([]LocalRoute, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL}
	var rs []netlink.Route
	err := retryDump(func() (err error) {
		rs, err = n.h.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
		return err
	})
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
func (n *Net) SetHint(l Link, v vip.VIP, src netip.Addr) error {
	return n.with(l, func(w View) error { return w.SetHint(v, src) })
}

// SetHint makes local connections to the VIP use src as their source.
//
// IPv4: the kernel's route is replaced in place (same table, destination,
// metric). IPv6: user space cannot create a metric-0 route, so the hint is
// added at the default metric and the kernel's metric-0 route is deleted
// after it, never leaving the VIP without a local route; Settle deals with
// a kernel route that appears only later.
func (v *view) SetHint(x vip.VIP, src netip.Addr) error {
	before, err := v.localRoutes(x.Addr())
	if err != nil {
		return err
	}
	// Once vipkit has swapped the kernel's IPv6 route (a hint or a stand-in
	// is there), the kernel never puts it back; only a fresh address gets one.
	swapped := false
	for _, r := range before {
		swapped = swapped || r.IsHint()
	}
	hint := v.n.hintRoute(v.l, x, src)
	if err := v.n.h.RouteReplace(hint); err != nil {
		return fmt.Errorf("set source hint %s for %s on %s: %w", src, x.Addr(), v.l.Name, err)
	}
	mine := LocalRoute{Dst: x.Addr(), Dev: v.l.Name, LinkIndex: v.l.Index, Src: src, Protocol: HintProtocol}
	if !x.Is6() {
		// Replaced in place: the route with the same metric is now the hint.
		var rs []LocalRoute
		for _, r := range before {
			if r.Metric != 0 || r.LinkIndex != v.l.Index {
				rs = append(rs, r)
			}
		}
		v.setRoutes(x.Addr(), append(rs, mine))
		return nil
	}
	mine.Metric = hintMetric6
	kernelSeen := false
	for _, r := range before {
		if r.IsHint() && r.Src == src && r.Metric == hintMetric6 {
			continue // the hint just installed
		}
		kernelSeen = kernelSeen || r.IsKernel()
		if err := v.n.delete(r); err != nil {
			return fmt.Errorf("set source hint for %s: remove other local route %s: %w", x.Addr(), r, err)
		}
	}
	v.setRoutes(x.Addr(), []LocalRoute{mine})
	if !kernelSeen && !swapped && v.l.Up {
		// The kernel inserts an IPv6 address's local route from a work queue,
		// after the address is added (duplicate address detection completing,
		// even with nodad): Settle waits for it, once for the whole batch.
		if v.hints == nil {
			v.hints = map[netip.Addr]netip.Addr{}
		}
		if _, ok := v.hints[x.Addr()]; !ok {
			v.settle = append(v.settle, x.Addr())
		}
		v.hints[x.Addr()] = src
	}
	return nil
}

// kernelRouteWait bounds the wait for the kernel's IPv6 local routes.
const kernelRouteWait = 250 * time.Millisecond

// Settle waits, briefly and once for all pending VIPs, for the kernel's
// IPv6 local routes to appear, and deletes each so it cannot shadow the
// hint. One dump per round, whatever the number of VIPs.
func (v *view) Settle() error {
	deadline := time.Now().Add(kernelRouteWait)
	for len(v.settle) > 0 {
		all, err := v.n.localRoutesOf(unix.AF_INET6)
		if err != nil {
			return err
		}
		byDst := map[netip.Addr][]LocalRoute{}
		for _, r := range all {
			byDst[r.Dst] = append(byDst[r.Dst], r)
		}
		var still []netip.Addr
		for _, a := range v.settle {
			kernelSeen := false
			for _, r := range byDst[a] {
				if r.IsHint() && r.Src == v.hints[a] && r.Metric == hintMetric6 {
					continue
				}
				kernelSeen = kernelSeen || r.IsKernel()
				if err := v.n.delete(r); err != nil {
					return fmt.Errorf("set source hint for %s: remove other local route %s: %w", a, r, err)
				}
			}
			if !kernelSeen {
				still = append(still, a)
			}
		}
		v.settle = still
		if len(still) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	v.settle, v.hints = nil, nil
	return nil
}

// ClearHint removes the hint for v (see view.ClearHint).
func (n *Net) ClearHint(l Link, v vip.VIP) error {
	return n.with(l, func(w View) error { return w.ClearHint(v) })
}

// ClearHint removes the hint for the VIP. If it is still assigned the
// kernel's route (source = VIP) is put back first: deleting a replaced route
// would leave an assigned VIP with no local route at all, and the host would
// stop accepting traffic for it. IPv6 cannot restore the kernel's metric-0
// route, so an equivalent route without a source takes its place; it is not
// tied to the address, which is why fenced's route guard watches address
// deletions.
func (v *view) ClearHint(x vip.VIP) error {
	routes, err := v.localRoutes(x.Addr())
	if err != nil {
		return err
	}
	routes = slices.Clone(routes)
	assigned, _ := v.IsAssigned(x)
	if assigned {
		restored, err := v.n.restoreKernelRoute(v.l, x, routes)
		if err != nil {
			return err
		}
		if restored != nil {
			routes = append(routes, *restored)
		}
	}
	var kept []LocalRoute
	for _, r := range routes {
		if !r.IsHint() || !r.Src.IsValid() {
			kept = append(kept, r)
			continue // not a hint (an IPv6 stand-in has no source)
		}
		// IPv4 restore replaced the hint in place; deleting now would find
		// nothing (ESRCH), which delete tolerates.
		if err := v.n.delete(r); err != nil {
			return fmt.Errorf("clear source hint for %s: %w", x.Addr(), err)
		}
	}
	v.setRoutes(x.Addr(), kept)
	return nil
}

// restoreKernelRoute puts the kernel's local route back for an assigned VIP
// and returns it, or nil when one is there already.
func (n *Net) restoreKernelRoute(l Link, v vip.VIP, routes []LocalRoute) (*LocalRoute, error) {
	for _, r := range routes {
		if !r.IsHint() && r.LinkIndex == l.Index {
			return nil, nil // the kernel's own route is still there
		}
		if r.IsHint() && !r.Src.IsValid() {
			return nil, nil // an IPv6 stand-in is already there
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
	lr := LocalRoute{Dst: v.Addr(), Dev: l.Name, LinkIndex: l.Index, Protocol: kernelProtocol}
	if !v.Is6() {
		// Exactly the route the kernel creates, so that the kernel deletes
		// it again together with the address.
		r.Src = v.Addr().AsSlice()
		lr.Src = v.Addr()
	} else {
		// A stand-in, vipkit's own so that cleanup can find it once the
		// address goes; metric 1 wins over the hint until that is deleted.
		r.Scope = netlink.SCOPE_UNIVERSE
		r.Protocol = HintProtocol
		r.Priority = 1
		lr.Protocol, lr.Metric = HintProtocol, 1
	}
	if err := n.h.RouteReplace(r); err != nil {
		return nil, fmt.Errorf("restore kernel local route for %s on %s: %w", v.Addr(), l.Name, err)
	}
	return &lr, nil
}

// Release removes an owned VIP (see view.Release).
func (n *Net) Release(l Link, v vip.VIP) error {
	return n.with(l, func(w View) error { return w.Release(v) })
}

// Release removes the VIP in the only order that leaves nothing behind
// (DESIGN §2): vipkit's routes for it first, then the address. Deleting the
// address first would leave the hint, and the host would go on treating the
// VIP as local and answering ARP for it.
func (v *view) Release(x vip.VIP) error {
	return v.ReleaseAll([]vip.VIP{x})[0]
}

// ReleaseAll removes the hint routes of every VIP, then every address: each
// VIP still loses its route before its address (see View.ReleaseAll).
//
// Two things keep the kernel's side linear. An IPv6 /128 address comes with
// a kernel prefix route (main table, metric 256), and the kernel walks the
// whole IPv6 routing table for each address it deletes: those routes go
// with the hints, first (the kernel would delete each with its address a
// moment later). And addresses are deleted in the order the kernel lists
// them, so that each is found at the head of the link's address list.
func (v *view) ReleaseAll(xs []vip.VIP) []error {
	errs := v.DropRoutes(xs)
	var rest []vip.VIP
	var at []int
	for i, x := range xs {
		if errs[i] == nil { // a VIP whose hint is still there keeps its address (I1)
			rest, at = append(rest, x), append(at, i)
		}
	}
	for k, err := range v.DropAddrs(rest) {
		errs[at[k]] = err
	}
	return errs
}

// DropRoutes deletes the VIPs' hint routes and IPv6 prefix routes.
func (v *view) DropRoutes(xs []vip.VIP) []error {
	errs := make([]error, len(xs))
	for i, x := range xs {
		routes, err := v.localRoutes(x.Addr())
		if err != nil {
			errs[i] = err
			continue
		}
		var kept []LocalRoute
		for _, r := range routes {
			if !r.IsHint() {
				kept = append(kept, r)
				continue
			}
			if err := v.n.delete(r); err != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("release %s: delete %s: %w", x.Addr(), r, err)
				kept = append(kept, r)
			}
		}
		v.setRoutes(x.Addr(), kept)
	}
	for i, x := range xs {
		if errs[i] == nil && x.Is6() && x.Prefix().Bits() == 128 {
			if err := v.n.deletePrefixRoute(v.l, x); err != nil {
				errs[i] = fmt.Errorf("release %s: delete its prefix route: %w", x.Addr(), err)
			}
		}
	}
	return errs
}

// DropAddrs deletes the VIPs' addresses in the kernel's list order, so that
// each is found at the head of the link's address list.
func (v *view) DropAddrs(xs []vip.VIP) []error {
	errs := make([]error, len(xs))
	index := make(map[netip.Addr]int, len(xs))
	for i, x := range xs {
		index[x.Addr()] = i
	}
	kept := v.addrs[:0]
	for _, a := range v.addrs {
		i, ok := index[a.Prefix.Addr()]
		if !ok {
			kept = append(kept, a)
			continue
		}
		if err := v.n.h.AddrDel(dummy(v.l), &netlink.Addr{IPNet: ipNet(a.Prefix)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("delete %s from %s: %w", a.Prefix, v.l.Name, err)
			}
			kept = append(kept, a)
			continue
		}
		v.removed(a)
	}
	v.addrs = kept
	for a, i := range index {
		if errs[i] != nil {
			continue
		}
		// The kernel deletes its own route with the address.
		var rest []LocalRoute
		for _, r := range v.routes[a] {
			if !r.IsKernel() {
				rest = append(rest, r)
			}
		}
		v.setRoutes(a, rest)
	}
	return errs
}

// deletePrefixRoute removes the kernel's prefix route of an IPv6 /128
// address (main table, metric 256), if it is there.
func (n *Net) deletePrefixRoute(l Link, v vip.VIP) error {
	err := n.h.RouteDel(&netlink.Route{
		Table:     unix.RT_TABLE_MAIN,
		Dst:       ipNet(v.Prefix()),
		LinkIndex: l.Index,
		Protocol:  kernelProtocol,
		Priority:  ip6PrefixMetric,
	})
	if err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// ip6PrefixMetric is the metric of the kernel's prefix routes for IPv6
// addresses (IP6_RT_PRIO_ADDRCONF).
const ip6PrefixMetric = 256

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
// hook's), so deliberate AnyIP routes are left alone. Two dumps, whatever
// the number of routes.
func (n *Net) Orphans() ([]LocalRoute, error) {
	routes, err := n.AllLocalRoutes()
	if err != nil {
		return nil, err
	}
	var assigned map[netip.Addr]bool
	var out []LocalRoute
	for _, r := range routes {
		if r.IsKernel() && !r.Dst.Is6() {
			continue
		}
		hintShaped := r.IsHint() || (r.Src.IsValid() && r.Src != r.Dst)
		if !hintShaped {
			continue
		}
		if assigned == nil {
			if assigned, err = n.Assigned(); err != nil {
				return nil, err
			}
		}
		if !assigned[r.Dst] {
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
