// Package announce tells the segment where a VIP lives: gratuitous ARP for
// IPv4, unsolicited Neighbor Advertisements with the Override flag for IPv6.
//
// Announcing an address the host no longer holds poisons switch and router
// caches (DESIGN F2), so nothing here sends on its own: every send goes
// through a Gate that re-checks, under the same lock that deletion takes,
// which addresses may still be announced (I2).
package announce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"

	"github.com/vipkit/vipkit/pkg/vip"
)

// Schedule is when to announce: Count packets Interval apart at once, then
// one every RefreshEvery until RefreshFor has passed since the start.
type Schedule struct {
	Count        int
	Interval     time.Duration
	RefreshEvery time.Duration
	RefreshFor   time.Duration
}

// Offsets lists the send times relative to the start, from the first packet.
func (s Schedule) Offsets() []time.Duration {
	var out []time.Duration
	for i := 0; i < s.Count; i++ {
		out = append(out, time.Duration(i)*s.Interval)
	}
	if s.RefreshEvery <= 0 || s.RefreshFor <= 0 {
		return out
	}
	for t := s.RefreshEvery; t <= s.RefreshFor; t += s.RefreshEvery {
		out = append(out, t)
	}
	return out
}

// Split separates the packets to send at once (those due at offset 0) from
// the rest, which a refresher sends later.
func (s Schedule) Split() (now int, later []time.Duration) {
	for _, o := range s.Offsets() {
		if o == 0 {
			now++
		} else {
			later = append(later, o)
		}
	}
	return now, later
}

// Sender puts announcements on the wire.
type Sender interface {
	Send(v vip.VIP) error
}

// Gate decides, at the moment of sending, which VIPs may be announced, and
// holds off their deletion until release is called. An empty list means
// nothing is left to announce: the caller stops.
type Gate interface {
	Begin(ctx context.Context) (vips []vip.VIP, release func(), err error)
}

// Run sends one announcement per VIP at every offset (measured from start)
// through the gate, and returns when the schedule is done, the gate lets
// nothing through, or ctx ends. Deletion waits for at most one round of
// sends, never for the schedule.
func Run(ctx context.Context, s Sender, g Gate, start time.Time, offsets []time.Duration) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for _, off := range offsets {
		timer.Reset(time.Until(start.Add(off)))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		vips, release, err := g.Begin(ctx)
		if err != nil {
			return err
		}
		if len(vips) == 0 {
			release()
			return nil
		}
		err = SendAll(s, vips)
		release()
		if i, ok := s.(idler); ok {
			i.Idle()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// idler is a Sender that can let go of costly resources between rounds.
type idler interface{ Idle() }

// SendAll announces each VIP once; it tries every VIP and reports the first
// error.
//
// A VIP whose address left the host meanwhile (ErrNotAssigned: keepalived
// deletes its VIPs without vipctl's lock) is skipped, not an error: nothing
// was announced for it, as nothing may be (I2).
func SendAll(s Sender, vips []vip.VIP) error {
	var first error
	for _, v := range vips {
		if err := s.Send(v); err != nil && first == nil && !errors.Is(err, ErrNotAssigned) {
			first = err
		}
	}
	return first
}

// ErrNotAssigned reports an announcement the kernel refused because its
// address is not assigned here (any more).
var ErrNotAssigned = errors.New("address not assigned here")

// GARPFrames builds the two gratuitous ARP frames for addr: a request
// (sender = target = addr, target MAC broadcast, as keepalived sends) and a
// reply (target MAC = sender MAC, which Linux requires to treat a reply as
// gratuitous). Both go to the broadcast address.
func GARPFrames(mac net.HardwareAddr, addr netip.Addr) ([][]byte, error) {
	if !addr.Is4() {
		return nil, fmt.Errorf("build gratuitous ARP for %s: not IPv4", addr)
	}
	var frames [][]byte
	for _, p := range []struct {
		op  arp.Operation
		tha net.HardwareAddr
	}{{arp.OperationRequest, ethernet.Broadcast}, {arp.OperationReply, mac}} {
		pkt, err := arp.NewPacket(p.op, mac, addr, p.tha, addr)
		if err != nil {
			return nil, fmt.Errorf("build gratuitous ARP for %s: %w", addr, err)
		}
		payload, err := pkt.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("build gratuitous ARP for %s: %w", addr, err)
		}
		f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: payload}
		b, err := f.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("build gratuitous ARP frame for %s: %w", addr, err)
		}
		frames = append(frames, b)
	}
	return frames, nil
}

// NeighborAdvertisement builds the unsolicited NA for addr: Override set so
// neighbours replace the cached MAC (without it they only mark it stale),
// Solicited clear, Router as the interface forwards.
func NeighborAdvertisement(mac net.HardwareAddr, addr netip.Addr, router bool) (*ndp.NeighborAdvertisement, error) {
	if !addr.Is6() || addr.Is4In6() {
		return nil, fmt.Errorf("build neighbor advertisement for %s: not IPv6", addr)
	}
	return &ndp.NeighborAdvertisement{
		Router:        router,
		Solicited:     false,
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}, nil
}
