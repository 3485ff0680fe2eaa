package guard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/netnstest"
)

// Real frames: a peer's GARP and NA for our VIP are claims; our own
// announcements and ordinary ARP requests are not.
func TestPrivilegedListenClaims(t *testing.T) {
	node, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, node, "eth0", peer, "eth0")
	node.AddAddr(t, "eth0", "192.0.2.11/24")
	peer.AddAddr(t, "eth0", "192.0.2.12/24")
	peer.AddAddr(t, "eth0", "192.0.2.100/32")
	peer.AddAddr(t, "eth0", "2001:db8::100/128")
	node.AddAddr(t, "eth0", "192.0.2.101/32")
	peerMAC := strings.TrimSpace(peer.Exec(t, "cat", "/sys/class/net/eth0/address"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var claims <-chan Claim
	if err := node.Do(func() (err error) { claims, err = ListenClaims(ctx, "eth0"); return }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	// Not claims: our own announcement, and a plain ARP request (ping).
	if err := node.Do(func() error {
		s, err := announce.NewLinkSender("eth0")
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Send(vip.MustParse("192.0.2.101"))
	}); err != nil {
		t.Fatal(err)
	}
	peer.Exec(t, "ping", "-c1", "-W1", "192.0.2.11")
	// Claims: the peer announces 192.0.2.100 and 2001:db8::100.
	if err := peer.Do(func() error {
		s, err := announce.NewLinkSender("eth0")
		if err != nil {
			return err
		}
		defer s.Close()
		return announce.SendAll(s, []vip.VIP{vip.MustParse("192.0.2.100"), vip.MustParse("2001:db8::100")})
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	timeout := time.After(2 * time.Second)
	for len(got) < 2 {
		select {
		case c := <-claims:
			if c.Addr.String() == "192.0.2.101" || c.Addr.String() == "192.0.2.11" {
				t.Fatalf("not a claim: %+v", c)
			}
			got[c.Addr.String()] = c.MAC.String()
		case <-timeout:
			t.Fatalf("claims seen: %v", got)
		}
	}
	for _, a := range []string{"192.0.2.100", "2001:db8::100"} {
		if got[a] != peerMAC {
			t.Fatalf("claim for %s by %q, want %s", a, got[a], peerMAC)
		}
	}
}
