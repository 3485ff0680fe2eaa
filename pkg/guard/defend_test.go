package guard

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/vip"
)

type defended struct {
	mu   sync.Mutex
	vips []vip.VIP
	at   []time.Time
}

func (d *defended) announce(_ context.Context, dev string, v vip.VIP) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.vips = append(d.vips, v)
	d.at = append(d.at, time.Now())
	return true, nil
}

func (d *defended) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.vips)
}

var guardedVIP = vip.MustParse("192.0.2.100")

func guarded(a netip.Addr) (string, vip.VIP, bool) {
	if a == guardedVIP.Addr() {
		return "eth0", guardedVIP, true
	}
	return "", vip.VIP{}, false
}

// A burst of claims gets one answer, after the burst; other addresses get
// none.
func TestDefenderAnswersAfterTheBurst(t *testing.T) {
	claims := make(chan Claim)
	rec := &defended{}
	d := &Defender{Claims: claims, Delay: 50 * time.Millisecond, Guarded: guarded, Announce: rec.announce}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}
	var last time.Time
	for i := 0; i < 5; i++ {
		claims <- Claim{Dev: "eth0", Addr: guardedVIP.Addr(), MAC: mac}
		last = time.Now()
		time.Sleep(20 * time.Millisecond) // within the delay: coalesced
	}
	claims <- Claim{Dev: "eth0", Addr: netip.MustParseAddr("192.0.2.7"), MAC: mac}
	deadline := time.Now().Add(2 * time.Second)
	for rec.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.vips) != 1 || rec.vips[0] != guardedVIP {
		t.Fatalf("answers = %v, want one for %s", rec.vips, guardedVIP)
	}
	if rec.at[0].Before(last) {
		t.Fatal("answered before the last claim of the burst")
	}
}

func TestParseClaims(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}
	frames, err := announce.GARPFrames(mac, guardedVIP.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		a, m, ok := parseARPClaim(f)
		if !ok || a != guardedVIP.Addr() || m.String() != mac.String() {
			t.Fatalf("GARP %d: %v %v %v", i, a, m, ok)
		}
	}
}

// A claim for a VIP this host does not hold (it is the rightful owner's
// announcement) is not reported as defended.
func TestDefenderReportsOnlyWhatItSent(t *testing.T) {
	claims := make(chan Claim)
	var defends int
	d := &Defender{Claims: claims, Delay: time.Millisecond, Guarded: guarded,
		Announce: func(context.Context, string, vip.VIP) (bool, error) { return false, nil },
		OnDefend: func(vip.VIP, net.HardwareAddr) { defends++ }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	claims <- Claim{Dev: "eth0", Addr: guardedVIP.Addr(), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if defends != 0 {
		t.Fatalf("OnDefend called %d times for announcements never sent", defends)
	}
}
