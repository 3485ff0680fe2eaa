package announce

import (
	"errors"
	"strings"
	"testing"

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
