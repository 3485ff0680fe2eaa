package netnstest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Deletion is one address or local-table route deletion the kernel
// announced.
type Deletion struct {
	Route    bool // a local-table route; else an address
	Addr     netip.Addr
	Protocol int // routing protocol of a route (vipkit's hints: 86)
}

func (d Deletion) String() string {
	if d.Route {
		return fmt.Sprintf("route %s proto %d", d.Addr, d.Protocol)
	}
	return "address " + d.Addr.String()
}

// Recorder receives the kernel's announcements of deleted addresses and
// routes in one namespace on a single netlink socket, so that the order it
// reports is the order in which the kernel made the changes: no timing is
// involved.
type Recorder struct {
	s *nl.NetlinkSocket
}

// RecordDeletions starts recording in ns; the socket closes at cleanup.
func RecordDeletions(t testing.TB, ns *NS) *Recorder {
	t.Helper()
	s, err := nl.SubscribeAt(ns.handle, netns.None(), unix.NETLINK_ROUTE,
		unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
	if err != nil {
		t.Fatalf("subscribe to address and route events in %s: %v", ns.Name, err)
	}
	// Hundreds of VIPs make thousands of messages: keep them all.
	if err := s.SetReceiveBufferSize(16<<20, true); err != nil {
		t.Fatalf("netlink receive buffer: %v", err)
	}
	t.Cleanup(s.Close)
	return &Recorder{s: s}
}

// Drain returns the deletions announced since the last Drain. The changes
// it is called after have returned, so their messages are queued already;
// it reads until the queue stays empty for a moment. A lost message
// (ENOBUFS) fails the test: the order would not be known.
func (r *Recorder) Drain(t testing.TB) []Deletion {
	t.Helper()
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := r.s.SetReceiveTimeout(&tv); err != nil {
		t.Fatal(err)
	}
	var out []Deletion
	for {
		msgs, _, err := r.s.Receive()
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatalf("receive address and route events: %v", err)
		}
		for _, m := range msgs {
			if d, ok := parseDeletion(m); ok {
				out = append(out, d)
			}
		}
	}
}

func parseDeletion(m syscall.NetlinkMessage) (Deletion, bool) {
	switch m.Header.Type {
	case unix.RTM_DELADDR:
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return Deletion{}, false
		}
		attrs, err := nl.ParseRouteAttrAsMap(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			return Deletion{}, false
		}
		a, ok := attrs[unix.IFA_LOCAL]
		if !ok {
			a, ok = attrs[unix.IFA_ADDRESS]
		}
		if !ok {
			return Deletion{}, false
		}
		addr, _ := netip.AddrFromSlice(a.Value)
		return Deletion{Addr: addr.Unmap()}, true
	case unix.RTM_DELROUTE:
		if len(m.Data) < unix.SizeofRtMsg {
			return Deletion{}, false
		}
		rt := nl.DeserializeRtMsg(m.Data)
		attrs, err := nl.ParseRouteAttrAsMap(m.Data[unix.SizeofRtMsg:])
		if err != nil {
			return Deletion{}, false
		}
		table := uint32(rt.Table)
		if t, ok := attrs[unix.RTA_TABLE]; ok && len(t.Value) == 4 {
			table = nl.NativeEndian().Uint32(t.Value)
		}
		dst, ok := attrs[unix.RTA_DST]
		if table != unix.RT_TABLE_LOCAL || !ok {
			return Deletion{}, false
		}
		addr, _ := netip.AddrFromSlice(dst.Value)
		return Deletion{Route: true, Addr: addr.Unmap(), Protocol: int(rt.Protocol)}, true
	}
	return Deletion{}, false
}

// RouteBeforeAddress checks DESIGN §2's release order for addr in a
// recording: a route of protocol proto for it was deleted, the address was
// deleted after it, and no such route was deleted after the address.
func RouteBeforeAddress(dels []Deletion, addr netip.Addr, proto int) error {
	route, gone := -1, -1
	for i, d := range dels {
		switch {
		case d.Addr != addr:
		case d.Route && d.Protocol == proto:
			if gone >= 0 {
				return fmt.Errorf("%s: route proto %d deleted after the address (events: %s)", addr, proto, list(dels, addr))
			}
			if route < 0 {
				route = i
			}
		case !d.Route && gone < 0:
			gone = i
		}
	}
	switch {
	case route < 0:
		return fmt.Errorf("%s: no route proto %d deleted (events: %s)", addr, proto, list(dels, addr))
	case gone < 0:
		return fmt.Errorf("%s: address not deleted (events: %s)", addr, list(dels, addr))
	}
	return nil
}

func list(dels []Deletion, addr netip.Addr) string {
	var s []string
	for _, d := range dels {
		if d.Addr == addr {
			s = append(s, d.String())
		}
	}
	return strings.Join(s, ", ")
}
