package fence

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/wedge"
)

type rec struct {
	log      []string
	lockBusy bool
	passes   int // calls to the holder's Fence
}

func (r *rec) Fence(ctx context.Context, reqs []holder.Request, action string, after func(int) error) ([]holder.Outcome, error) {
	r.passes++
	if r.lockBusy {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for i, req := range reqs {
		for _, v := range req.VIPs {
			r.log = append(r.log, fmt.Sprintf("%s %s own=%v ticket=%d", action, v, req.Own, req.Ticket.PID))
		}
		if after != nil {
			_ = after(i)
		}
	}
	return nil, nil
}
func (r *rec) Link(dev string) (hostnet.Link, error) {
	if dev == "gone0" {
		return hostnet.Link{}, hostnet.ErrNoSuchDevice
	}
	return hostnet.Link{Name: dev}, nil
}
func (r *rec) View(l hostnet.Link) (hostnet.View, error) { return recView{r}, nil }

// recView is the lock-free path's view of the link.
type recView struct{ r *rec }

func (v recView) Link() hostnet.Link                    { return hostnet.Link{} }
func (v recView) Primary(vip.VIP) (netip.Addr, error)   { return netip.Addr{}, nil }
func (v recView) CheckSource(vip.VIP, netip.Addr) error { return nil }

// CheckRelease applies the real rule to an interface holding 192.0.2.11/24
// and the VIPs.
func (v recView) CheckRelease(x vip.VIP, removeAddr, added bool) error {
	addrs := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("192.0.2.11/24"), Global: true},
		{Prefix: netip.MustParsePrefix("192.0.2.100/32"), Global: true},
	}
	return hostnet.CheckRelease("eth0", addrs, x, removeAddr, added)
}
func (v recView) IsAssigned(vip.VIP) (bool, error)  { return true, nil }
func (v recView) AddVIP(vip.VIP) error              { return errors.New("a fence never adds") }
func (v recView) SetHint(vip.VIP, netip.Addr) error { return errors.New("a fence never sets a hint") }
func (v recView) ClearHint(vip.VIP) error           { return errors.New("a fence removes the VIP") }
func (v recView) Settle() error                     { return nil }
func (v recView) DropRoutes(xs []vip.VIP) []error   { return make([]error, len(xs)) }
func (v recView) DropAddrs(xs []vip.VIP) []error    { return v.ReleaseAll(xs) }
func (v recView) ReleaseAll(xs []vip.VIP) []error {
	errs := make([]error, len(xs))
	for i, x := range xs {
		errs[i] = v.Release(x)
	}
	return errs
}
func (v recView) Release(x vip.VIP) error {
	v.r.log = append(v.r.log, "direct-release "+x.String())
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
	{Target: vip.Target{Instance: "VI_1", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("192.0.2.100")}}, TrackFile: "/run/vipkit/VI_1.fence"},
	{Target: vip.Target{Instance: "VI_2", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("2001:db8::100")}, Own: true}, TrackFile: "/run/vipkit/VI_2.fence"},
}

// I3: every VIP is gone before any track file says FAULT, also for
// keepalived-owned VIPs.
func TestFenceReleasesBeforeTrackFiles(t *testing.T) {
	r := &rec{}
	if err := actuator(r).Fence(context.Background(), ins, "deadline"); err != nil {
		t.Fatal(err)
	}
	// Per instance, its VIPs and then at once its track file.
	want := []string{
		"fence 192.0.2.100 own=false ticket=7", "track /run/vipkit/VI_1.fence=1",
		"fence 2001:db8::100 own=true ticket=7", "track /run/vipkit/VI_2.fence=1",
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
	in := Instance{Target: vip.Target{Instance: "VI_1", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("192.0.2.11"), vip.MustParse("192.0.2.100")}}, TrackFile: "/run/vipkit/VI_1.fence"}
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

// I10: a fence of many instances with vipctl's lock held by a stopped
// process waits for the lock once, not once per instance, and still
// releases every instance's VIPs before any track file says FAULT (I3).
func TestFenceWaitsForAWedgedLockOnce(t *testing.T) {
	dir := t.TempDir()
	wedge.Lock(t, dir) // a hook wedged while it holds vipctl's lock
	store := &countingStore{Store: runstate.New(dir)}
	r := &rec{}
	h := &holder.Holder{Host: r, Store: store}
	a := actuator(r)
	a.Releaser = h
	var many []Instance
	for i := range 10 {
		var vips []vip.VIP
		for j := range 5 {
			vips = append(vips, vip.MustParse(fmt.Sprintf("2001:db8::%d:%d", i, j)))
		}
		many = append(many, Instance{Target: vip.Target{Instance: fmt.Sprintf("VI_%d", i), Dev: "eth0", VIPs: vips}, TrackFile: fmt.Sprintf("/run/vipkit/VI_%d.fence", i)})
	}
	// A lease's fence carries the earliest server expiry as its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.Fence(ctx, many, "deadline"); err != nil {
		t.Fatal(err)
	}
	if store.locks != 1 {
		t.Fatalf("the fence asked for vipctl's lock %d times, want once for all %d instances", store.locks, len(many))
	}
	// I3 per instance: each track file only once all its instance's VIPs
	// are gone.
	gone := map[string]bool{}
	var released, tracks int
	for _, l := range r.log {
		switch {
		case strings.HasPrefix(l, "direct-release "):
			gone[strings.TrimPrefix(l, "direct-release ")] = true
			released++
		case strings.HasPrefix(l, "track "):
			tracks++
			for _, in := range many {
				if !strings.Contains(l, "/"+in.Instance+".fence") {
					continue
				}
				for _, v := range in.VIPs {
					if !gone[v.String()] {
						t.Fatalf("%s's track file said FAULT before its VIP %s was gone (I3): %q", in.Instance, v, r.log)
					}
				}
			}
		}
	}
	if released != 50 || tracks != 10 {
		t.Fatalf("released %d VIPs and wrote %d track files, want 50 and 10: %q", released, tracks, r.log)
	}
}

// The lock wait is derived from the time the fence has (its deadline), not
// a constant: a quarter of it.
func TestFenceLockWaitFollowsTheDeadline(t *testing.T) {
	a := &Actuator{LockWait: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if w := a.lockWait(ctx); w > 375*time.Millisecond || w < 300*time.Millisecond {
		t.Fatalf("lock wait with 1.5 s left = %s, want about 375 ms", w)
	}
	if w := a.lockWait(context.Background()); w != time.Hour {
		t.Fatalf("lock wait without a deadline = %s, want the configured %s", w, time.Hour)
	}
}

// An instance whose interface is gone does not keep the others held.
func TestFenceGoesOnPastAMissingLink(t *testing.T) {
	r := &rec{}
	gone := Instance{Target: vip.Target{Instance: "VI_0", Dev: "gone0", VIPs: []vip.VIP{vip.MustParse("192.0.2.99")}}, TrackFile: "/run/vipkit/VI_0.fence"}
	err := actuator(r).Fence(context.Background(), append([]Instance{gone}, ins...), "deadline")
	if err == nil || !strings.Contains(err.Error(), "VI_0") {
		t.Fatalf("Fence = %v, want the missing link of VI_0 reported", err)
	}
	want := []string{
		"fence 192.0.2.100 own=false ticket=7", "track /run/vipkit/VI_1.fence=1",
		"fence 2001:db8::100 own=true ticket=7", "track /run/vipkit/VI_2.fence=1",
		"track /run/vipkit/VI_0.fence=1",
	}
	if !reflect.DeepEqual(r.log, want) || r.passes != 1 {
		t.Fatalf("fence: %q in %d passes, want %q in one", r.log, r.passes, want)
	}
}

type countingStore struct {
	*runstate.Store
	locks int
}

func (s *countingStore) Lock(ctx context.Context) (*runstate.Tx, error) {
	s.locks++
	return s.Store.Lock(ctx)
}

func (r *rec) Orphans() ([]hostnet.LocalRoute, error) { return nil, nil }
func (r *rec) DeleteRoute(hostnet.LocalRoute) error   { return nil }
