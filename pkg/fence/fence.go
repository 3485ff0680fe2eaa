// Package fence takes a host out of the running for its VIPs, in the order
// that never lets two hosts hold one (I3): stop announcing, remove the route
// hint, remove the address (whoever owns it), and only then write 1 to the
// instance's keepalived track file so keepalived leaves MASTER.
package fence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
	"github.com/vipkit/vipkit/pkg/vip"
)

// Instance is a guarded keepalived instance: its VIPs on its link and the
// track file that tells keepalived to leave MASTER.
type Instance struct {
	vip.Target
	TrackFile string
}

// Releaser releases VIPs under vipctl's lock (holder.Holder), all the
// requests in one pass.
type Releaser interface {
	Fence(ctx context.Context, reqs []holder.Request, action string, after func(i int) error) ([]holder.Outcome, error)
}

// Host removes addresses without the lock: the fallback when a vipctl
// process holds the lock too long for the fence's deadline.
type Host interface {
	Link(dev string) (hostnet.Link, error)
	View(l hostnet.Link) (hostnet.View, error)
}

// Actuator fences and unfences instances.
type Actuator struct {
	Releaser Releaser
	Host     Host
	Track    func(path string, value int) error
	// Read reads a track file as keepalived does (trackfile.Read).
	Read   func(path string) (value int, exists bool, err error)
	Ticket func() (runstate.Ticket, error)
	Log    *slog.Logger
	// LockWait bounds the wait for vipctl's lock when the context carries
	// no deadline. With a deadline (a lease's fence: the earliest possible
	// server expiry) the wait is a quarter of the time left, so that a
	// wedged hook costs one bounded wait, derived from the margin, and the
	// release itself keeps the rest.
	LockWait time.Duration
}

// Fence releases every instance's VIPs in one pass and writes FAULT to
// each track file: refreshers stopped, every hint dropped, then instance by
// instance its VIPs and at once its track file. No file says FAULT before
// its instance's VIPs are gone (I3), and an instance's VIPs are never gone
// long before its file says FAULT: keepalived, losing VIPs it owns, would
// re-elect itself and add them back. It keeps going after an error (a
// half-fenced host is worse than a fully fenced one) and returns all
// errors; every track file is written.
func (a *Actuator) Fence(ctx context.Context, ins []Instance, reason string) error {
	start := time.Now()
	written := make([]bool, len(ins))
	var errs []error
	track := func(k int) {
		if written[k] || ins[k].TrackFile == "" {
			return
		}
		written[k] = true
		if err := a.Track(ins[k].TrackFile, trackfile.Fault); err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", ins[k].Instance, err))
		}
	}
	errs = append(errs, a.release(ctx, ins, track))
	for k := range ins {
		track(k) // no VIP, a link gone, a failed release: FAULT all the same
	}
	a.log().Warn("fenced: VIPs released, keepalived told FAULT", "reason", reason, "instances", names(ins), "vips", count(ins), "took", time.Since(start))
	return errors.Join(errs...)
}

// Release removes the instances' VIPs and hints without touching the track
// files (keepalived died: there is nobody to tell).
func (a *Actuator) Release(ctx context.Context, ins []Instance) error {
	return a.release(ctx, ins, nil)
}

// Unfence writes OK to each track file; keepalived then runs its election
// and its hooks take the VIPs if this host wins.
func (a *Actuator) Unfence(ins []Instance) error {
	var errs []error
	for _, in := range ins {
		if in.TrackFile == "" {
			continue
		}
		if err := a.Track(in.TrackFile, trackfile.OK); err != nil {
			errs = append(errs, fmt.Errorf("unfence %s: %w", in.Instance, err))
		}
	}
	return errors.Join(errs...)
}

// Reassert writes each instance's track file only where it does not say
// what it should (keepalived's init_file ... overwrite rewrites it at every
// keepalived start). A file that already says the right thing is left
// untouched: I8.
func (a *Actuator) Reassert(ins []Instance, fenced bool) error {
	want := trackfile.OK
	if fenced {
		want = trackfile.Fault
	}
	var errs []error
	for _, in := range ins {
		if in.TrackFile == "" {
			continue
		}
		v, ok, err := a.Read(in.TrackFile)
		if err == nil && ok && (v != 0) == fenced {
			continue
		}
		a.log().Warn("track file does not say what it should; rewriting", "instance", in.Instance, "track_file", in.TrackFile, "found", v, "exists", ok, "want", want)
		if err := a.Track(in.TrackFile, want); err != nil {
			errs = append(errs, fmt.Errorf("reassert %s: %w", in.Instance, err))
		}
	}
	return errors.Join(errs...)
}

// lockWait is how long the fence may wait for vipctl's lock.
func (a *Actuator) lockWait(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl)/4, time.Millisecond)
	}
	return a.LockWait
}

// release removes every instance's VIPs under vipctl's lock, waiting for it
// once; if the lock does not come in time, it removes them without it.
// done, when set, is called with an instance's index once its VIPs are gone.
func (a *Actuator) release(ctx context.Context, ins []Instance, done func(k int)) error {
	var reqs []holder.Request
	var held []int // index in ins of each request
	var errs []error
	ticket, err := a.Ticket()
	if err != nil {
		return err
	}
	for k, in := range ins {
		if len(in.VIPs) == 0 {
			continue
		}
		// An instance whose link is gone must not stop the others' fence.
		if _, err := a.Host.Link(in.Dev); err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
			continue
		}
		reqs = append(reqs, holder.For(in.Target, ticket))
		held = append(held, k)
	}
	if len(reqs) == 0 {
		return errors.Join(errs...)
	}
	after := func(i int) error {
		if done != nil {
			done(held[i])
		}
		return nil
	}
	wait := a.lockWait(ctx)
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err = a.Releaser.Fence(lctx, reqs, runstate.ActionFence, after)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		if err != nil {
			errs = append(errs, fmt.Errorf("fence: %w", err))
		}
		return errors.Join(errs...)
	}
	// vipctl's lock is held (a hook wedged?): the fence cannot wait longer.
	// Remove the addresses directly, every instance in this one pass and in
	// the same order; a refresher sends only under the lock, so it cannot
	// announce meanwhile.
	heldIns := make([]Instance, len(held))
	for i, k := range held {
		heldIns[i] = ins[k]
	}
	a.log().Error("vipctl lock busy: releasing without it", "waited", wait, "instances", names(heldIns), "vips", count(heldIns))
	views := map[string]hostnet.View{}
	for _, in := range heldIns {
		if _, ok := views[in.Dev]; ok {
			continue
		}
		l, err := a.Host.Link(in.Dev)
		var w hostnet.View
		if err == nil {
			w, err = a.Host.View(l)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
			continue
		}
		views[in.Dev] = w
	}
	// The same rule as under the lock: the fence never takes the host's own
	// address (without the state, nothing counts as added by vipkit).
	vips := make([][]vip.VIP, len(heldIns))
	for i, in := range heldIns {
		w, ok := views[in.Dev]
		if !ok {
			continue
		}
		for _, v := range in.VIPs {
			if err := w.CheckRelease(v, true, false); err != nil {
				a.log().Error("fence: not deleting "+v.String()+": "+err.Error(), "instance", in.Instance)
				errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
				continue
			}
			vips[i] = append(vips[i], v)
		}
	}
	routesGone := make([][]vip.VIP, len(heldIns))
	for i, in := range heldIns {
		w, ok := views[in.Dev]
		if !ok {
			continue
		}
		for n, err := range w.DropRoutes(vips[i]) {
			if err != nil {
				errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
				continue // its hint is still there: its address stays with it (I1)
			}
			routesGone[i] = append(routesGone[i], vips[i][n])
		}
	}
	for i, in := range heldIns {
		if w, ok := views[in.Dev]; ok {
			for _, err := range w.DropAddrs(routesGone[i]) {
				if err != nil {
					errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
				}
			}
		}
		_ = after(i)
	}
	return errors.Join(errs...)
}

func (a *Actuator) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func names(ins []Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.Instance
	}
	return out
}

func count(ins []Instance) int {
	n := 0
	for _, in := range ins {
		n += len(in.VIPs)
	}
	return n
}
