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

// Instance is what fencing needs to know about a guarded keepalived
// instance.
type Instance struct {
	Name      string
	Dev       string
	VIPs      []vip.VIP
	Own       bool
	TrackFile string
}

// Releaser releases VIPs under vipctl's lock (holder.Holder).
type Releaser interface {
	Fence(ctx context.Context, req holder.Request, action string) ([]holder.Outcome, error)
}

// Host removes an address without the lock: the fallback when a vipctl
// process holds the lock too long for the fence's deadline.
type Host interface {
	Link(dev string) (hostnet.Link, error)
	CheckRelease(l hostnet.Link, v vip.VIP, removeAddr, added bool) error
	Release(l hostnet.Link, v vip.VIP) error
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
	// LockWait bounds the wait for vipctl's lock before the lock-free path.
	LockWait time.Duration
}

// Fence releases every instance's VIPs, then writes FAULT to each track
// file. It keeps going after an error (a half-fenced host is worse than a
// fully fenced one) and returns all errors.
func (a *Actuator) Fence(ctx context.Context, ins []Instance, reason string) error {
	var errs []error
	for _, in := range ins {
		if err := a.release(ctx, in); err != nil {
			errs = append(errs, err)
		}
	}
	for _, in := range ins {
		if in.TrackFile == "" {
			continue
		}
		if err := a.Track(in.TrackFile, trackfile.Fault); err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Name, err))
		}
	}
	a.log().Warn("fenced: VIPs released, keepalived told FAULT", "reason", reason, "instances", names(ins))
	return errors.Join(errs...)
}

// Release removes the instances' VIPs and hints without touching the track
// files (keepalived died: there is nobody to tell).
func (a *Actuator) Release(ctx context.Context, ins []Instance) error {
	var errs []error
	for _, in := range ins {
		if err := a.release(ctx, in); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
			errs = append(errs, fmt.Errorf("unfence %s: %w", in.Name, err))
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
		a.log().Warn("track file does not say what it should; rewriting", "instance", in.Name, "track_file", in.TrackFile, "found", v, "exists", ok, "want", want)
		if err := a.Track(in.TrackFile, want); err != nil {
			errs = append(errs, fmt.Errorf("reassert %s: %w", in.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Actuator) release(ctx context.Context, in Instance) error {
	if len(in.VIPs) == 0 {
		return nil
	}
	ticket, err := a.Ticket()
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, a.LockWait)
	defer cancel()
	req := holder.Request{Dev: in.Dev, VIPs: in.VIPs, Own: in.Own, Instance: in.Name, Ticket: ticket}
	_, err = a.Releaser.Fence(lctx, req, runstate.ActionFence)
	if err == nil {
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fence %s: %w", in.Name, err)
	}
	// vipctl's lock is held (a hook wedged?): the fence cannot wait. Remove
	// the addresses directly; a refresher may still send once, which is
	// better than holding the VIP past the lease.
	a.log().Error("vipctl lock busy: releasing without it", "instance", in.Name)
	l, err := a.Host.Link(in.Dev)
	if err != nil {
		return fmt.Errorf("fence %s: %w", in.Name, err)
	}
	var errs []error
	for _, v := range in.VIPs {
		// The same rule as under the lock: the fence never takes the host's
		// own address (without the state, nothing counts as added by vipkit).
		if err := a.Host.CheckRelease(l, v, true, false); err != nil {
			a.log().Error("fence: not deleting "+v.String()+": "+err.Error(), "instance", in.Name)
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Name, err))
			continue
		}
		if err := a.Host.Release(l, v); err != nil {
			errs = append(errs, fmt.Errorf("fence %s: %w", in.Name, err))
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
		out[i] = in.Name
	}
	return out
}
