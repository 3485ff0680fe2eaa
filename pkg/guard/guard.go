// Package guard closes the windows that a hook alone cannot (I1): when an
// address disappears (keepalived deleted the VIP before its hook runs, or a
// hook never runs), the route guard removes the orphaned hint at once; when
// keepalived dies and leaves its VIPs assigned, the reaper removes them.
package guard

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vipkit/vipkit/pkg/hostnet"
)

// AddrEvent is one address change seen on netlink.
type AddrEvent struct {
	Addr    netip.Addr
	Deleted bool
	At      time.Time // when the guard received it
}

// Remover deletes orphan hint routes under vipctl's lock (holder.Holder).
type Remover interface {
	RemoveOrphans(ctx context.Context) ([]hostnet.LocalRoute, error)
}

// Routes removes orphaned hint routes: on every address deletion at once,
// and on a timer as a backstop for events lost when netlink overflows.
type Routes struct {
	Events  <-chan AddrEvent
	Remover Remover
	Every   time.Duration
	Log     *slog.Logger
	// OnRemoved is told how long after the deletion event a route was gone.
	OnRemoved func(r hostnet.LocalRoute, window time.Duration)
}

// Run guards until ctx ends or the event stream closes.
func (g *Routes) Run(ctx context.Context) error {
	g.reconcile(ctx, time.Time{})
	tick := time.NewTicker(g.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			g.reconcile(ctx, time.Time{})
		case ev, ok := <-g.Events:
			if !ok {
				return nil
			}
			if ev.Deleted {
				g.reconcile(ctx, ev.At)
			}
		}
	}
}

// reconcile removes every orphan; since is the deletion event that
// triggered it (zero for the periodic pass).
func (g *Routes) reconcile(ctx context.Context, since time.Time) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	removed, err := g.Remover.RemoveOrphans(rctx)
	if err != nil {
		g.log().Error("route guard: remove orphan routes", "error", err)
	}
	for _, r := range removed {
		var window time.Duration
		if !since.IsZero() {
			window = time.Since(since)
		}
		g.log().Info("route guard removed an orphan hint route", "vip", r.Dst.String(), "dev", r.Dev, "window", window.String(), "periodic", since.IsZero())
		if g.OnRemoved != nil {
			g.OnRemoved(r, window)
		}
	}
}

func (g *Routes) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}
