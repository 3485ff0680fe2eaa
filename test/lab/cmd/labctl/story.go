package main

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// The demo's narration: what happened in each scenario and why it matters,
// in a few sentences built from what was measured.

// released is when host stopped claiming ip (address and local route gone)
// after from; None if it still claims it at the end of the result.
func released(tl *observe.Timeline, host string, ip netip.Addr, from, end time.Duration) time.Duration {
	out := observe.None
	for _, s := range observe.Clip(tl.ClaimSpans(host, ip, end+1), from, end+1) {
		if s.To > end {
			return observe.None
		}
		out = s.To
	}
	return out
}

func after(at, origin time.Duration) string {
	if at == observe.None {
		return "never"
	}
	return d(at - origin)
}

func storyElection(v, _ *vipkit.Lab, r, _ *vipkit.Result) string {
	unfenced := observe.None
	for _, e := range v.TL.TrackWrites("node-a", lab.Instance+".fence", r.Fault, r.End) {
		if e.Text == "0" {
			unfenced = e.At
			break
		}
	}
	return fmt.Sprintf("fenced started first on each node and wrote 1 to keepalived's track file: FAULT, so no node "+
		"could take the VIP without a lease. It took a lease in etcd and wrote 0 only after the %s hold-down "+
		"(%s after the start). node-a, the higher priority, was elected %s after the start and serves the VIP "+
		"with vipkit's route hint: local clients connect from %s, not from the VIP.",
		vipkit.DefaultHoldDown, after(unfenced, r.Fault), d(r.V4.Takeover), v.Node("node-a").Host.Addr4)
}

func storyHandover(v, _ *vipkit.Lab, r, _ *vipkit.Result) string {
	rel := released(v.TL, r.From, lab.VIP4, r.Fault, r.Heal)
	return fmt.Sprintf("`vipctl handover VI_1` removed node-a's VIPs and route hints first (%s after the command) "+
		"and only then wrote 1 to the maintenance track file: keepalived went FAULT and node-b took over %s after "+
		"the command, with %s of two owners; the router followed %s later, and clients lost %s. "+
		"`vipctl handover --undo VI_1` let node-a back in as BACKUP; with the higher priority it preempted "+
		"node-b (keepalived's own switchover), router on node-a %s after that takeover.",
		after(rel, r.Fault), d(r.V4.Takeover), d(r.V4.DualOwner), d(r.V4.RouterConvergence), d(r.V4.Outage),
		d(r.HealV4.RouterConvergence))
}

func storyCrash(v, ctl *vipkit.Lab, r, c *vipkit.Result) string {
	rel := released(v.TL, r.From, lab.VIP4, r.Fault, r.End)
	s := fmt.Sprintf("keepalived on node-a died without a word (SIGKILL): no priority-0 advert, so node-b waited out "+
		"VRRP's master-down interval and took over after %s. A killed keepalived leaves its VIP assigned "+
		"(keepalived issue 2361); fenced saw keepalived's VRRP process die and removed the VIP and its route "+
		"hint %s after the kill, before node-b took over: %s of two owners, and only node-b answered the router "+
		"when it asked again.", d(r.V4.Takeover), after(rel, r.Fault), d(r.V4.DualOwner))
	if c != nil {
		n := len(ctl.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindFrame && e.Owner == c.From && e.Op != observe.OpVRRP && e.At > c.Fault+c.V4.Takeover && e.At <= c.End
		}))
		s += fmt.Sprintf(" With keepalived alone node-a kept the VIP: two owners for %s (until the end of the window) "+
			"and it still answered for the VIP %d times after node-b took over, so the router may pick either.",
			d(c.V4.DualOwner), n)
	}
	return s
}

func storyEtcdLoss(_, _ *vipkit.Lab, r, _ *vipkit.Result) string {
	f := r.Fence
	if f == nil {
		return ""
	}
	return fmt.Sprintf("node-a lost etcd and only etcd: its packets to etcd vanished, yet it still served clients and "+
		"heard node-b. fenced could no longer prove its lease, so %s after the cut (send time of the last "+
		"acknowledged renewal + TTL − margin) it removed the VIPs and wrote 1 to the track file; keepalived "+
		"reported FAULT at %s and node-b took over at %s. The etcd server expired node-a's lease at %s: node-a had "+
		"let go %s before anyone could have been granted its role (fenced's own account: %s). Clients lost %s. "+
		"Reconnected, node-a took a new lease, waited out the hold-down, came back as BACKUP and preempted.",
		after(f.Fenced, r.Fault), after(f.Fault, r.Fault), d(r.V4.Takeover), after(f.Expired, r.Fault),
		d(f.Lead), d(r.FencedLead), d(r.V4.Outage))
}

func storySplit(_, _ *vipkit.Lab, r, c *vipkit.Result) string {
	s := fmt.Sprintf("node-a and node-b stopped hearing each other (bridge port isolation) while both still reached "+
		"the router: node-b became MASTER too, %s of two owners, and the router learnt node-b's MAC. The heal came "+
		"right after one of node-b's adverts, so node-a's next advert reached node-b first: the race keepalived "+
		"loses when node-b steps down without a word (seed 003). ", d(r.V4.DualOwner))
	back := routerBack(r, r.HealV4)
	switch {
	case back != observe.None && back <= time.Second && r.LoserSpoke:
		s += fmt.Sprintf("Here node-b advertised once more before stepping down (vrrp_higher_prio_send_advert), "+
			"node-a heard a lower priority and re-announced (keepalived's GARPs and vipctl announce): the router "+
			"was back on node-a %s after the heal.", d(back))
	case back != observe.None && back <= time.Second:
		s += fmt.Sprintf("node-a re-announced anyway: the router was back on node-a %s after the heal.", d(back))
	default:
		s += fmt.Sprintf("Nobody re-announced: the router kept sending the VIP's traffic to node-b for %s after the "+
			"heal (client outage %s), until its own entry expired.", d(back), d(r.HealV4.Outage))
	}
	if c != nil {
		s += fmt.Sprintf(" keepalived alone (without that setting): router back on node-a only %s after the heal, "+
			"client outage %s.", d(routerBack(c, c.HealV4)), d(c.HealV4.Outage))
	}
	return s
}

func storyLocal(v, _ *vipkit.Lab, r, c *vipkit.Result) string {
	if len(r.Local) == 0 {
		return ""
	}
	l := r.Local[0]
	what := "it " + l.Outcome()
	if l.Failed != observe.None && l.Takeover != observe.None {
		what = fmt.Sprintf("node-b reset it %s after the takeover", d(l.Failed-l.Takeover))
	}
	s := fmt.Sprintf("A client on node-a held a TCP connection to the VIP when node-a's keepalived stopped. "+
		"vipkit's route hint had made it connect from %s, so after the move its next segment reached node-b: "+
		"%s. The application sees an error at once and reconnects, to node-b.", l.Src, what)
	if c != nil && len(c.Local) > 0 {
		cl := c.Local[0]
		s += fmt.Sprintf(" With keepalived alone it connected from the VIP itself (%s); node-b drops its segments "+
			"(a martian source) and the client %s; TCP would go on retrying for about 15 minutes.", cl.Src, cl.Outcome())
	}
	return s
}
