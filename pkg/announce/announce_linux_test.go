package announce

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/netnstest"
)

// A peer that already caches a wrong MAC for the VIP must switch to ours
// after one announcement: GARP for IPv4, NA with Override for IPv6.
func TestPrivilegedAnnouncementMovesPeerCache(t *testing.T) {
	node, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, node, "eth0", peer, "eth0")
	node.AddAddr(t, "eth0", "192.0.2.11/24")
	node.AddAddr(t, "eth0", "2001:db8::11/64")
	peer.AddAddr(t, "eth0", "192.0.2.1/24")
	peer.AddAddr(t, "eth0", "2001:db8::1/64")
	node.AddAddr(t, "eth0", "192.0.2.100/32")
	node.AddAddr(t, "eth0", "2001:db8::100/128")
	mac := strings.TrimSpace(node.Exec(t, "cat", "/sys/class/net/eth0/address"))

	const stale = "02:00:00:00:00:99"
	for _, a := range []string{"192.0.2.100", "2001:db8::100"} {
		peer.Exec(t, "ip", "neigh", "replace", a, "dev", "eth0", "lladdr", stale, "nud", "stale")
	}
	var s *LinkSender
	err := node.Do(func() error {
		var err error
		if s, err = NewLinkSender("eth0"); err != nil {
			return err
		}
		return SendAll(s, []vip.VIP{vip.MustParse("192.0.2.100"), vip.MustParse("2001:db8::100")})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, a := range []string{"192.0.2.100", "2001:db8::100"} {
		netnstest.WaitFor(t, 2e9, "peer neighbour entry for "+a+" to move to "+mac, func() bool {
			out := peer.Exec(t, "ip", "neigh", "show", a, "dev", "eth0")
			return strings.Contains(out, mac)
		})
	}
}

// keepalived deletes its VIPs without vipctl's lock: an NA for an IPv6 VIP
// that just left is refused by the kernel (its source is the VIP) and is
// no failure of the burst, while the IPv4 VIP next to it is announced.
func TestPrivilegedAnnouncementOfAVIPThatLeft(t *testing.T) {
	node, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, node, "eth0", peer, "eth0")
	node.AddAddr(t, "eth0", "192.0.2.11/24")
	node.AddAddr(t, "eth0", "2001:db8::11/64")
	node.AddAddr(t, "eth0", "192.0.2.100/32")
	var s *LinkSender
	var single, all error
	err := node.Do(func() error {
		var err error
		if s, err = NewLinkSender("eth0"); err != nil {
			return err
		}
		single = s.Send(vip.MustParse("2001:db8::100"))
		all = SendAll(s, []vip.VIP{vip.MustParse("2001:db8::100"), vip.MustParse("192.0.2.100")})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !errors.Is(single, ErrNotAssigned) {
		t.Fatalf("NA for an address not assigned: %v, want ErrNotAssigned", single)
	}
	if all != nil {
		t.Fatalf("a burst with a VIP that left failed: %v", all)
	}
}

// The host gets no copy of its own neighbour advertisement: with multicast
// loopback on, the kernel walks the link's whole multicast list (a
// solicited-node group per IPv6 VIP) for every NA it sends, which made
// announcing N VIPs cost N x N. The peer must still receive it.
func TestPrivilegedAdvertisementIsNotLoopedBack(t *testing.T) {
	node, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, node, "eth0", peer, "eth0")
	node.AddAddr(t, "eth0", "2001:db8::11/64")
	peer.AddAddr(t, "eth0", "2001:db8::1/64")
	node.AddAddr(t, "eth0", "2001:db8::100/128")
	listen := func(ns *netnstest.NS) *ipv6.PacketConn {
		t.Helper()
		var pc *ipv6.PacketConn
		if err := ns.Do(func() error {
			c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
			if err != nil {
				return err
			}
			pc = c.IPv6PacketConn()
			var f ipv6.ICMPFilter
			f.SetAll(true)
			f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
			return pc.SetICMPFilter(&f)
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	local, remote := listen(node), listen(peer)
	var s *LinkSender
	if err := node.Do(func() error {
		var err error
		if s, err = NewLinkSender("eth0"); err != nil {
			return err
		}
		return s.Send(vip.MustParse("2001:db8::100"))
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	target := netip.MustParseAddr("2001:db8::100")
	// received reports whether an NA for target arrives on pc within d.
	received := func(pc *ipv6.PacketConn, d time.Duration) bool {
		b := make([]byte, 1500)
		pc.SetReadDeadline(time.Now().Add(d))
		for {
			n, _, _, err := pc.ReadFrom(b)
			if err != nil {
				return false
			}
			if m, err := ndp.ParseMessage(b[:n]); err == nil {
				if na, ok := m.(*ndp.NeighborAdvertisement); ok && na.TargetAddress == target {
					return true
				}
			}
		}
	}
	if !received(remote, 2*time.Second) {
		t.Fatal("the peer received no neighbour advertisement for 2001:db8::100")
	}
	if received(local, 200*time.Millisecond) {
		t.Fatal("the announcing host received a copy of its own advertisement: multicast loopback is on")
	}
}
