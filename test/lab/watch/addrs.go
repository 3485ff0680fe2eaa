package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// The address and route events of every host are read from one netlink socket in
// the observer's own namespace (NETLINK_LISTEN_ALL_NSID), not one socket
// per host. The kernel queues each notification on that socket when the
// change happens, so the order in which they are read is the order in
// which the changes happened, whatever the hosts. Stamped by one reader,
// their lab times can be late under CPU pressure but never inverted: one
// node's release and another's claim of a VIP cannot appear to overlap
// because the first node's watcher was starved (they did, with a reader
// per host, when a fence removed 500 addresses at once).

// addrFeed is the observer's one address socket and the hosts it serves.
type addrFeed struct {
	f *os.File

	mu     sync.Mutex
	hosts  map[int32]*addrHost  // by nsid in the observer's namespace
	routes map[int32]*routeHost // by nsid, hosts whose local routes are watched
}

// addrHost is one watched host: its name, interface names and what it
// is known to hold.
type addrHost struct {
	name  string
	ns    Namespace
	names func(int) string
	known map[addrKey]bool // present or not
}

type addrKey struct {
	prefix netip.Prefix
	link   int
}

// WatchAddrs records every address added to or removed from host's
// interfaces (loopback and IPv6 link-local excluded), starting with the
// ones it holds now.
func (o *Observer) WatchAddrs(host string, ns Namespace) error {
	feed, err := o.addrFeed()
	if err != nil {
		return fmt.Errorf("watch addresses on %s: %w", host, err)
	}
	id, err := nsidOf(ns)
	if err != nil {
		return fmt.Errorf("watch addresses on %s: %w", host, err)
	}
	h := &addrHost{name: host, ns: ns, names: linkNames(ns), known: map[addrKey]bool{}}
	feed.mu.Lock()
	feed.hosts[id] = h
	feed.mu.Unlock()
	// Registered first, dumped second: a change in between is seen by
	// the socket, and the dump only adds what is still unknown.
	return o.resync(feed, h, false)
}

// addrFeed opens the observer's address socket on first use and starts
// its reader.
func (o *Observer) addrFeed() (*addrFeed, error) {
	o.addrOnce.Do(func() {
		f, err := openAllNsidSocket()
		if err != nil {
			o.addrErr = err
			return
		}
		o.addrs = &addrFeed{f: f, hosts: map[int32]*addrHost{}, routes: map[int32]*routeHost{}}
		o.onClose(func() { f.Close() })
		o.goRun(func() { o.readAddrs(o.addrs) })
	})
	return o.addrs, o.addrErr
}

// openAllNsidSocket opens a non-blocking rtnetlink socket subscribed to
// address changes in every namespace that has an id in this one.
func openAllNsidSocket() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	fail := func(op string, err error) (*os.File, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s on netlink socket: %w", op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4*netlinkRcvBuf); err != nil {
		return fail("set SO_RCVBUFFORCE", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		return fail("set NETLINK_LISTEN_ALL_NSID", err)
	}
	groups := uint32(unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return fail("bind", err)
	}
	return os.NewFile(uintptr(fd), "netlink-addrs"), nil
}

// nsidOf returns ns's id in the calling namespace, asking the kernel to
// assign one when it has none: notifications reach a LISTEN_ALL_NSID
// socket only from namespaces with an id.
func nsidOf(ns Namespace) (int32, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd := int(ns.NsHandle())
	id, err := netlink.GetNetNsIdByFd(fd)
	if err != nil {
		return 0, fmt.Errorf("get nsid: %w", err)
	}
	if id >= 0 {
		return int32(id), nil
	}
	// -1 asks the kernel to pick a free id.
	if err := netlink.SetNetNsIdByFd(fd, -1); err != nil && !errors.Is(err, unix.EEXIST) {
		return 0, fmt.Errorf("assign nsid: %w", err)
	}
	if id, err = netlink.GetNetNsIdByFd(fd); err != nil || id < 0 {
		return 0, fmt.Errorf("get assigned nsid: %d, %v", id, err)
	}
	return int32(id), nil
}

// readAddrs reads the feed until the observer closes. All messages of
// one read get one stamp; their order is kept by the timeline.
func (o *Observer) readAddrs(feed *addrFeed) {
	rc, err := feed.f.SyscallConn()
	if err != nil {
		o.note("observer", "addresses: %v", err)
		return
	}
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		at := o.TL.Now()
		if err == nil {
			err = rerr
		}
		switch {
		case o.ctx.Err() != nil:
			return
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were dropped: what each host holds now
			// replaces what the lost ones would have said.
			o.note("observer", "addresses and routes: %v, resynchronising every host", err)
			feed.mu.Lock()
			hosts := make([]*addrHost, 0, len(feed.hosts))
			for _, h := range feed.hosts {
				hosts = append(hosts, h)
			}
			routes := make([]*routeHost, 0, len(feed.routes))
			for _, r := range feed.routes {
				routes = append(routes, r)
			}
			feed.mu.Unlock()
			for _, h := range hosts {
				if err := o.resync(feed, h, true); err != nil {
					o.note(h.name, "addresses: %v", err)
				}
			}
			for _, r := range routes {
				if err := r.resync(o.TL.Now(), true); err != nil {
					o.note(r.name, "local routes: %v", err)
				}
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			o.note("observer", "addresses: read: %v", err)
			return
		}
		id, ok := nsidFrom(oob[:oobn])
		if !ok {
			continue // the observer's own namespace
		}
		feed.mu.Lock()
		h, r := feed.hosts[id], feed.routes[id]
		feed.mu.Unlock()
		if h == nil && r == nil {
			continue // another namespace with an id here
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			o.note("observer", "addresses and routes: parse: %v", err)
			continue
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.RTM_NEWADDR, unix.RTM_DELADDR:
				if k, ok := parseAddrMsg(m); ok && h != nil {
					o.recordAddr(feed, h, at, k, m.Header.Type == unix.RTM_NEWADDR, false)
				}
			case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
				if rt, ok := parseRouteMsg(m); ok && r != nil {
					r.record(at, rt, false)
				}
			}
		}
	}
}

// recordAddr adds an event when k's presence on h changes. A dump entry
// (fromDump) does not override what notifications already said.
func (o *Observer) recordAddr(feed *addrFeed, h *addrHost, at time.Duration, k addrKey, present, fromDump bool) {
	ip := k.prefix.Addr()
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return
	}
	feed.mu.Lock()
	was, seen := h.known[k]
	if fromDump && seen {
		feed.mu.Unlock()
		return
	}
	h.known[k] = present
	feed.mu.Unlock()
	if was != present {
		o.TL.Add(observe.Event{At: at, Kind: observe.KindAddr, Host: h.name, Source: "netlink", IP: ip, Prefix: k.prefix, Dev: h.names(k.link), Present: present})
	}
}

// resync records what h holds now. On a first dump (replace false) only
// addresses not yet reported are added; after lost notifications
// (replace true) the dump is the truth and known addresses missing from
// it are recorded as removed.
func (o *Observer) resync(feed *addrFeed, h *addrHost, replace bool) error {
	list, err := h.ns.Handle().AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	at := o.TL.Now()
	now := map[addrKey]bool{}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		k := addrKey{netip.PrefixFrom(ip.Unmap(), ones), a.LinkIndex}
		now[k] = true
		o.recordAddr(feed, h, at, k, true, !replace)
	}
	if !replace {
		return nil
	}
	feed.mu.Lock()
	gone := vanished(h.known, now)
	feed.mu.Unlock()
	for _, k := range gone {
		o.recordAddr(feed, h, at, k, false, false)
	}
	return nil
}

// nsidFrom returns the namespace id a LISTEN_ALL_NSID socket attaches to
// a notification from another namespace.
func nsidFrom(oob []byte) (int32, bool) {
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, c := range cms {
		if c.Header.Level == unix.SOL_NETLINK && c.Header.Type == unix.NETLINK_LISTEN_ALL_NSID && len(c.Data) >= 4 {
			return int32(binary.NativeEndian.Uint32(c.Data)), true
		}
	}
	return 0, false
}

// parseAddrMsg reads an RTM_NEWADDR/RTM_DELADDR message: the address
// (IFA_LOCAL when present, as for a point-to-point peer IFA_ADDRESS is
// the peer), its prefix length and its link.
func parseAddrMsg(m syscall.NetlinkMessage) (addrKey, bool) {
	if (m.Header.Type != unix.RTM_NEWADDR && m.Header.Type != unix.RTM_DELADDR) || len(m.Data) < unix.SizeofIfAddrmsg {
		return addrKey{}, false
	}
	am := nl.DeserializeIfAddrmsg(m.Data)
	attrs, err := nl.ParseRouteAttr(m.Data[unix.SizeofIfAddrmsg:])
	if err != nil {
		return addrKey{}, false
	}
	var local, addr []byte
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFA_LOCAL:
			local = a.Value
		case unix.IFA_ADDRESS:
			addr = a.Value
		}
	}
	if local != nil {
		addr = local
	}
	ip, ok := netip.AddrFromSlice(addr)
	if !ok {
		return addrKey{}, false
	}
	return addrKey{netip.PrefixFrom(ip.Unmap(), int(am.Prefixlen)), int(am.Index)}, true
}

// vanished lists what known says is present and a fresh dump (now) no
// longer has: what notifications lost while the socket overflowed.
func vanished[K comparable](known, now map[K]bool) []K {
	var gone []K
	for k, present := range known {
		if present && !now[k] {
			gone = append(gone, k)
		}
	}
	return gone
}
