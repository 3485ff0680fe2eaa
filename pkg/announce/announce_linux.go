package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/vip"
)

// allNodes is where unsolicited NAs go (RFC 4861 §7.2.6).
var allNodes = netip.MustParseAddr("ff02::1")

// LinkSender sends on one interface. Sockets are opened on first use per
// family, so a host with only IPv4 VIPs never opens an ICMPv6 socket.
type LinkSender struct {
	ifi    *net.Interface
	raw    *packet.Conn
	nd     *ipv6.PacketConn
	router bool
}

// NewLinkSender prepares to announce on dev.
func NewLinkSender(dev string) (*LinkSender, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("announce on %s: %w", dev, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("announce on %s: not an Ethernet interface (hardware address %q)", dev, ifi.HardwareAddr)
	}
	return &LinkSender{ifi: ifi}, nil
}

// Send announces v once.
func (s *LinkSender) Send(v vip.VIP) error {
	if v.Is6() {
		return s.sendNA(v.Addr())
	}
	return s.sendGARP(v.Addr())
}

func (s *LinkSender) sendGARP(addr netip.Addr) error {
	if s.raw == nil {
		// Protocol 0: send only. The socket never queues received frames.
		c, err := packet.Listen(s.ifi, packet.Raw, 0, nil)
		if err != nil {
			return fmt.Errorf("open raw socket on %s: %w", s.ifi.Name, err)
		}
		s.raw = c
	}
	frames, err := GARPFrames(s.ifi.HardwareAddr, addr)
	if err != nil {
		return err
	}
	for _, f := range frames {
		if _, err := s.raw.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return fmt.Errorf("send gratuitous ARP for %s on %s: %w", addr, s.ifi.Name, err)
		}
	}
	return nil
}

func (s *LinkSender) sendNA(addr netip.Addr) error {
	if s.nd == nil {
		c, err := listenICMPv6()
		if err != nil {
			return fmt.Errorf("open ICMPv6 socket on %s: %w", s.ifi.Name, err)
		}
		s.nd = c
		s.router = forwarding(s.ifi.Name)
	}
	na, err := NeighborAdvertisement(s.ifi.HardwareAddr, addr, s.router)
	if err != nil {
		return err
	}
	b, err := ndp.MarshalMessage(na)
	if err != nil {
		return fmt.Errorf("build neighbor advertisement for %s: %w", addr, err)
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: addr.AsSlice(), IfIndex: s.ifi.Index}
	if _, err := s.nd.WriteTo(b, cm, &net.IPAddr{IP: allNodes.AsSlice(), Zone: s.ifi.Name}); err != nil {
		if (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EADDRNOTAVAIL)) && !assigned(s.ifi, addr) {
			// The source is the VIP: the kernel refuses it (EINVAL) once
			// the address is gone (keepalived left MASTER meanwhile).
			err = fmt.Errorf("%w: %w", ErrNotAssigned, err)
		}
		return fmt.Errorf("send neighbor advertisement for %s on %s: %w", addr, s.ifi.Name, err)
	}
	return nil
}

// listenICMPv6 opens the send-only ICMPv6 socket for neighbour
// advertisements: hop limit 255 (RFC 4861), checksum by the kernel, every
// incoming message filtered out so nothing queues unread, and multicast
// loopback off. The host needs no copy of its own advertisement, and the
// copy is costly: for every multicast packet it sends with loopback on,
// the kernel walks the link's whole multicast list (one solicited-node
// group per IPv6 VIP) to decide whether to loop it back, so announcing N
// VIPs cost N x N (15 % of an up of 2,000 VIPs before this).
func listenICMPv6() (*ipv6.PacketConn, error) {
	ic, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, err
	}
	pc := ic.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	for _, set := range []func() error{
		func() error { return pc.SetHopLimit(ndp.HopLimit) },
		func() error { return pc.SetMulticastHopLimit(ndp.HopLimit) },
		func() error { return pc.SetChecksum(true, 2) },
		func() error { return pc.SetMulticastLoopback(false) },
		func() error { return pc.SetICMPFilter(&f) },
	} {
		if err := set(); err != nil {
			ic.Close()
			return nil, err
		}
	}
	return pc, nil
}

// assigned reports whether addr is on ifi now (asked only after a refusal).
func assigned(ifi *net.Interface, addr netip.Addr) bool {
	as, err := ifi.Addrs()
	if err != nil {
		return true // unknown: keep the error as it is
	}
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == addr {
				return true
			}
		}
	}
	return false
}

// forwarding reports whether dev forwards IPv6, which sets the NA's Router
// flag as keepalived does.
func forwarding(dev string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + dev + "/forwarding")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// DupSockets returns duplicates of the raw packet sockets opened so far,
// for a child process to inherit. Closing an AF_PACKET socket waits for an
// RCU grace period in the kernel (synchronize_net, 5-10 ms here); a hook
// that hands its socket to a detached child exits without paying for it.
func (s *LinkSender) DupSockets() ([]*os.File, error) {
	if s.raw == nil {
		return nil, nil
	}
	rc, err := s.raw.SyscallConn()
	if err != nil {
		return nil, err
	}
	var dup int
	var derr error
	// Close-on-exec: only the child it is passed to explicitly may keep it.
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicate packet socket on %s: %w", s.ifi.Name, derr)
	}
	return []*os.File{os.NewFile(uintptr(dup), "packet:"+s.ifi.Name)}, nil
}

// Idle closes the packet socket until the next send. A long-lived sender
// between rounds holds nothing whose release (an RCU grace period) would
// delay its exit when it is told to stop.
func (s *LinkSender) Idle() {
	if s.raw != nil {
		s.raw.Close()
		s.raw = nil
	}
}

// Close releases the sockets.
func (s *LinkSender) Close() error {
	if s.raw != nil {
		s.raw.Close()
	}
	if s.nd != nil {
		s.nd.Close()
	}
	return nil
}
