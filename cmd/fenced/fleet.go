package main

import (
	"log/slog"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/fleetview"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/supervisor"
	"github.com/vipkit/vipkit/pkg/vip"
)

// observer samples the host for the fleet view: vipctl's state (read
// without its lock: vipctl replaces the file atomically) and, per
// interface the instances are on, its MAC and addresses, on a netlink
// socket of its own (n is not shared with the fence).
func observer(n *hostnet.Net, stateDir string, log *slog.Logger) supervisor.Observer {
	store := runstate.New(stateDir)
	return func(ins []vip.Target, fenced bool, prev []fencedstate.InstanceView) []fencedstate.InstanceView {
		h := fleetview.Host{Links: map[string]fleetview.Link{}, Fenced: fenced, Now: time.Now().UTC()}
		st, err := store.Read()
		if err != nil {
			log.Warn("fleet view: "+err.Error(), "error", err)
		}
		h.State = st
		for _, t := range ins {
			if _, ok := h.Links[t.Dev]; ok {
				continue
			}
			l, err := n.Link(t.Dev)
			if err != nil {
				h.Links[t.Dev] = fleetview.Link{}
				continue
			}
			lk := fleetview.Link{MAC: l.MAC}
			if addrs, err := n.Addrs(l, 0); err == nil {
				lk.Assigned = make(map[string]bool, len(addrs))
				for _, a := range addrs {
					lk.Assigned[a.Prefix.Addr().String()] = true
				}
			}
			h.Links[t.Dev] = lk
		}
		return fleetview.Local(ins, h, prev)
	}
}
