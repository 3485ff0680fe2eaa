package watch

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// Capture records the ARP, neighbour discovery and VRRP frames that cross
// the switch: it listens on the bridge device dev inside ns in
// promiscuous mode (a bridge in promiscuous mode hands every forwarded
// frame to its own device as well), so it sees what every port sent, once.
func (o *Observer) Capture(host string, ns Namespace, dev string) error {
	var c *packet.Conn
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			return err
		}
		if err := c.SetPromiscuous(true); err != nil {
			c.Close()
			return err
		}
		if err := enableTimestamps(c); err != nil {
			c.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("capture on %s of %s: %w", dev, host, err)
	}
	o.onClose(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return fmt.Errorf("capture on %s of %s: %w", dev, host, err)
	}
	o.goRun(func() {
		buf := make([]byte, 2048)
		oob := make([]byte, 128)
		for {
			n, at, err := o.readStamped(rc, buf, oob)
			if err != nil {
				if o.ctx.Err() == nil {
					o.note(host, "capture on %s: %v", dev, err)
				}
				return
			}
			if e, ok := ParseFrame(buf[:n]); ok {
				e.At, e.Host, e.Source = at, host, "capture"
				o.TL.Add(e)
			}
		}
	})
	return nil
}

// ParseFrame turns an Ethernet frame into a observe.KindFrame event if it is ARP,
// an IPv6 neighbour solicitation/advertisement, or a VRRP advertisement.
func ParseFrame(b []byte) (observe.Event, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return observe.Event{}, false
	}
	switch f.EtherType {
	case ethernet.EtherTypeARP:
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			return observe.Event{}, false
		}
		e := observe.Event{Kind: observe.KindFrame, MAC: p.SenderHardwareAddr.String(), IP: p.SenderIP, Target: p.TargetIP,
			Gratuitous: p.SenderIP == p.TargetIP}
		switch p.Operation {
		case arp.OperationRequest:
			e.Op = observe.OpARPRequest
		case arp.OperationReply:
			e.Op = observe.OpARPReply
		default:
			return observe.Event{}, false
		}
		return e, true
	case ethernet.EtherTypeIPv6:
		return parseIPv6(f)
	case ethernet.EtherTypeIPv4:
		return parseVRRP4(f)
	}
	return observe.Event{}, false
}

func parseIPv6(f ethernet.Frame) (observe.Event, bool) {
	p := f.Payload
	if len(p) < 40 || p[0]>>4 != 6 || p[6] != unix.IPPROTO_ICMPV6 {
		return observe.Event{}, false
	}
	src, _ := netip.AddrFromSlice(p[8:24])
	m, err := ndp.ParseMessage(p[40:])
	if err != nil {
		return observe.Event{}, false
	}
	e := observe.Event{Kind: observe.KindFrame, MAC: f.Source.String(), IP: src}
	switch m := m.(type) {
	case *ndp.NeighborAdvertisement:
		e.Op, e.Target, e.Override, e.Solicited = observe.OpNA, m.TargetAddress, m.Override, m.Solicited
		// An unsolicited NA announces the target itself, like a GARP.
		e.Gratuitous = !m.Solicited
		for _, o := range m.Options {
			if ll, ok := o.(*ndp.LinkLayerAddress); ok && ll.Direction == ndp.Target {
				e.MAC = ll.Addr.String()
			}
		}
	case *ndp.NeighborSolicitation:
		e.Op, e.Target = observe.OpNS, m.TargetAddress
	default:
		return observe.Event{}, false
	}
	return e, true
}

func parseVRRP4(f ethernet.Frame) (observe.Event, bool) {
	p := f.Payload
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 112 {
		return observe.Event{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8 {
		return observe.Event{}, false
	}
	v := p[ihl:]
	src, _ := netip.AddrFromSlice(p[12:16])
	e := observe.Event{Kind: observe.KindFrame, Op: observe.OpVRRP, MAC: f.Source.String(), IP: src, Priority: int(v[2]),
		Text: fmt.Sprintf("vrid %d version %d", v[1], v[0]>>4)}
	if v[0]>>4 == 3 {
		// VRRPv3: max advert interval in centiseconds, 12 bits.
		e.Text += fmt.Sprintf(" interval %dcs", binary.BigEndian.Uint16(v[4:6])&0x0fff)
	}
	return e, true
}

// enableTimestamps asks the kernel to stamp every received packet
// (SO_TIMESTAMPNS, CLOCK_REALTIME).
func enableTimestamps(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("enable SO_TIMESTAMPNS: %w", serr)
	}
	return nil
}

// readStamped reads one packet and returns its lab time from the kernel's
// receive timestamp (our own clock if the kernel gave none).
func (o *Observer) readStamped(rc syscall.RawConn, buf, oob []byte) (int, time.Duration, error) {
	var n, oobn int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, 0, err
	}
	if ts, ok := kernelStamp(oob[:oobn]); ok {
		return n, o.TL.FromWall(ts), nil
	}
	return n, o.TL.Now(), nil
}

// kernelStamp extracts an SCM_TIMESTAMPNS control message.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}
