package guard

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vipkit/vipkit/pkg/vip"
)

// Claim is another host announcing an address: a gratuitous ARP or ARP
// reply with the address as sender, or a Neighbor Advertisement for it.
type Claim struct {
	Dev  string
	Addr netip.Addr
	MAC  net.HardwareAddr
	At   time.Time
}

// Defender re-announces a VIP this host holds when another host claims it.
//
// keepalived's split-brain heal is a race: the lower-priority master often
// steps down without the survivor ever hearing it, so nothing re-announces
// and neighbours keep the loser's MAC (DESIGN F3). Answering every claim
// gives the survivor the last word. The answer waits Delay and coalesces a
// burst into one (trailing edge), and goes through the same gate as every
// announcement, so a host that is releasing the VIP (a normal handover, in
// which the new owner's announcements overlap the old owner's release for a
// moment) never answers: by then the address is gone.
type Defender struct {
	Claims <-chan Claim
	Delay  time.Duration
	// Guarded says whether an address is a configured VIP, and on which
	// interface.
	Guarded func(a netip.Addr) (dev string, v vip.VIP, ok bool)
	// Announce sends one announcement if the VIP is still assigned here,
	// and says whether it did.
	Announce func(ctx context.Context, dev string, v vip.VIP) (sent bool, err error)
	Log      *slog.Logger
	// OnDefend is told about every answer sent.
	OnDefend func(v vip.VIP, against net.HardwareAddr)
}

// Run answers claims until ctx ends or the claim stream closes.
func (d *Defender) Run(ctx context.Context) error {
	type pending struct {
		dev     string
		v       vip.VIP
		against net.HardwareAddr
		at      time.Time
	}
	due := map[netip.Addr]*pending{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	rearm := func() {
		var next time.Time
		for _, p := range due {
			if next.IsZero() || p.at.Before(next) {
				next = p.at
			}
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-d.Claims:
			if !ok {
				return nil
			}
			dev, v, ok := d.Guarded(c.Addr)
			if !ok || (dev != "" && c.Dev != "" && dev != c.Dev) {
				continue
			}
			// Each new claim pushes the answer back: the answer follows the
			// last claim of a burst.
			due[c.Addr] = &pending{dev: dev, v: v, against: c.MAC, at: time.Now().Add(d.Delay)}
			rearm()
		case <-timer.C:
			now := time.Now()
			for a, p := range due {
				if p.at.After(now) {
					continue
				}
				delete(due, a)
				sent, err := d.Announce(ctx, p.dev, p.v)
				if err != nil {
					d.log().Warn("defend VIP", "vip", p.v.String(), "dev", p.dev, "error", err)
					continue
				}
				if !sent {
					continue // not held here: the claim was the rightful owner's
				}
				d.log().Info("VIP claimed by another host; re-announced", "vip", p.v.String(), "dev", p.dev, "claimed_by", p.against.String())
				if d.OnDefend != nil {
					d.OnDefend(p.v, p.against)
				}
			}
			rearm()
		}
	}
}

func (d *Defender) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}
