package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

const (
	ethARP  = 0x0806
	ethIPv6 = 0x86dd
)

// naFilter passes only ICMPv6 Neighbor Advertisements (no extension
// headers, as every NA sender uses), so that the socket is not woken for
// every IPv6 packet on a busy host.
var naFilter = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 12, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ethIPv6, SkipTrue: 5},
	bpf.LoadAbsolute{Off: 20, Size: 1},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 58, SkipTrue: 3},
	bpf.LoadAbsolute{Off: 54, Size: 1},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 136, SkipTrue: 1},
	bpf.RetConstant{Val: 1 << 16},
	bpf.RetConstant{Val: 0},
}

// ListenClaims reports ARP and NA frames on dev in which a host other than
// this one announces an address, until ctx ends.
func ListenClaims(ctx context.Context, dev string) (<-chan Claim, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("listen for claims on %s: %w", dev, err)
	}
	arpConn, err := packet.Listen(ifi, packet.Raw, ethARP, nil)
	if err != nil {
		return nil, fmt.Errorf("listen for ARP on %s: %w", dev, err)
	}
	naConn, err := packet.Listen(ifi, packet.Raw, ethIPv6, nil)
	if err == nil {
		var prog []bpf.RawInstruction
		if prog, err = bpf.Assemble(naFilter); err == nil {
			err = naConn.SetBPF(prog)
		}
		if err != nil {
			naConn.Close()
		}
	}
	if err != nil {
		arpConn.Close()
		return nil, fmt.Errorf("listen for neighbor advertisements on %s: %w", dev, err)
	}
	out := make(chan Claim, 64)
	done := make(chan struct{}, 2)
	read := func(c *packet.Conn, parse func([]byte) (netip.Addr, net.HardwareAddr, bool)) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 1600)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					select {
					case <-ctx.Done():
					default:
						time.Sleep(10 * time.Millisecond) // a transient error must not spin
						continue
					}
				}
				return
			}
			a, mac, ok := parse(buf[:n])
			if !ok || bytes.Equal(mac, ifi.HardwareAddr) {
				continue // not a claim, or our own
			}
			select {
			case out <- Claim{Dev: dev, Addr: a, MAC: mac, At: time.Now()}:
			default: // a flood of claims needs only one answer
			}
		}
	}
	go read(arpConn, parseARPClaim)
	go read(naConn, parseNAClaim)
	// The readers stop when their sockets close.
	go func() {
		<-ctx.Done()
		arpConn.Close()
		naConn.Close()
		<-done
		<-done
		close(out)
	}()
	return out, nil
}

// parseARPClaim accepts a frame in which the sender announces its own
// address: a gratuitous request (sender = target) or any reply.
func parseARPClaim(b []byte) (netip.Addr, net.HardwareAddr, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return netip.Addr{}, nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return netip.Addr{}, nil, false
	}
	if !p.SenderIP.IsValid() || p.SenderIP.IsUnspecified() {
		return netip.Addr{}, nil, false // address probes claim nothing
	}
	if p.Operation == arp.OperationReply || p.SenderIP == p.TargetIP {
		return p.SenderIP, p.SenderHardwareAddr, true
	}
	return netip.Addr{}, nil, false
}

// parseNAClaim accepts a Neighbor Advertisement; the claimant is its
// target link-layer address, or the frame's source.
func parseNAClaim(b []byte) (netip.Addr, net.HardwareAddr, bool) {
	if len(b) < 14+40+24 {
		return netip.Addr{}, nil, false
	}
	m, err := ndp.ParseMessage(b[14+40:])
	if err != nil {
		return netip.Addr{}, nil, false
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		return netip.Addr{}, nil, false
	}
	mac := net.HardwareAddr(b[6:12])
	for _, o := range na.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
			mac = l.Addr
		}
	}
	return na.TargetAddress, mac, true
}
