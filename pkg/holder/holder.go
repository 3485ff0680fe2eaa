// Package holder converges one host's hold on VIPs: the address (when vipkit
// owns it), the route source hint, and announcements.
//
// Every operation validates all of its input before it changes anything
// (I7), runs under the host-wide lock, skips VIPs that a later-forked
// process already acted on (I6), and releases in the only safe order: stop
// announcing, drop the hint, then the address (I1, I2).
package holder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

// ErrBadInput marks a request that cannot be carried out as given (unknown
// interface, no primary address, VIP equal to the primary, family
// mismatch). Nothing was changed.
var ErrBadInput = errors.New("bad input")

// Host is the kernel state the holder reads and changes (hostnet.Net). The
// holder reads each link once per operation (View), under the lock, and
// plans every VIP from that one read.
type Host interface {
	Link(dev string) (hostnet.Link, error)
	View(l hostnet.Link) (hostnet.View, error)
	Orphans() ([]hostnet.LocalRoute, error)
	DeleteRoute(r hostnet.LocalRoute) error
}

// Store is the state directory (runstate.Store).
type Store interface {
	Lock(ctx context.Context) (*runstate.Tx, error)
}

// Refreshers starts and stops the background processes that keep
// announcing after the first burst.
type Refreshers interface {
	Spawn(ctx context.Context, r SpawnRequest) (runstate.Proc, error)
	Stop(p runstate.Proc) error
	Alive(p runstate.Proc) bool
}

// SpawnRequest describes one refresher: it announces VIPs on Dev at the
// schedule's later offsets, counted from Start.
type SpawnRequest struct {
	Dev      string
	VIPs     []vip.VIP
	Schedule announce.Schedule
	Start    time.Time
}

// Holder carries out requests. All fields are required except Log and
// Refreshers (no refresher is started without it).
type Holder struct {
	Host       Host
	Store      Store
	Senders    func(dev string) (announce.Sender, error)
	Refreshers Refreshers
	Track      func(path string, value int) error
	Log        *slog.Logger
	Now        func() time.Time
	// Seen, when set, is called under the lock just before every state
	// write with the operation's error so far: vipctl adds what the hook
	// saw (runstate.State.Report, Hook) to the write it makes anyway.
	Seen func(st *runstate.State, err error)
}

// Request is one command's input.
type Request struct {
	Dev  string
	VIPs []vip.VIP
	// Own: vipkit adds and removes the address itself.
	Own bool
	// Src, when valid, is the hint source instead of the primary address.
	Src      netip.Addr
	Schedule announce.Schedule
	Instance string
	Ticket   runstate.Ticket
}

// For makes the request of one instance's VIPs on one link.
func For(g vip.Target, t runstate.Ticket) Request {
	return Request{Dev: g.Dev, VIPs: g.VIPs, Own: g.Own, Instance: g.Instance, Ticket: t}
}

// Outcome says what happened to one VIP.
type Outcome struct {
	VIP    vip.VIP
	Result Result
	Src    netip.Addr
	// By is the later action that superseded this request.
	By *runstate.Entry
}

// Result of a request for one VIP.
type Result string

const (
	Applied    Result = "applied"
	Absent     Result = "absent"     // not assigned and not owned: nothing to do
	Superseded Result = "superseded" // a later-forked vipctl already acted
)

func (h *Holder) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

func (h *Holder) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}

// bad wraps a validation failure so callers can map it to a usage error.
func bad(err error) error {
	if errors.Is(err, hostnet.ErrNoSuchDevice) || errors.Is(err, hostnet.ErrNoPrimary) ||
		errors.Is(err, hostnet.ErrVIPIsPrimary) || errors.Is(err, hostnet.ErrFamilyMismatch) ||
		errors.Is(err, hostnet.ErrNotAssigned) || errors.Is(err, hostnet.ErrNotFloating) ||
		errors.Is(err, hostnet.ErrLastAddress) {
		return fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	return err
}

// views reads each link the requests name once. The caller holds the lock:
// a read taken before it could miss a hint another vipctl set meanwhile.
type views map[string]hostnet.View

func (h *Holder) view(vs views, l hostnet.Link) (hostnet.View, error) {
	if w, ok := vs[l.Name]; ok {
		return w, nil
	}
	w, err := h.Host.View(l)
	if err != nil {
		return nil, err
	}
	vs[l.Name] = w
	return w, nil
}

// links resolves every request's interface, changing nothing.
func (h *Holder) links(reqs []Request) ([]hostnet.Link, error) {
	ls := make([]hostnet.Link, len(reqs))
	for i, req := range reqs {
		if len(req.VIPs) == 0 {
			return nil, fmt.Errorf("%w: no VIP given", ErrBadInput)
		}
		l, err := h.Host.Link(req.Dev)
		if err != nil {
			return nil, bad(err)
		}
		ls[i] = l
	}
	return ls, nil
}

// sources validates a request against one read of its link and resolves
// the hint source of each VIP, changing nothing.
func sources(w hostnet.View, req Request) (map[vip.VIP]netip.Addr, error) {
	srcs := map[vip.VIP]netip.Addr{}
	for _, v := range req.VIPs {
		if req.Src.IsValid() {
			if err := w.CheckSource(v, req.Src); err != nil {
				return nil, bad(err)
			}
			srcs[v] = req.Src
			continue
		}
		src, err := w.Primary(v)
		if err != nil {
			return nil, bad(err)
		}
		srcs[v] = src
	}
	return srcs, nil
}

// admit splits the request's VIPs into those this process may act on and
// the outcomes of those a later-forked process already handled.
func admit(st *runstate.State, req Request) (todo []vip.VIP, done []Outcome) {
	for _, v := range req.VIPs {
		if by, ok := st.Supersedes(v, req.Ticket); ok {
			done = append(done, Outcome{VIP: v, Result: Superseded, By: by})
			continue
		}
		todo = append(todo, v)
	}
	return todo, done
}

func (h *Holder) entry(req Request, v vip.VIP, action string, prev *runstate.Entry) runstate.Entry {
	e := runstate.Entry{VIP: v, Dev: req.Dev, Own: req.Own, Instance: req.Instance, Action: action, Ticket: req.Ticket, At: h.now()}
	if prev != nil && e.Instance == "" {
		e.Instance = prev.Instance
	}
	if prev != nil {
		e.Announced = prev.Announced
	}
	return e
}

// Up makes this host hold the VIPs: with Own the address is added, without
// it only VIPs already assigned are acted on. Then the hint is set, the
// first burst of announcements goes out and a refresher takes the rest of
// the schedule.
func (h *Holder) Up(ctx context.Context, req Request) ([]Outcome, error) {
	return h.hold(ctx, []Request{req}, runstate.ActionUp)
}

// RouteSrcAdd sets the hint alone, on VIPs that are assigned.
func (h *Holder) RouteSrcAdd(ctx context.Context, req Request) ([]Outcome, error) {
	req.Own = false
	return h.hold(ctx, []Request{req}, runstate.ActionRouteSrcAdd)
}

func (h *Holder) hold(ctx context.Context, reqs []Request, action string) ([]Outcome, error) {
	ls, err := h.links(reqs)
	if err != nil {
		return nil, err
	}
	tx, err := h.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Unlock()
	vs := views{}
	srcs := make([]map[vip.VIP]netip.Addr, len(reqs))
	for i, req := range reqs {
		w, err := h.view(vs, ls[i])
		if err != nil {
			return nil, err
		}
		if srcs[i], err = sources(w, req); err != nil {
			return nil, err // nothing changed, nothing to save
		}
	}
	var out []Outcome
	held := make([][]vip.VIP, len(reqs))
	for i, req := range reqs {
		w := vs[ls[i].Name]
		todo, done := admit(tx.State, req)
		out = append(out, done...)
		for _, v := range todo {
			log := h.log().With("vip", v.String(), "dev", req.Dev, "action", action)
			if req.Instance != "" {
				log = log.With("instance", req.Instance)
			}
			prev := tx.State.Entry(v)
			e := h.entry(req, v, action, prev)
			if prev != nil && action != runstate.ActionUp {
				e.Refresher = prev.Refresher // the hint alone leaves announcing as it is
			}
			if req.Own && action == runstate.ActionUp {
				if err := w.AddVIP(v); err != nil {
					return out, h.saveAfter(tx, err)
				}
			} else if ok, err := w.IsAssigned(v); err != nil {
				return out, h.saveAfter(tx, err)
			} else if !ok {
				log.Info("VIP not assigned here; nothing to hold")
				tx.State.Record(e)
				out = append(out, Outcome{VIP: v, Result: Absent})
				continue
			}
			src := srcs[i][v]
			if err := w.SetHint(v, src); err != nil {
				return out, h.saveAfter(tx, err)
			}
			e.Src = src
			tx.State.Record(e)
			held[i] = append(held[i], v)
			out = append(out, Outcome{VIP: v, Result: Applied, Src: src})
			log.Info("holding VIP", "src", src.String(), "own", req.Own)
		}
	}
	var aerr error
	if action == runstate.ActionUp {
		aerr = h.announceHeld(ctx, tx, reqs, held)
	}
	// Announce first, settle after: the kernel's IPv6 local routes come
	// from its DAD worker, which a busy host runs milliseconds after the
	// address was added, while an announcement needs only the address (a
	// NODAD address is never tentative). Waiting for them held back even
	// the IPv4 VIPs' ARP, and the router with them.
	for _, w := range vs {
		if err := w.Settle(); err != nil {
			return out, h.saveAfter(tx, errors.Join(aerr, err))
		}
	}
	return out, h.saveAfter(tx, aerr)
}

// announceHeld announces what an up holds, each request with its own
// schedule. A new up replaces any refresher of these VIPs, even with none
// of its own.
func (h *Holder) announceHeld(ctx context.Context, tx *runstate.Tx, reqs []Request, held [][]vip.VIP) error {
	if err := h.stopUnreferenced(tx); err != nil {
		return err
	}
	for i, req := range reqs {
		if len(held[i]) > 0 {
			if err := h.announce(ctx, tx, req, held[i], held[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// saveAfter writes whatever was recorded, also after a failure, so that the
// state always describes the changes that were made.
func (h *Holder) saveAfter(tx *runstate.Tx, err error) error {
	if h.Seen != nil {
		h.Seen(tx.State, err)
	}
	if serr := tx.Save(); serr != nil && err == nil {
		err = serr
	}
	return err
}

// announce sends the immediate burst for the VIPs in send and hands the
// rest of the schedule for those in refresh to a new refresher, which
// replaces any earlier one of these VIPs. The caller holds the lock.
func (h *Holder) announce(ctx context.Context, tx *runstate.Tx, req Request, send, refresh []vip.VIP) error {
	start := h.now()
	now, later := req.Schedule.Split()
	if now > 0 {
		s, err := h.Senders(req.Dev)
		if err != nil {
			return err
		}
		for i := 0; i < now; i++ {
			if err := announce.SendAll(s, send); err != nil {
				return err
			}
		}
		at := h.now()
		for _, v := range send {
			if e := tx.State.Entry(v); e != nil {
				e.Announced = at
			}
		}
	}
	if len(later) == 0 || len(refresh) == 0 || h.Refreshers == nil {
		return nil
	}
	for _, v := range refresh {
		tx.State.Entry(v).Refresher = nil
	}
	if err := h.stopUnreferenced(tx); err != nil {
		return err
	}
	p, err := h.Refreshers.Spawn(ctx, SpawnRequest{Dev: req.Dev, VIPs: refresh, Schedule: req.Schedule, Start: start})
	if err != nil {
		return fmt.Errorf("start refresher for %d VIP(s) on %s: %w", len(refresh), req.Dev, err)
	}
	for _, v := range refresh {
		tx.State.Entry(v).Refresher = &p
	}
	h.log().Debug("refresher started", "pid", p.PID, "dev", req.Dev, "vips", len(refresh))
	return nil
}

// stopUnreferenced ends refreshers that no entry names any more, so that no
// vipctl process outlives the VIPs it was started for. They are stopped
// together: a fence of many instances waits for the slowest, not the sum.
func (h *Holder) stopUnreferenced(tx *runstate.Tx) error {
	if h.Refreshers == nil {
		return nil
	}
	live := tx.State.Refreshers()
	var stop []runstate.Proc
	for _, p := range tx.Known() {
		if !slices.Contains(live, p) {
			stop = append(stop, p)
		}
	}
	errs := make([]error, len(stop))
	if len(stop) == 1 {
		errs[0] = h.Refreshers.Stop(stop[0])
	} else {
		var wg sync.WaitGroup
		for i, p := range stop {
			wg.Go(func() { errs[i] = h.Refreshers.Stop(p) })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	tx.Forget(live)
	return nil
}

// Announce sends announcements now for the VIPs assigned here, and keeps a
// refresher on the schedule for those this host holds. Absent VIPs are
// skipped: never announce what you do not hold. Announcing is not a
// keepalived transition: it records no ticket and so never supersedes one.
func (h *Holder) Announce(ctx context.Context, req Request) ([]Outcome, error) {
	ls, err := h.links([]Request{req})
	if err != nil {
		return nil, err
	}
	tx, err := h.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Unlock()
	w, err := h.Host.View(ls[0])
	if err != nil {
		return nil, err
	}
	var out []Outcome
	var send, refresh []vip.VIP
	for _, v := range req.VIPs {
		ok, err := w.IsAssigned(v)
		if err != nil {
			return out, h.saveAfter(tx, err)
		}
		if !ok {
			h.log().Info("VIP not assigned here; not announcing", "vip", v.String(), "dev", req.Dev)
			out = append(out, Outcome{VIP: v, Result: Absent})
			continue
		}
		e := tx.State.Entry(v)
		if e == nil {
			// A zero ticket orders before every process: the record exists
			// only so that a refresher may be named in it.
			tx.State.Record(runstate.Entry{VIP: v, Dev: req.Dev, Instance: req.Instance, Action: runstate.ActionAnnounce, At: h.now()})
			e = tx.State.Entry(v)
		}
		send = append(send, v)
		if e.Holding() {
			refresh = append(refresh, v)
		}
		out = append(out, Outcome{VIP: v, Result: Applied})
	}
	if len(send) > 0 {
		if err := h.announce(ctx, tx, req, send, refresh); err != nil {
			return out, h.saveAfter(tx, err)
		}
		h.log().Info("announced", "dev", req.Dev, "vips", len(send))
	}
	return out, h.saveAfter(tx, nil)
}

// Down makes this host stop holding the VIPs: the refresher stops at once
// (it is between sends, since sends hold the lock), the hint goes, then the
// address if owned. A VIP that stays assigned (keepalived owns it) keeps the
// kernel's own local route.
func (h *Holder) Down(ctx context.Context, req Request) ([]Outcome, error) {
	return h.release(ctx, []Request{req}, runstate.ActionDown, ownedOnly, nil)
}

// Verb is what a keepalived transition asks of the holder (pkg/hooks).
type Verb string

// Verbs of Apply.
const (
	VerbUp       Verb = "up"
	VerbDown     Verb = "down"
	VerbAnnounce Verb = "announce"
)

// Apply carries out one keepalived transition for many instances (a sync
// group): up and down in one pass, under one lock, with one read per link
// and one state write, as the fence does. Announcing is no transition: each
// instance announces on its own.
func (h *Holder) Apply(ctx context.Context, verb Verb, reqs []Request) ([]Outcome, error) {
	switch verb {
	case VerbUp:
		return h.hold(ctx, reqs, runstate.ActionUp)
	case VerbDown:
		return h.release(ctx, reqs, runstate.ActionDown, ownedOnly, nil)
	case VerbAnnounce:
		var out []Outcome
		var errs []error
		for _, req := range reqs {
			o, err := h.Announce(ctx, req)
			out = append(out, o...)
			if err != nil {
				errs = append(errs, err)
			}
		}
		return out, errors.Join(errs...)
	}
	return nil, fmt.Errorf("%w: unknown verb %q", ErrBadInput, verb)
}

// removal says, per request, whether a release deletes the addresses.
type removal func(Request) bool

func ownedOnly(r Request) bool { return r.Own }
func hintOnly(Request) bool    { return false }
func always(Request) bool      { return true }

// RouteSrcDel removes the hint alone.
func (h *Holder) RouteSrcDel(ctx context.Context, req Request) ([]Outcome, error) {
	req.Own = false
	return h.release(ctx, []Request{req}, runstate.ActionRouteSrcDel, hintOnly, nil)
}

// Fence releases the VIPs of every request whoever owns the addresses (I3:
// gone before keepalived is told to give up), as the given action, in one
// pass: one lock, one read per link, the refreshers stopped together, one
// state write. A host's whole fence costs one wait for the lock, however
// many instances it has.
//
// after, when set, runs once per request right after its VIPs are gone,
// still under the lock: a fence writes that instance's track file there.
func (h *Holder) Fence(ctx context.Context, reqs []Request, action string, after func(i int) error) ([]Outcome, error) {
	return h.release(ctx, reqs, action, always, after)
}

func (h *Holder) release(ctx context.Context, reqs []Request, action string, remove removal, after func(i int) error) ([]Outcome, error) {
	ls, err := h.links(reqs)
	if err != nil {
		return nil, err
	}
	tx, err := h.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Unlock()
	vs := views{}
	todos := make([][]vip.VIP, len(reqs))
	var out []Outcome
	// Every VIP is checked before anything changes (I7): a typo must never
	// take the host's own address. A fence cannot refuse as a whole, since
	// its track file is written anyway: it releases what may be released
	// and reports the rest.
	var refused []error
	for i, req := range reqs {
		w, err := h.view(vs, ls[i])
		if err != nil {
			return nil, err
		}
		todo, done := admit(tx.State, req)
		out = append(out, done...)
		for _, v := range todo {
			prev := tx.State.Entry(v)
			if err := w.CheckRelease(v, remove(req), prev != nil && prev.Own); err != nil {
				if action != runstate.ActionFence {
					return nil, bad(fmt.Errorf("%s: %w", action, err))
				}
				h.log().Error("fence: not deleting "+v.String()+": "+err.Error(), "vip", v.String(), "dev", req.Dev, "instance", req.Instance)
				refused = append(refused, err)
				continue
			}
			todos[i] = append(todos[i], v)
		}
	}
	for i, req := range reqs {
		for _, v := range todos[i] {
			prev := tx.State.Entry(v)
			e := h.entry(req, v, action, prev)
			if prev != nil && !req.Own {
				e.Own = prev.Own
			}
			tx.State.Record(e) // no refresher: it must not send again
		}
	}
	if err := h.stopUnreferenced(tx); err != nil {
		return out, h.saveAfter(tx, err)
	}
	// Two phases. First every route of every VIP to release, one batch per
	// link: the kernel then walks a small routing table for each address
	// it deletes. Then, instance by instance, its addresses and at once
	// whatever must follow them (a fence's track file): an instance whose
	// VIPs keepalived owns reacts to losing them within a few adverts, so
	// the gap to its track file stays one instance's, not the host's. A VIP
	// that cannot be released does not keep the others held: a half-released
	// host is worse than one released as far as it goes.
	errs := refused
	type item struct{ req, at int } // request, index in todos[req]
	byDev := map[string][]item{}
	var devs []string
	for i, req := range reqs {
		dev := ls[i].Name
		if _, ok := byDev[dev]; !ok {
			devs = append(devs, dev)
		}
		if !remove(req) {
			continue
		}
		for k := range todos[i] {
			byDev[dev] = append(byDev[dev], item{i, k})
		}
	}
	routeErr := make([][]error, len(reqs))
	for i := range reqs {
		routeErr[i] = make([]error, len(todos[i]))
	}
	for _, dev := range devs {
		vips := make([]vip.VIP, len(byDev[dev]))
		for n, it := range byDev[dev] {
			vips[n] = todos[it.req][it.at]
		}
		for n, err := range vs[dev].DropRoutes(vips) {
			it := byDev[dev][n]
			routeErr[it.req][it.at] = err
		}
	}
	for i, req := range reqs {
		w := vs[ls[i].Name]
		errsOf := make([]error, len(todos[i]))
		if remove(req) {
			var rest []vip.VIP
			var at []int
			for k, v := range todos[i] {
				if errsOf[k] = routeErr[i][k]; errsOf[k] == nil { // a VIP whose hint is still there keeps its address (I1)
					rest, at = append(rest, v), append(at, k)
				}
			}
			for n, err := range w.DropAddrs(rest) {
				errsOf[at[n]] = err
			}
		} else {
			for k, v := range todos[i] {
				errsOf[k] = w.ClearHint(v) // keepalived owns it: the hint alone
			}
		}
		// What follows the VIPs comes first, before the log lines: every
		// moment between an instance's last VIP and its track file is one
		// in which keepalived may take back what it owns.
		// A handover tells keepalived only when every VIP is gone; a fence
		// tells it in any case (its lease is ending either way).
		if after != nil && (action == runstate.ActionFence || errors.Join(errsOf...) == nil) {
			if err := after(i); err != nil {
				errs = append(errs, err)
			}
		}
		for k, v := range todos[i] {
			if errsOf[k] != nil {
				errs = append(errs, errsOf[k])
				continue
			}
			out = append(out, Outcome{VIP: v, Result: Applied})
			h.log().Info("released VIP", "vip", v.String(), "dev", req.Dev, "action", action, "instance", req.Instance, "address_removed", remove(req))
		}
	}
	return out, h.saveAfter(tx, errors.Join(errs...))
}

// Handover is a planned switchover (I3): release the VIPs and their hints,
// whoever owns the addresses, and only then write 1 to the instance's
// maintenance track file so keepalived gives up MASTER.
func (h *Holder) Handover(ctx context.Context, req Request, maintenanceFile string) ([]Outcome, error) {
	// The maintenance file right after the VIPs, before the state is
	// saved: keepalived's priority-0 advert, and the successor's takeover
	// with it, wait for that file, while the VIPs are already gone.
	out, err := h.Fence(ctx, []Request{req}, runstate.ActionHandover, func(int) error { return h.Track(maintenanceFile, 1) })
	if err != nil {
		return out, err
	}
	h.log().Info("handover: keepalived told to leave MASTER", "instance", req.Instance, "track_file", maintenanceFile)
	return out, nil
}

// Orphan is a local route removed by RemoveOrphans.
type Orphan = hostnet.LocalRoute

// RemoveOrphans deletes local routes for addresses no longer assigned on
// this host (I1), under the lock so that it never races a vipctl that is
// setting a new hint, and forgets refreshers that are gone.
func (h *Holder) RemoveOrphans(ctx context.Context) ([]Orphan, error) {
	tx, err := h.Store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Unlock()
	orphans, err := h.Host.Orphans()
	if err != nil {
		return nil, err
	}
	var removed []Orphan
	for _, r := range orphans {
		if err := h.Host.DeleteRoute(r); err != nil {
			return removed, err
		}
		removed = append(removed, r)
		h.log().Info("removed orphan local route", "vip", r.Dst.String(), "dev", r.Dev, "route", r.String())
	}
	changed := false
	for _, e := range tx.State.Sorted() {
		if e.Refresher != nil && h.Refreshers != nil && !h.Refreshers.Alive(*e.Refresher) {
			e.Refresher = nil
			changed = true
		}
	}
	if changed {
		return removed, tx.Save()
	}
	return removed, nil
}

// RefreshGate is what a refresher process passes before every round of
// sends: under the lock, it lets through only the VIPs whose entry still
// names this refresher and holds the VIP, and that are still assigned. The
// lock stays held until release, so no deletion can happen mid-send (I2).
type RefreshGate struct {
	Holder *Holder
	Self   runstate.Proc
	Dev    string
	VIPs   []vip.VIP
}

// Begin implements announce.Gate.
func (g *RefreshGate) Begin(ctx context.Context) ([]vip.VIP, func(), error) {
	tx, err := g.Holder.Store.Lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, err := g.Holder.Host.Link(g.Dev)
	if err != nil {
		tx.Unlock()
		return nil, nil, err
	}
	w, err := g.Holder.Host.View(l)
	if err != nil {
		tx.Unlock()
		return nil, nil, err
	}
	var out []vip.VIP
	for _, e := range tx.State.Wanted(g.Self) {
		if !slices.Contains(g.VIPs, e.VIP) {
			continue
		}
		ok, err := w.IsAssigned(e.VIP)
		if err != nil {
			tx.Unlock()
			return nil, nil, err
		}
		if ok {
			out = append(out, e.VIP)
		}
	}
	return out, tx.Unlock, nil
}
