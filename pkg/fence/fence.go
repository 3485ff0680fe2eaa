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
	"strings"
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
	Fence(ctx context.Context, reqs []holder.Request, action string) ([]holder.Outcome, error)
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

// Fence releases every instance's VIPs in one pass (refreshers stopped, then
// per instance its hints and VIPs), then writes FAULT to each track file:
// every VIP is gone before any file says FAULT (I3). It keeps going after
// an error (a half-fenced host is worse than a fully fenced one) and returns
// all errors.
func (a *Actuator) Fence(ctx context.Context, ins []Instance, reason string) error {
	start := time.Now()
	errs := []error{a.release(ctx, ins)}
	for _, in := range ins {
		if in.TrackFile == "" {
			continue
		}
		if err := a.Track(in.TrackFile, trackfile.Fault); err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
		}
	}
	a.log().Warn("fenced: VIPs released, keepalived told FAULT", "reason", reason, "instances", names(ins), "vips", count(ins), "took", time.Since(start))
	return errors.Join(errs...)
}

// Release removes the instances' VIPs and hints without touching the track
// files (keepalived died: there is nobody to tell).
func (a *Actuator) Release(ctx context.Context, ins []Instance) error {
	return a.release(ctx, ins)
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
func (a *Actuator) release(ctx context.Context, ins []Instance) error {
	var reqs []holder.Request
	var errs []error
	ticket, err := a.Ticket()
	if err != nil {
		return err
	}
	var held []Instance
	for _, in := range ins {
		if len(in.VIPs) == 0 {
			continue
		}
		// An instance whose link is gone must not stop the others' fence.
		if _, err := a.Host.Link(in.Dev); err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Instance, err))
			continue
		}
		reqs = append(reqs, holder.For(in.Target, ticket))
		held = append(held, in)
	}
	if len(reqs) == 0 {
		return errors.Join(errs...)
	}
	wait := a.lockWait(ctx)
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err = a.Releaser.Fence(lctx, reqs, runstate.ActionFence)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		if err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", strings.Join(names(held), ","), err))
		}
		return errors.Join(errs...)
	}
	// vipctl's lock is held (a hook wedged?): the fence cannot wait longer.
	// Remove the addresses directly, every instance in this one pass; a
	// refresher sends only under the lock, so it cannot announce meanwhile.
	a.log().Error("vipctl lock busy: releasing without it", "waited", wait, "instances", names(held), "vips", count(held))
	var devs []string
	byDev := map[string][]vip.VIP{}
	owner := map[vip.VIP]string{}
	for _, in := range held {
		if _, ok := byDev[in.Dev]; !ok {
			devs = append(devs, in.Dev)
		}
		byDev[in.Dev] = append(byDev[in.Dev], in.VIPs...)
		for _, v := range in.VIPs {
			owner[v] = in.Instance
		}
	}
	for _, dev := range devs {
		l, err := a.Host.Link(dev)
		var w hostnet.View
		if err == nil {
			w, err = a.Host.View(l)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", dev, err))
			continue
		}
		// The same rule as under the lock: the fence never takes the host's
		// own address (without the state, nothing counts as added by vipkit).
		var vips []vip.VIP
		for _, v := range byDev[dev] {
			if err := w.CheckRelease(v, true, false); err != nil {
				a.log().Error("fence: not deleting "+v.String()+": "+err.Error(), "instance", owner[v])
				errs = append(errs, fmt.Errorf("fence %s: %w", owner[v], err))
				continue
			}
			vips = append(vips, v)
		}
		for i, err := range w.ReleaseAll(vips) {
			if err != nil {
				errs = append(errs, fmt.Errorf("fence %s: %w", owner[vips[i]], err))
			}
		}
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
