package watch

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// routeKey is one local-table route to a watched address.
type routeKey struct {
	dst       netip.Addr
	src       netip.Addr
	proto     int
	link      int
	prio, tos int
}

// routeMsg is what a route notification says of a local-table route.
type routeMsg struct {
	routeKey
	table   int
	add     bool
	replace bool // NLM_F_REPLACE: it replaces the route with its dst, prio and tos
}

// routeHost is one host whose local routes to some addresses are
// watched: fed by the observer's one socket (addrs.go), in kernel order.
type routeHost struct {
	o     *Observer
	name  string
	ns    Namespace
	want  map[netip.Addr]bool
	names func(int) string

	mu    sync.Mutex
	known map[routeKey]bool
	seen  map[routeKey]bool // reported by a notification: a dump does not override it
}

// WatchLocalRoutes records the local-table routes to ips on host: the
// kernel's `local VIP … src VIP`, keepalived's virtual_routes and
// vipkit's source hint. A route replaced in place (NLM_F_REPLACE) is
// recorded as the old one's removal and the new one's addition.
func (o *Observer) WatchLocalRoutes(host string, ns Namespace, ips []netip.Addr) error {
	feed, err := o.addrFeed()
	if err != nil {
		return fmt.Errorf("watch local routes on %s: %w", host, err)
	}
	id, err := nsidOf(ns)
	if err != nil {
		return fmt.Errorf("watch local routes on %s: %w", host, err)
	}
	r := &routeHost{o: o, name: host, ns: ns, want: map[netip.Addr]bool{}, names: linkNames(ns), known: map[routeKey]bool{}, seen: map[routeKey]bool{}}
	for _, ip := range ips {
		r.want[ip] = true
	}
	feed.mu.Lock()
	feed.routes[id] = r
	feed.mu.Unlock()
	return r.resync(o.TL.Now(), false)
}

// record applies one route message; a dump's (fromDump) does not
// override what a notification already said.
func (r *routeHost) record(at time.Duration, m routeMsg, fromDump bool) {
	if m.table != unix.RT_TABLE_LOCAL || !r.want[m.dst] {
		return
	}
	k := m.routeKey
	r.mu.Lock()
	if fromDump && r.seen[k] {
		r.mu.Unlock()
		return
	}
	if !fromDump {
		r.seen[k] = true
	}
	var events []observe.Event
	if m.add && m.replace {
		for old, present := range r.known {
			if present && old.dst == k.dst && old.prio == k.prio && old.tos == k.tos && old != k {
				r.known[old] = false
				events = append(events, observe.Event{At: at, Kind: observe.KindRoute, Host: r.name, Source: "netlink", IP: old.dst, Src: old.src, Proto: old.proto, Dev: r.names(old.link), Present: false, Text: "replaced"})
			}
		}
	}
	if r.known[k] != m.add {
		r.known[k] = m.add
		events = append(events, observe.Event{At: at, Kind: observe.KindRoute, Host: r.name, Source: "netlink", IP: k.dst, Src: k.src, Proto: k.proto, Dev: r.names(k.link), Present: m.add})
	}
	r.mu.Unlock()
	for _, e := range events {
		r.o.TL.Add(e)
	}
}

// resync records the local routes h has now. After lost notifications
// (replace) the dump is the truth: known routes missing from it are
// recorded as removed.
func (r *routeHost) resync(at time.Duration, replace bool) error {
	list, err := r.ns.Handle().RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_LOCAL}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list local routes: %w", err)
	}
	now := map[routeKey]bool{}
	for _, rt := range list {
		if rt.Dst == nil {
			continue
		}
		dst, ok := netip.AddrFromSlice(rt.Dst.IP)
		if !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(rt.Src)
		m := routeMsg{routeKey: routeKey{dst: dst.Unmap(), src: src.Unmap(), proto: int(rt.Protocol), link: rt.LinkIndex, prio: rt.Priority, tos: rt.Tos}, table: rt.Table, add: true}
		now[m.routeKey] = true
		r.record(at, m, !replace)
	}
	if !replace {
		return nil
	}
	r.mu.Lock()
	gone := vanished(r.known, now)
	r.mu.Unlock()
	for _, k := range gone {
		r.record(at, routeMsg{routeKey: k, table: unix.RT_TABLE_LOCAL}, false)
	}
	return nil
}

// parseRouteMsg reads an RTM_NEWROUTE/RTM_DELROUTE message.
func parseRouteMsg(m syscall.NetlinkMessage) (routeMsg, bool) {
	if len(m.Data) < unix.SizeofRtMsg {
		return routeMsg{}, false
	}
	rm := nl.DeserializeRtMsg(m.Data)
	attrs, err := nl.ParseRouteAttr(m.Data[unix.SizeofRtMsg:])
	if err != nil {
		return routeMsg{}, false
	}
	out := routeMsg{table: int(rm.Table), add: m.Header.Type == unix.RTM_NEWROUTE, replace: m.Header.Flags&unix.NLM_F_REPLACE != 0}
	out.proto, out.tos = int(rm.Protocol), int(rm.Tos)
	var dst []byte
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_DST:
			dst = a.Value
		case unix.RTA_PREFSRC:
			if ip, ok := netip.AddrFromSlice(a.Value); ok {
				out.src = ip.Unmap()
			}
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				out.link = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_PRIORITY:
			if len(a.Value) >= 4 {
				out.prio = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_TABLE:
			if len(a.Value) >= 4 {
				out.table = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
	}
	ip, ok := netip.AddrFromSlice(dst)
	if !ok {
		return routeMsg{}, false
	}
	out.dst = ip.Unmap()
	return out, true
}
