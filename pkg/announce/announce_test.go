package announce

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"

	"github.com/vipkit/vipkit/pkg/vip"
)

var testMAC = net.HardwareAddr{0x02, 0, 0x5e, 0, 0x01, 0x0b}

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestScheduleOffsets(t *testing.T) {
	tests := []struct {
		name  string
		s     Schedule
		want  []time.Duration
		now   int
		later []time.Duration
	}{
		{"burst only", Schedule{Count: 3}, ms(0, 0, 0), 3, nil},
		{"spaced burst", Schedule{Count: 3, Interval: 100 * time.Millisecond}, ms(0, 100, 200), 1, ms(100, 200)},
		{"burst and refresh", Schedule{Count: 2, RefreshEvery: time.Second, RefreshFor: 3 * time.Second}, ms(0, 0, 1000, 2000, 3000), 2, ms(1000, 2000, 3000)},
		{"refresh disabled by zero duration", Schedule{Count: 1, RefreshEvery: time.Second}, ms(0), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Offsets(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Offsets = %v, want %v", got, tt.want)
			}
			now, later := tt.s.Split()
			if now != tt.now || !reflect.DeepEqual(later, tt.later) {
				t.Errorf("Split = %d, %v; want %d, %v", now, later, tt.now, tt.later)
			}
		})
	}
}

func TestGARPFrames(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.100")
	frames, err := GARPFrames(testMAC, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 {
		t.Fatalf("%d frames, want request and reply", len(frames))
	}
	for i, wantOp := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		var f ethernet.Frame
		if err := f.UnmarshalBinary(frames[i]); err != nil {
			t.Fatal(err)
		}
		if f.EtherType != ethernet.EtherTypeARP || !reflect.DeepEqual(f.Destination, ethernet.Broadcast) || !reflect.DeepEqual(f.Source, testMAC) {
			t.Errorf("frame %d header = %v -> %v type %v", i, f.Source, f.Destination, f.EtherType)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if p.Operation != wantOp || p.SenderIP != addr || p.TargetIP != addr || !reflect.DeepEqual(p.SenderHardwareAddr, testMAC) {
			t.Errorf("frame %d ARP = %+v", i, p)
		}
		// Linux treats a reply as gratuitous only when THA equals SHA.
		if wantOp == arp.OperationReply && !reflect.DeepEqual(p.TargetHardwareAddr, testMAC) {
			t.Errorf("reply target MAC = %v, want the sender's", p.TargetHardwareAddr)
		}
	}
	if _, err := GARPFrames(testMAC, netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("GARP for an IPv6 address accepted")
	}
}

func TestNeighborAdvertisement(t *testing.T) {
	addr := netip.MustParseAddr("2001:db8::100")
	na, err := NeighborAdvertisement(testMAC, addr, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ndp.MarshalMessage(na)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*ndp.NeighborAdvertisement)
	if !got.Override || got.Solicited || got.Router || got.TargetAddress != addr {
		t.Errorf("NA flags/target = %+v", got)
	}
	if len(got.Options) != 1 || !reflect.DeepEqual(got.Options[0].(*ndp.LinkLayerAddress).Addr, testMAC) {
		t.Errorf("NA options = %+v", got.Options)
	}
	if _, err := NeighborAdvertisement(testMAC, netip.MustParseAddr("192.0.2.1"), false); err == nil {
		t.Error("NA for an IPv4 address accepted")
	}
}

type recSender struct {
	mu   sync.Mutex
	sent []string
	held *bool
}

func (r *recSender) Send(v vip.VIP) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil && !*r.held {
		return errors.New("sent outside the gate")
	}
	r.sent = append(r.sent, v.String())
	return nil
}

// fakeGate lets through what allow returns for round i.
type fakeGate struct {
	round int
	allow func(round int) []vip.VIP
	held  bool
}

func (g *fakeGate) Begin(context.Context) ([]vip.VIP, func(), error) {
	vips := g.allow(g.round)
	g.round++
	g.held = true
	return vips, func() { g.held = false }, nil
}

func TestRunSendsOnlyThroughTheGate(t *testing.T) {
	a, b := vip.MustParse("192.0.2.100"), vip.MustParse("2001:db8::100")
	g := &fakeGate{allow: func(round int) []vip.VIP {
		switch round {
		case 0, 1:
			return []vip.VIP{a, b}
		case 2:
			return []vip.VIP{b} // a was released
		}
		return nil // nothing left: stop
	}}
	s := &recSender{held: &g.held}
	if err := Run(context.Background(), s, g, time.Now(), ms(0, 1, 2, 3, 4, 5)); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.100", "2001:db8::100", "192.0.2.100", "2001:db8::100", "2001:db8::100"}
	if !reflect.DeepEqual(s.sent, want) {
		t.Fatalf("sent %v, want %v", s.sent, want)
	}
	if g.round != 4 {
		t.Fatalf("gate consulted %d times, want 4 (stop at the first empty round)", g.round)
	}
	if g.held {
		t.Fatal("gate left held")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	g := &fakeGate{allow: func(int) []vip.VIP { return []vip.VIP{vip.MustParse("192.0.2.100")} }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, &recSender{}, g, time.Now(), ms(0, 60000)) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
