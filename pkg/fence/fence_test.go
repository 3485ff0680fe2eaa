package fence

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

type rec struct {
	log      []string
	lockBusy bool
}

func (r *rec) Fence(ctx context.Context, req holder.Request, action string) ([]holder.Outcome, error) {
	if r.lockBusy {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, v := range req.VIPs {
		r.log = append(r.log, fmt.Sprintf("%s %s own=%v ticket=%d", action, v, req.Own, req.Ticket.PID))
	}
	return nil, nil
}
func (r *rec) Link(dev string) (hostnet.Link, error) { return hostnet.Link{Name: dev}, nil }

// CheckRelease applies the real rule to an interface holding 192.0.2.11/24
// and the VIPs.
func (r *rec) CheckRelease(l hostnet.Link, v vip.VIP, removeAddr, added bool) error {
	addrs := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("192.0.2.11/24"), Global: true},
		{Prefix: netip.MustParsePrefix("192.0.2.100/32"), Global: true},
	}
	return hostnet.CheckRelease(l.Name, addrs, v, removeAddr, added)
}
func (r *rec) Release(l hostnet.Link, v vip.VIP) error {
	r.log = append(r.log, "direct-release "+v.String())
	return nil
}

func actuator(r *rec) *Actuator {
	return &Actuator{
		Releaser: r, Host: r,
		Track: func(p string, v int) error {
			r.log = append(r.log, fmt.Sprintf("track %s=%d", p, v))
			return nil
		},
		Ticket:   func() (runstate.Ticket, error) { return runstate.Ticket{Ticks: 1, PID: 7}, nil },
		LockWait: 20 * time.Millisecond,
	}
}

var ins = []Instance{
	{Name: "VI_1", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("192.0.2.100")}, TrackFile: "/run/vipkit/VI_1.fence"},
	{Name: "VI_2", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("2001:db8::100")}, Own: true, TrackFile: "/run/vipkit/VI_2.fence"},
}

// I3: every VIP is gone before any track file says FAULT, also for
// keepalived-owned VIPs.
func TestFenceReleasesBeforeTrackFiles(t *testing.T) {
	r := &rec{}
	if err := actuator(r).Fence(context.Background(), ins, "deadline"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"fence 192.0.2.100 own=false ticket=7", "fence 2001:db8::100 own=true ticket=7",
		"track /run/vipkit/VI_1.fence=1", "track /run/vipkit/VI_2.fence=1",
	}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("fence order:\n got %q\nwant %q", r.log, want)
	}
}

func TestFenceDoesNotWaitForABusyLock(t *testing.T) {
	r := &rec{lockBusy: true}
	start := time.Now()
	if err := actuator(r).Fence(context.Background(), ins[:1], "deadline"); err != nil {
		t.Fatal(err)
	}
	want := []string{"direct-release 192.0.2.100", "track /run/vipkit/VI_1.fence=1"}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("fence with busy lock: %q, want %q", r.log, want)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("fence waited %s for the lock", time.Since(start))
	}
}

// Without the lock the fence still never deletes the host's own address:
// it releases the VIP, leaves the primary, and writes the track file.
func TestFenceWithoutLockSparesThePrimary(t *testing.T) {
	r := &rec{lockBusy: true}
	in := Instance{Name: "VI_1", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("192.0.2.11"), vip.MustParse("192.0.2.100")}, TrackFile: "/run/vipkit/VI_1.fence"}
	err := actuator(r).Fence(context.Background(), []Instance{in}, "deadline")
	if !errors.Is(err, hostnet.ErrVIPIsPrimary) {
		t.Fatalf("fence error = %v, want ErrVIPIsPrimary", err)
	}
	want := []string{"direct-release 192.0.2.100", "track /run/vipkit/VI_1.fence=1"}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("fence without lock: %q, want %q", r.log, want)
	}
}

func TestFenceKeepsGoingAfterErrors(t *testing.T) {
	r := &rec{}
	a := actuator(r)
	a.Track = func(p string, v int) error {
		r.log = append(r.log, p)
		return errors.New("disk full")
	}
	err := a.Fence(context.Background(), ins, "deadline")
	if err == nil || len(r.log) != 4 {
		t.Fatalf("Fence = %v after %q; want both track files tried and the error reported", err, r.log)
	}
}

func TestUnfenceWritesOK(t *testing.T) {
	r := &rec{}
	if err := actuator(r).Unfence(ins); err != nil {
		t.Fatal(err)
	}
	want := []string{"track /run/vipkit/VI_1.fence=0", "track /run/vipkit/VI_2.fence=0"}
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("unfence = %q", r.log)
	}
}

func TestReassertWritesOnlyWrongFiles(t *testing.T) {
	r := &rec{}
	a := actuator(r)
	files := map[string]int{"/run/vipkit/VI_1.fence": 0, "/run/vipkit/VI_2.fence": 1}
	a.Read = func(p string) (int, bool, error) { v, ok := files[p]; return v, ok, nil }
	if err := a.Reassert(ins, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"track /run/vipkit/VI_2.fence=0"} // VI_1 already says 0
	if !reflect.DeepEqual(r.log, want) {
		t.Fatalf("reassert = %q, want %q", r.log, want)
	}
}
