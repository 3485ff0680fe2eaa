package holder

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

// world is a fake host, sender and refresher supervisor sharing one
// ordered log of every side effect.
type world struct {
	log       []string
	assigned  map[netip.Addr]bool
	prefixes  map[netip.Addr]netip.Prefix // as added, when not a host prefix
	hints     map[netip.Addr]netip.Addr
	orphans   []hostnet.LocalRoute
	nextPID   int
	alive     map[runstate.Proc]bool
	failSpawn bool
	failDel   map[netip.Addr]bool // addresses the kernel refuses to delete
	views     int                 // reads of a link
	mu        sync.Mutex
}

func newWorld() *world {
	return &world{assigned: map[netip.Addr]bool{}, prefixes: map[netip.Addr]netip.Prefix{}, hints: map[netip.Addr]netip.Addr{}, nextPID: 1000, alive: map[runstate.Proc]bool{}}
}

func (w *world) logf(f string, a ...any) {
	w.mu.Lock() // refreshers are stopped in parallel
	defer w.mu.Unlock()
	w.log = append(w.log, fmt.Sprintf(f, a...))
}

var primary4, primary6 = netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("2001:db8::11")

func (w *world) Link(dev string) (hostnet.Link, error) {
	if dev != "eth0" {
		return hostnet.Link{}, fmt.Errorf("interface %q: %w", dev, hostnet.ErrNoSuchDevice)
	}
	return hostnet.Link{Name: "eth0", Index: 2}, nil
}

// View implements Host: the fake world answers every question live.
func (w *world) View(l hostnet.Link) (hostnet.View, error) {
	w.views++
	return worldView{w, l}, nil
}

type worldView struct {
	w *world
	l hostnet.Link
}

func (v worldView) Link() hostnet.Link                          { return v.l }
func (v worldView) Primary(x vip.VIP) (netip.Addr, error)       { return v.w.Primary(v.l, x) }
func (v worldView) CheckSource(x vip.VIP, src netip.Addr) error { return v.w.CheckSource(v.l, x, src) }
func (v worldView) CheckRelease(x vip.VIP, removeAddr, added bool) error {
	return v.w.CheckRelease(v.l, x, removeAddr, added)
}
func (v worldView) IsAssigned(x vip.VIP) (bool, error)      { return v.w.IsAssigned(v.l, x) }
func (v worldView) AddVIP(x vip.VIP) error                  { return v.w.AddVIP(v.l, x) }
func (v worldView) SetHint(x vip.VIP, src netip.Addr) error { return v.w.SetHint(v.l, x, src) }
func (v worldView) ClearHint(x vip.VIP) error               { return v.w.ClearHint(v.l, x) }
func (v worldView) Release(x vip.VIP) error                 { return v.w.Release(v.l, x) }
func (v worldView) DropRoutes(xs []vip.VIP) []error         { return make([]error, len(xs)) }
func (v worldView) DropAddrs(xs []vip.VIP) []error          { return v.ReleaseAll(xs) }
func (v worldView) ReleaseAll(xs []vip.VIP) []error {
	errs := make([]error, len(xs))
	for i, x := range xs {
		errs[i] = v.w.Release(v.l, x)
	}
	return errs
}
func (v worldView) Settle() error { return nil }

func (w *world) Primary(l hostnet.Link, v vip.VIP) (netip.Addr, error) {
	p := primary4
	if v.Is6() {
		p = primary6
	}
	if v.Addr() == p {
		return netip.Addr{}, hostnet.ErrVIPIsPrimary
	}
	if v.Addr() == netip.MustParseAddr("2001:db8::200") {
		return netip.Addr{}, hostnet.ErrNoPrimary // stands for "no IPv6 address here"
	}
	return p, nil
}

func (w *world) CheckSource(l hostnet.Link, v vip.VIP, src netip.Addr) error {
	if src.Is4() != v.Addr().Is4() {
		return hostnet.ErrFamilyMismatch
	}
	return nil
}

// addrs is the interface as the kernel would list it: the host's own
// addresses, a secondary an operator added by hand, and the VIPs assigned
// (as host prefixes).
func (w *world) addrs() []hostnet.Addr {
	out := []hostnet.Addr{
		{Prefix: netip.PrefixFrom(primary4, 24), Global: true},
		{Prefix: netip.PrefixFrom(primary6, 64), Global: true},
		{Prefix: netip.PrefixFrom(manual4, 24), Global: true, Secondary: true},
	}
	for a := range w.assigned {
		p, ok := w.prefixes[a]
		if !ok {
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, hostnet.Addr{Prefix: p, Global: true, Secondary: a.Is4() && p.Bits() < 32, Deprecated: a.Is6()})
	}
	return out
}

// manual4 is a secondary /24 address vipkit did not add.
var manual4 = netip.MustParseAddr("192.0.2.50")

func (w *world) CheckRelease(l hostnet.Link, v vip.VIP, removeAddr, added bool) error {
	return hostnet.CheckRelease(l.Name, w.addrs(), v, removeAddr, added)
}

func (w *world) IsAssigned(l hostnet.Link, v vip.VIP) (bool, error) { return w.assigned[v.Addr()], nil }
func (w *world) AddVIP(l hostnet.Link, v vip.VIP) error {
	w.logf("add %s", v)
	w.assigned[v.Addr()] = true
	w.prefixes[v.Addr()] = v.Prefix()
	return nil
}
func (w *world) SetHint(l hostnet.Link, v vip.VIP, src netip.Addr) error {
	w.logf("hint %s src %s", v, src)
	w.hints[v.Addr()] = src
	return nil
}
func (w *world) ClearHint(l hostnet.Link, v vip.VIP) error {
	w.logf("clear-hint %s", v)
	delete(w.hints, v.Addr())
	return nil
}
func (w *world) Release(l hostnet.Link, v vip.VIP) error {
	if w.failDel[v.Addr()] {
		w.logf("release %s failed", v)
		return fmt.Errorf("delete %s: operation not permitted", v)
	}
	w.logf("release %s", v)
	delete(w.hints, v.Addr())
	delete(w.assigned, v.Addr())
	return nil
}
func (w *world) Orphans() ([]hostnet.LocalRoute, error) { return w.orphans, nil }
func (w *world) DeleteRoute(r hostnet.LocalRoute) error {
	w.logf("delete-route %s", r.Dst)
	return nil
}
func (w *world) AssignedAnywhere(a netip.Addr) (bool, error) { return w.assigned[a], nil }

func (w *world) Send(v vip.VIP) error {
	w.logf("send %s", v)
	return nil
}

func (w *world) Spawn(ctx context.Context, r SpawnRequest) (runstate.Proc, error) {
	if w.failSpawn {
		return runstate.Proc{}, errors.New("spawn refused")
	}
	w.nextPID++
	p := runstate.Proc{PID: w.nextPID, Start: 1}
	w.alive[p] = true
	w.logf("spawn %d %v", p.PID, r.VIPs)
	return p, nil
}
func (w *world) Stop(p runstate.Proc) error {
	w.logf("stop %d", p.PID)
	w.mu.Lock()
	delete(w.alive, p)
	w.mu.Unlock()
	return nil
}
func (w *world) Alive(p runstate.Proc) bool { return w.alive[p] }

func newHolder(t *testing.T, w *world) (*Holder, *runstate.Store) {
	t.Helper()
	st := runstate.New(t.TempDir())
	// The tests' tickets count from 1: "now" is just after them, so that
	// nothing is old enough to prune unless a test says so.
	st.Now = func() (runstate.Ticket, error) { return runstate.Ticket{Ticks: 1000}, nil }
	h := &Holder{
		Host:       w,
		Store:      st,
		Senders:    func(string) (announce.Sender, error) { return w, nil },
		Refreshers: w,
		Track: func(path string, v int) error {
			w.logf("track %s=%d", path, v)
			return nil
		},
		Now: func() time.Time { return time.Unix(1700000000, 0) },
	}
	return h, st
}

var (
	v4 = vip.MustParse("192.0.2.100")
	v6 = vip.MustParse("2001:db8::100")
)

func req(tk int64, own bool, vips ...vip.VIP) Request {
	return Request{Dev: "eth0", VIPs: vips, Own: own, Ticket: runstate.Ticket{Ticks: tk, PID: 100},
		Schedule: announce.Schedule{Count: 2, RefreshEvery: time.Second, RefreshFor: 3 * time.Second}}
}

func TestUpOwnedOrder(t *testing.T) {
	w := newWorld()
	h, st := newHolder(t, w)
	out, err := h.Up(context.Background(), req(1, true, v4, v6))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"add 192.0.2.100", "hint 192.0.2.100 src 192.0.2.11",
		"add 2001:db8::100", "hint 2001:db8::100 src 2001:db8::11",
		"send 192.0.2.100", "send 2001:db8::100", "send 192.0.2.100", "send 2001:db8::100",
		"spawn 1001 [192.0.2.100 2001:db8::100]",
	}
	if !reflect.DeepEqual(w.log, want) {
		t.Fatalf("side effects:\n got %q\nwant %q", w.log, want)
	}
	if len(out) != 2 || out[0].Result != Applied || out[1].Src != primary6 {
		t.Fatalf("outcomes = %+v", out)
	}
	s, _ := st.Read()
	e := s.Entry(v4)
	if e == nil || e.Action != runstate.ActionUp || e.Refresher == nil || e.Refresher.PID != 1001 || e.Src != primary4 {
		t.Fatalf("entry = %+v", e)
	}
}

func TestUpKeepalivedOwnedSkipsAbsent(t *testing.T) {
	w := newWorld()
	w.assigned[v4.Addr()] = true // keepalived added it; v6 it did not
	h, _ := newHolder(t, w)
	out, err := h.Up(context.Background(), req(1, false, v4, v6))
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Result != Applied || out[1].Result != Absent {
		t.Fatalf("outcomes = %+v", out)
	}
	for _, l := range w.log {
		if strings.Contains(l, "2001:db8::100") || strings.HasPrefix(l, "add") {
			t.Fatalf("acted on absent or non-owned VIP: %q", w.log)
		}
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tests := []struct {
		name string
		r    Request
	}{
		{"unknown interface", Request{Dev: "nope0", VIPs: []vip.VIP{v4}, Own: true}},
		{"VIP is the primary", Request{Dev: "eth0", VIPs: []vip.VIP{v4, vip.MustParse("192.0.2.11")}, Own: true}},
		{"no primary of the family", Request{Dev: "eth0", VIPs: []vip.VIP{v4, vip.MustParse("2001:db8::200")}, Own: true}},
		{"source family mismatch", Request{Dev: "eth0", VIPs: []vip.VIP{v4}, Own: true, Src: primary6}},
		{"no VIP", Request{Dev: "eth0", Own: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h, st := newHolder(t, w)
			for _, op := range []func(context.Context, Request) ([]Outcome, error){h.Up, h.RouteSrcAdd} {
				_, err := op(context.Background(), tt.r)
				if !errors.Is(err, ErrBadInput) {
					t.Fatalf("error = %v, want ErrBadInput", err)
				}
			}
			if len(w.log) != 0 {
				t.Fatalf("bad input changed something: %q", w.log)
			}
			if s, _ := st.Read(); len(s.Entries) != 0 {
				t.Fatalf("bad input recorded state: %+v", s.Entries)
			}
		})
	}
}

// TestReleaseRefusesTheHostsOwnAddresses: every path that deletes
// addresses or hints refuses, before changing anything, an address that
// is not a floating one (issue: `down --own` of the primary took the host
// off the network).
func TestReleaseRefusesTheHostsOwnAddresses(t *testing.T) {
	primary, manual := vip.MustParse("192.0.2.11"), vip.MustParse("192.0.2.50")
	ops := []struct {
		name string
		run  func(h *Holder, r Request) error
	}{
		{"down --own", func(h *Holder, r Request) error { _, err := h.Down(context.Background(), r); return err }},
		{"down", func(h *Holder, r Request) error { r.Own = false; _, err := h.Down(context.Background(), r); return err }},
		{"route-src del", func(h *Holder, r Request) error { _, err := h.RouteSrcDel(context.Background(), r); return err }},
		{"handover", func(h *Holder, r Request) error {
			_, err := h.Handover(context.Background(), r, "/run/vipkit/VI_1.maint")
			return err
		}},
	}
	for _, bad := range []vip.VIP{primary, vip.MustParse("192.0.2.11/24"), vip.MustParse("2001:db8::11"), manual} {
		for _, op := range ops {
			if bad == manual && (op.name == "down" || op.name == "route-src del") {
				continue // only the hint is at stake: a secondary may carry one
			}
			t.Run(op.name+" "+bad.String(), func(t *testing.T) {
				w := newWorld()
				w.assigned[v4.Addr()] = true
				h, st := newHolder(t, w)
				err := op.run(h, req(1, true, v4, bad))
				if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), bad.Addr().String()) {
					t.Fatalf("error = %v, want ErrBadInput naming %s", err, bad.Addr())
				}
				if len(w.log) != 0 {
					t.Fatalf("refused release changed something: %q", w.log)
				}
				if s, _ := st.Read(); len(s.Entries) != 0 {
					t.Fatalf("refused release recorded state: %+v", s.Entries)
				}
			})
		}
	}
}

// TestFenceSkipsTheHostsOwnAddresses: a fence cannot refuse as a whole (its
// track file is written whatever happens); it releases the VIPs and leaves
// the host's own address, reporting it.
func TestFenceSkipsTheHostsOwnAddresses(t *testing.T) {
	w := newWorld()
	w.assigned[v4.Addr()] = true
	h, _ := newHolder(t, w)
	out, err := h.Fence(context.Background(), []Request{req(1, false, v4, vip.MustParse("192.0.2.11"))}, runstate.ActionFence, nil)
	if !errors.Is(err, hostnet.ErrVIPIsPrimary) {
		t.Fatalf("fence error = %v, want ErrVIPIsPrimary", err)
	}
	if want := []string{"release 192.0.2.100"}; !reflect.DeepEqual(w.log, want) {
		t.Fatalf("fence side effects = %q, want %q", w.log, want)
	}
	if len(out) != 1 || out[0].VIP != v4 || out[0].Result != Applied {
		t.Fatalf("fence outcomes = %+v", out)
	}
}

// TestReleaseOfWhatVipkitAdded: a subnet-prefixed VIP that vipctl added is
// its own to delete, named with or without the prefix.
func TestReleaseOfWhatVipkitAdded(t *testing.T) {
	w := newWorld()
	h, _ := newHolder(t, w)
	v := vip.MustParse("192.0.2.60/24")
	if _, err := h.Up(context.Background(), req(1, true, v)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Down(context.Background(), req(2, true, vip.MustParse("192.0.2.60"))); err != nil {
		t.Fatalf("down of a VIP vipctl added: %v", err)
	}
	if w.assigned[v.Addr()] {
		t.Fatal("VIP still assigned after down")
	}
}

func TestDownStopsRefresherBeforeRelease(t *testing.T) {
	w := newWorld()
	h, st := newHolder(t, w)
	if _, err := h.Up(context.Background(), req(1, true, v4)); err != nil {
		t.Fatal(err)
	}
	w.log = nil
	if _, err := h.Down(context.Background(), req(2, true, v4)); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop 1001", "release 192.0.2.100"}
	if !reflect.DeepEqual(w.log, want) {
		t.Fatalf("down side effects = %q, want %q", w.log, want)
	}
	s, _ := st.Read()
	if e := s.Entry(v4); e.Action != runstate.ActionDown || e.Refresher != nil {
		t.Fatalf("entry after down = %+v", e)
	}
}

func TestDownNotOwnedKeepsAddress(t *testing.T) {
	w := newWorld()
	w.assigned[v4.Addr()] = true
	h, _ := newHolder(t, w)
	if _, err := h.Down(context.Background(), req(2, false, v4)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.log, []string{"clear-hint 192.0.2.100"}) || !w.assigned[v4.Addr()] {
		t.Fatalf("down of a keepalived-owned VIP: %q, assigned=%v", w.log, w.assigned[v4.Addr()])
	}
}

// keepalived forks hooks without waiting: an `up` forked before a `down`
// that already ran must not undo it (I6).
func TestLateHookIsSuperseded(t *testing.T) {
	w := newWorld()
	h, st := newHolder(t, w)
	if _, err := h.Down(context.Background(), req(20, true, v4)); err != nil { // forked second, ran first
		t.Fatal(err)
	}
	w.log = nil
	out, err := h.Up(context.Background(), req(10, true, v4)) // forked first, ran last
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Result != Superseded || out[0].By.Action != runstate.ActionDown {
		t.Fatalf("outcome = %+v, want superseded by down", out)
	}
	if len(w.log) != 0 || w.assigned[v4.Addr()] {
		t.Fatalf("late up acted: %q", w.log)
	}
	s, _ := st.Read()
	if e := s.Entry(v4); e.Action != runstate.ActionDown || e.Ticket.Ticks != 20 {
		t.Fatalf("late up overwrote the record: %+v", e)
	}
}

// Any interleaving of flaps converges to the last-forked action.
func TestInterleavingsConvergeToLastForked(t *testing.T) {
	type op struct {
		tk int64
		up bool
	}
	orders := [][]op{
		{{1, true}, {2, false}, {3, true}},
		{{3, true}, {1, true}, {2, false}},
		{{2, false}, {3, true}, {1, true}},
		{{3, false}, {2, true}, {1, false}},
		{{1, false}, {3, false}, {2, true}},
	}
	for i, order := range orders {
		w := newWorld()
		h, _ := newHolder(t, w)
		last := order[0]
		for _, o := range order {
			if o.tk > last.tk {
				last = o
			}
			f := h.Down
			if o.up {
				f = h.Up
			}
			if _, err := f(context.Background(), req(o.tk, true, v4)); err != nil {
				t.Fatal(err)
			}
		}
		if w.assigned[v4.Addr()] != last.up {
			t.Errorf("order %d %v: assigned = %v, want %v (last forked up=%v)", i, order, w.assigned[v4.Addr()], last.up, last.up)
		}
		if refs := len(w.alive); last.up != (refs == 1) {
			t.Errorf("order %d: %d refreshers alive, want %v", i, refs, last.up)
		}
	}
}

func TestRepeatedUpReplacesRefresher(t *testing.T) {
	w := newWorld()
	h, _ := newHolder(t, w)
	for tk := int64(1); tk <= 3; tk++ {
		if _, err := h.Up(context.Background(), req(tk, true, v4)); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.alive) != 1 {
		t.Fatalf("%d refreshers alive after three ups, want 1", len(w.alive))
	}
}

func TestAnnounceOnlyAssigned(t *testing.T) {
	w := newWorld()
	w.assigned[v6.Addr()] = true
	h, _ := newHolder(t, w)
	out, err := h.Announce(context.Background(), req(1, false, v4, v6))
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Result != Absent || out[1].Result != Applied {
		t.Fatalf("outcomes = %+v", out)
	}
	for _, l := range w.log {
		if strings.Contains(l, "192.0.2.100") {
			t.Fatalf("announced an address not held: %q", w.log)
		}
	}
}

func TestHandoverReleasesBeforeTrackFile(t *testing.T) {
	w := newWorld()
	w.assigned[v4.Addr()] = true // keepalived-owned: handover removes it too (I3)
	h, _ := newHolder(t, w)
	r := req(5, false, v4)
	r.Instance = "VI_1"
	if _, err := h.Handover(context.Background(), r, "/run/vipkit/VI_1.maint"); err != nil {
		t.Fatal(err)
	}
	want := []string{"release 192.0.2.100", "track /run/vipkit/VI_1.maint=1"}
	if !reflect.DeepEqual(w.log, want) {
		t.Fatalf("handover = %q, want %q", w.log, want)
	}
}

// A VIP that cannot be removed keeps keepalived as it is on a handover
// (FAULT would send priority 0 and the peer would take over beside it),
// while a fence writes its track file whatever it could release.
func TestTrackFileOnlyAfterEveryVIPOfAHandover(t *testing.T) {
	for _, tt := range []struct {
		action string
		want   []string
	}{
		{runstate.ActionHandover, []string{"release 192.0.2.100 failed"}},
		{runstate.ActionFence, []string{"release 192.0.2.100 failed", "track /run/vipkit/VI_1.maint=1"}},
	} {
		t.Run(tt.action, func(t *testing.T) {
			w := newWorld()
			w.assigned[v4.Addr()] = true
			w.failDel = map[netip.Addr]bool{v4.Addr(): true}
			h, _ := newHolder(t, w)
			r := req(5, true, v4)
			r.Instance = "VI_1"
			var err error
			if tt.action == runstate.ActionHandover {
				_, err = h.Handover(context.Background(), r, "/run/vipkit/VI_1.maint")
			} else {
				_, err = h.Fence(context.Background(), []Request{r}, runstate.ActionFence, func(int) error { return h.Track("/run/vipkit/VI_1.maint", 1) })
			}
			if err == nil {
				t.Fatal("no error for a VIP the kernel kept")
			}
			if !reflect.DeepEqual(w.log, tt.want) {
				t.Fatalf("%s = %q, want %q", tt.action, w.log, tt.want)
			}
		})
	}
}

func TestRefreshGate(t *testing.T) {
	w := newWorld()
	h, _ := newHolder(t, w)
	if _, err := h.Up(context.Background(), req(1, true, v4, v6)); err != nil {
		t.Fatal(err)
	}
	self := runstate.Proc{PID: 1001, Start: 1}
	g := &RefreshGate{Holder: h, Self: self, Dev: "eth0", VIPs: []vip.VIP{v4, v6}}
	vips, release, err := g.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
	if len(vips) != 2 {
		t.Fatalf("gate let through %v, want both", vips)
	}
	delete(w.assigned, v6.Addr()) // keepalived removed it behind our back
	vips, release, _ = g.Begin(context.Background())
	release()
	if len(vips) != 1 || vips[0] != v4 {
		t.Fatalf("gate let through %v after v6 vanished, want only v4", vips)
	}
	if _, err := h.Down(context.Background(), req(2, true, v4)); err != nil {
		t.Fatal(err)
	}
	vips, release, _ = g.Begin(context.Background())
	release()
	if len(vips) != 0 {
		t.Fatalf("gate let through %v after down", vips)
	}
	// A stranger refresher gets nothing.
	g.Self = runstate.Proc{PID: 4242, Start: 1}
	vips, release, _ = g.Begin(context.Background())
	release()
	if len(vips) != 0 {
		t.Fatalf("gate let a stranger through: %v", vips)
	}
}

func TestRemoveOrphans(t *testing.T) {
	w := newWorld()
	w.orphans = []hostnet.LocalRoute{{Dst: v4.Addr(), Dev: "eth0", Protocol: hostnet.HintProtocol}}
	h, _ := newHolder(t, w)
	got, err := h.RemoveOrphans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(w.log, []string{"delete-route 192.0.2.100"}) {
		t.Fatalf("RemoveOrphans = %v, log %q", got, w.log)
	}
}

func TestSpawnFailureStillHoldsAndReports(t *testing.T) {
	w := newWorld()
	w.failSpawn = true
	h, st := newHolder(t, w)
	_, err := h.Up(context.Background(), req(1, true, v4))
	if err == nil || !strings.Contains(err.Error(), "start refresher") {
		t.Fatalf("error = %v, want refresher failure reported", err)
	}
	s, _ := st.Read()
	if e := s.Entry(v4); e == nil || e.Action != runstate.ActionUp || !w.assigned[v4.Addr()] {
		t.Fatalf("state after spawn failure = %+v (assigned %v): the VIP is held and must be recorded", e, w.assigned[v4.Addr()])
	}
}

// Announcing is not a keepalived transition: it must not supersede a hook
// forked before it (I6), and a one-shot announce leaves a running refresher
// alone.
func TestAnnounceRecordsNoTicket(t *testing.T) {
	w := newWorld()
	h, st := newHolder(t, w)
	if _, err := h.Up(context.Background(), req(5, true, v4)); err != nil {
		t.Fatal(err)
	}
	oneShot := req(50, false, v4)
	oneShot.Schedule = announce.Schedule{Count: 1}
	if _, err := h.Announce(context.Background(), oneShot); err != nil {
		t.Fatal(err)
	}
	if len(w.alive) != 1 {
		t.Fatalf("a one-shot announce changed the refreshers: %d alive", len(w.alive))
	}
	// A down forked at 10 (after the up, before the announce) still applies.
	out, err := h.Down(context.Background(), req(10, true, v4))
	if err != nil || out[0].Result != Applied {
		t.Fatalf("down after an announce: %+v, %v", out, err)
	}
	s, _ := st.Read()
	if e := s.Entry(v4); e.Action != runstate.ActionDown {
		t.Fatalf("record = %+v", e)
	}
}

func TestUpWithoutRefreshStopsEarlierRefresher(t *testing.T) {
	w := newWorld()
	h, _ := newHolder(t, w)
	if _, err := h.Up(context.Background(), req(1, true, v4)); err != nil {
		t.Fatal(err)
	}
	noRefresh := req(2, true, v4)
	noRefresh.Schedule = announce.Schedule{Count: 1}
	if _, err := h.Up(context.Background(), noRefresh); err != nil {
		t.Fatal(err)
	}
	if len(w.alive) != 0 {
		t.Fatalf("%d refreshers alive after an up without refresh", len(w.alive))
	}
}

// I6 after pruning: once the released entry is forgotten (I10), a late
// MASTER hook forked before it still cannot re-add the VIP, and one forked
// later still can.
func TestLateHookIsSupersededAfterPruning(t *testing.T) {
	w := newWorld()
	h, st := newHolder(t, w)
	if _, err := h.Up(context.Background(), req(5, true, v4)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Down(context.Background(), req(6, true, v4)); err != nil {
		t.Fatal(err)
	}
	// Long after: the next write forgets the released entry.
	st.Now = func() (runstate.Ticket, error) { return runstate.Ticket{Ticks: 6 + runstate.PruneAfter + 1}, nil }
	if _, err := h.Down(context.Background(), req(7, true, v6)); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Read(); s.Entry(v4) != nil || s.Horizon.IsZero() {
		t.Fatalf("the released entry was not pruned: %+v, horizon %v", s.Entry(v4), s.Horizon)
	}
	w.log = nil
	out, err := h.Up(context.Background(), req(4, true, v4))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Result != Superseded || len(w.log) != 0 {
		t.Fatalf("late up after pruning: %+v, side effects %q; want superseded, nothing done", out, w.log)
	}
	out, err = h.Up(context.Background(), req(8, true, v4))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Result != Applied {
		t.Fatalf("a later up after pruning: %+v, want applied", out)
	}
}

type lockCounter struct {
	Store
	locks int
}

func (c *lockCounter) Lock(ctx context.Context) (*runstate.Tx, error) {
	c.locks++
	return c.Store.Lock(ctx)
}

// A sync group's transition is one pass: one lock for all its instances,
// and a down that deletes the addresses vipctl owns and only the hints of
// those keepalived owns.
func TestApplyIsOnePassPerTransition(t *testing.T) {
	w := newWorld()
	h, _ := newHolder(t, w)
	lc := &lockCounter{Store: h.Store}
	h.Store = lc
	w.assigned[v4.Addr()] = true // keepalived's
	owned := req(1, true, v6)
	kept := req(1, false, v4)
	if _, err := h.Apply(context.Background(), VerbUp, []Request{owned, kept}); err != nil {
		t.Fatal(err)
	}
	w.log = nil
	owned.Ticket, kept.Ticket = runstate.Ticket{Ticks: 2, PID: 100}, runstate.Ticket{Ticks: 2, PID: 100}
	out, err := h.Apply(context.Background(), VerbDown, []Request{owned, kept})
	if err != nil {
		t.Fatal(err)
	}
	if lc.locks != 2 {
		t.Fatalf("two transitions of two instances took the lock %d times, want 2", lc.locks)
	}
	want := []string{"stop 1001", "stop 1002", "release 2001:db8::100", "clear-hint 192.0.2.100"}
	slices.Sort(w.log[:2]) // stopped together
	if !reflect.DeepEqual(w.log, want) || len(out) != 2 {
		t.Fatalf("down of the group: %q (%d outcomes), want %q", w.log, len(out), want)
	}
}

// A fence runs after(i) right after request i's VIPs are gone, under the
// same lock: instance by instance, never an instance's FAULT before its VIPs.
func TestFenceRunsAfterEachInstance(t *testing.T) {
	w := newWorld()
	h, _ := newHolder(t, w)
	w.assigned[v4.Addr()], w.assigned[v6.Addr()] = true, true
	reqs := []Request{req(1, false, v4), req(1, true, v6)}
	reqs[0].Instance, reqs[1].Instance = "VI_1", "VI_2"
	if _, err := h.Fence(context.Background(), reqs, runstate.ActionFence, func(i int) error {
		w.logf("after %s", reqs[i].Instance)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"release 192.0.2.100", "after VI_1", "release 2001:db8::100", "after VI_2"}
	if !reflect.DeepEqual(w.log, want) {
		t.Fatalf("fence = %q, want %q", w.log, want)
	}
}
