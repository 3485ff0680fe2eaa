package vipkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
)

// Scenario names one runner.
type Scenario string

const (
	Election    Scenario = "election"     // everything starts; node-a is elected
	Handover    Scenario = "handover"     // `vipctl handover VI_1` on the master, then --undo (node-a preempts back)
	Crash       Scenario = "crash"        // the master's keepalived is SIGKILLed
	EtcdLoss    Scenario = "etcd-loss"    // the master is cut from etcd only, then reconnected
	Split       Scenario = "split"        // the nodes stop hearing each other for a while (split brain), then heal
	LocalClient Scenario = "local-client" // a TCP client on the master talks to the VIP; the master's keepalived stops
	FencedKill  Scenario = "fenced-kill"  // the master's fenced is SIGKILLed
	Flaps       Scenario = "flaps"        // 50 rapid writes 1/0 to the master's maintenance track file
	Reload      Scenario = "reload"       // SIGHUP adds VI_2 and a second etcd cluster to every fenced
)

// Scenarios lists every runner.
var Scenarios = []Scenario{Election, Handover, Crash, EtcdLoss, Split, LocalClient, FencedKill, Flaps, Reload}

// Applies reports whether a scenario exists in a lab: the control lab
// (keepalived alone) has no vipctl, fenced or etcd. There, "handover" is
// how one moves a VIP without vipkit: SIGTERM to the master's keepalived.
func (v *Lab) Applies(s Scenario) bool {
	if !v.Control {
		return true
	}
	switch s {
	case Election, Handover, Crash, Split, LocalClient:
		return true
	}
	return false
}

// Result is what a scenario measured.
type Result struct {
	lab.Result
	Scenario Scenario
	Mode     string
	// Fence (etcd-loss): when the master let go and when the server expired
	// its lease; FencedLead is fenced's own account (fenced.json).
	Fence      *observe.Fence
	FencedLead time.Duration
	// Local (local-client): one TCP client per VIP on the old master.
	Local []Local
	// FaultAfter (fenced-kill): keepalived's FAULT report − the kill.
	FaultAfter time.Duration
	// Leases (reload): the main cluster's lease ID per node, before and
	// after the SIGHUP.
	Leases map[string][2]int64
	// LoserSpoke (split): the loser sent an advert after the heal, before
	// it stepped down, so the survivor heard a lower priority.
	LoserSpoke bool
}

// Local is what happened to one long-lived TCP connection from the old
// master to a VIP (DESIGN F1).
type Local struct {
	VIP netip.Addr
	// Src is the connection's local address: the VIP itself without a
	// route hint, the interface's primary address with vipkit's.
	Src netip.Addr
	// Takeover is the lab time the new owner took the VIP over.
	Takeover time.Duration
	// Failed is when the connection failed (reset, closed), None if it did
	// not within the wait; Stalled is when it stopped getting answers.
	Failed, Stalled time.Duration
	Text            string // the failure ("error: ... connection reset by peer")
}

// HangWait is how long the local-client scenario waits after the takeover
// for a connection that does not fail: long enough to call it a hang
// (vipkit's clients fail within milliseconds; TCP would retransmit for
// ~15 minutes).
const HangWait = 3 * time.Second

// Run runs one scenario from the steady state (resetting the lab to it
// first; Election needs a lab that is not up yet, Reload one built with
// Options.Second).
func (v *Lab) Run(ctx context.Context, s Scenario) (Result, error) {
	r := Result{Scenario: s, Mode: string(v.Mode)}
	if !v.Applies(s) {
		return r, fmt.Errorf("run %s: does not apply to the control lab (keepalived alone)", s)
	}
	var err error
	switch s {
	case Election:
		err = v.runElection(ctx, &r)
	case Handover:
		err = v.runHandover(ctx, &r)
	case Crash:
		err = v.runCrash(ctx, &r)
	case EtcdLoss:
		err = v.runEtcdLoss(ctx, &r)
	case Split:
		err = v.runSplit(ctx, &r)
	case LocalClient:
		err = v.runLocalClient(ctx, &r)
	case FencedKill:
		err = v.runFencedKill(ctx, &r)
	case Flaps:
		err = v.runFlaps(ctx, &r)
	case Reload:
		err = v.runReload(ctx, &r)
	default:
		err = fmt.Errorf("unknown scenario %q", s)
	}
	if err != nil {
		return r, fmt.Errorf("run %s (%s): %w", s, v.Mode, err)
	}
	return r, nil
}

// Reresolve makes the router forget its entries for the VIPs once the
// client has settled on the new owner, and waits until the router has
// resolved them again and a few more probes went through: after a move
// only the new owner may answer for a VIP (DESIGN F2); an old owner that
// still holds it, or keeps a stale local route for it, answers too and
// shows on the switch. It closes the window (r.End) again.
func (v *Lab) Reresolve(ctx context.Context, r *Result) error {
	at, err := v.ForgetNeighbours()
	if err != nil {
		return err
	}
	last := at
	for _, ip := range v.VIPs() {
		e, err := v.WaitFor(ctx, func(e observe.Event) bool {
			return e.Kind == observe.KindNeigh && e.Host == "router" && e.IP == ip && e.MAC != "" && e.At >= at
		}, 5*time.Second)
		if err != nil {
			return fmt.Errorf("wait for the router to resolve %s again: %w", ip, err)
		}
		last = max(last, e.At)
	}
	// Late answers to the router's request come within microseconds here;
	// give them and a few probes 100 ms of lab time.
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= last+100*time.Millisecond }, 5*time.Second); err != nil {
		return err
	}
	r.End = v.TL.Now()
	return v.Obs.ProbesResolved(ctx, r.End, 5*time.Second)
}

// settle is lab.Settle followed by Reresolve.
func (v *Lab) settle(ctx context.Context, r *Result, to *lab.Node, origin time.Duration) error {
	if err := v.Settle(ctx, &r.Result, to, origin); err != nil {
		return err
	}
	return v.Reresolve(ctx, r)
}

// measure fills the move's metrics for every VIP in use.
func (v *Lab) measure(r *Result, from, to *lab.Node) {
	r.From, r.To = from.Name, to.Name
	end := r.End
	if r.Heal != 0 {
		end = r.Heal
	}
	r.V4 = v.Failover(lab.VIP4, r.Fault, end, from, to)
	if v.Uses(lab.VIP6) {
		r.V6 = v.Failover(lab.VIP6, r.Fault, end, from, to)
	}
}

// measureBack fills the second phase's metrics (after r.Heal).
func (v *Lab) measureBack(r *Result, from, to *lab.Node) {
	r.HealV4 = v.Failover(lab.VIP4, r.Heal, r.End, from, to)
	if v.Uses(lab.VIP6) {
		r.HealV6 = v.Failover(lab.VIP6, r.Heal, r.End, from, to)
	}
}

// movedTo ends a fault phase: to becomes MASTER after r.Fault, the lab
// settles, and the move from from is measured.
func (v *Lab) movedTo(ctx context.Context, r *Result, from, to *lab.Node) error {
	if _, err := v.TL.WaitState(ctx, to.Name, lab.Instance, "MASTER", r.Fault, 10*time.Second); err != nil {
		return err
	}
	if err := v.settle(ctx, r, to, r.Fault); err != nil {
		return err
	}
	v.measure(r, from, to)
	return nil
}

// movedBack ends a heal phase the same way, after r.Heal.
func (v *Lab) movedBack(ctx context.Context, r *Result, from, to *lab.Node) error {
	if _, err := v.TL.WaitState(ctx, to.Name, lab.Instance, "MASTER", r.Heal, 15*time.Second); err != nil {
		return err
	}
	if err := v.settle(ctx, r, to, r.Heal); err != nil {
		return err
	}
	v.measureBack(r, from, to)
	return nil
}

func (v *Lab) runElection(ctx context.Context, r *Result) error {
	r.Name = "election: fenced and keepalived start, node-a is elected"
	m, at, err := v.Up(ctx)
	if err != nil {
		return err
	}
	r.Start, r.Fault, r.End = at, at, v.TL.Now()
	if err := v.Obs.ProbesResolved(ctx, r.End, 5*time.Second); err != nil {
		return err
	}
	r.To = m.Name
	r.V4 = v.Failover(lab.VIP4, r.Fault, r.End, nil, m)
	if v.Uses(lab.VIP6) {
		r.V6 = v.Failover(lab.VIP6, r.Fault, r.End, nil, m)
	}
	return nil
}

func (v *Lab) runHandover(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Start = v.TL.Now()
	if v.Control {
		r.Name = "planned stop without vipkit: SIGTERM to the master's keepalived, then start it again"
		if r.Fault, err = v.StopKeepalived(m); err != nil {
			return err
		}
	} else {
		r.Name = "planned handover: vipctl handover VI_1 on the master, then vipctl handover --undo VI_1"
		r.Fault = v.TL.Mark(observe.KindFault, m.Name, "vipctl handover VI_1")
		v.mu.Lock()
		v.maint[m.Name] = true
		v.mu.Unlock()
		if _, err := v.Vipctl(ctx, m, "handover", lab.Instance); err != nil {
			return err
		}
	}
	if err := v.movedTo(ctx, r, m, peer); err != nil {
		return err
	}
	// Back: the master rejoins and preempts (keepalived's preemption).
	if v.Control {
		// keepalived runs its stop hooks for about a second before it exits;
		// a second daemon would refuse to start meanwhile.
		if p := m.Keepalived(); p != nil {
			if err := p.Wait(10 * time.Second); err != nil {
				return err
			}
		}
		r.Heal = v.TL.Mark(observe.KindFault, m.Name, "keepalived starts again")
		if err := v.StartKeepalived(m, v.Conf); err != nil {
			return err
		}
	} else {
		r.Heal = v.TL.Mark(observe.KindFault, m.Name, "vipctl handover --undo VI_1")
		if _, err := v.Vipctl(ctx, m, "handover", "--undo", lab.Instance); err != nil {
			return err
		}
		v.mu.Lock()
		v.maint[m.Name] = false
		v.mu.Unlock()
	}
	r.HealLabel = "back"
	if err := v.movedBack(ctx, r, peer, m); err != nil {
		return err
	}
	return nil
}

func (v *Lab) runCrash(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = "master crash: SIGKILL to the master's keepalived"
	r.Start = v.TL.Now()
	if r.Fault, err = v.KillKeepalived(m); err != nil {
		return err
	}
	if err := v.movedTo(ctx, r, m, peer); err != nil {
		return err
	}
	return nil
}

func (v *Lab) runEtcdLoss(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = "master loses etcd (and only etcd), fences itself; then etcd comes back"
	r.Start = v.TL.Now()
	if r.Fault, err = v.CutEtcd(m); err != nil {
		return err
	}
	// fenced fences within TTL − margin of its last renewal; the server
	// expires the lease within TTL of it (and reaps every 500 ms).
	within := v.TTL() + 5*time.Second
	if _, err := v.TL.WaitState(ctx, m.Name, lab.Instance, "FAULT", r.Fault, within); err != nil {
		return err
	}
	if _, err := v.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", r.Fault, within); err != nil {
		return err
	}
	key := MemberKey(m.Name)
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool {
		return e.Kind == observe.KindLease && e.Key == key && e.Text == "delete" && e.At >= r.Fault
	}, within); err != nil {
		return fmt.Errorf("wait for the server to expire %s: %w", key, err)
	}
	if err := v.settle(ctx, r, peer, r.Fault); err != nil {
		return err
	}
	f := v.TL.Fence(observe.FenceSpec{Host: m.Name, VIPs: v.VIPs(), Track: lab.Instance + ".fence", Key: key, Since: r.Fault})
	r.Fence = &f
	r.FencedLead = observe.None
	if st, err := v.ReadFencedState(m); err == nil {
		for _, c := range st.Clusters {
			if c.Name == "main" && c.Lease.LastFenceLead != 0 {
				r.FencedLead = c.Lease.LastFenceLead
			}
		}
	}
	v.measure(r, m, peer)
	r.Heal, err = v.RestoreEtcd(m)
	if err != nil {
		return err
	}
	v.mu.Lock()
	delete(v.cut, m.Name)
	v.mu.Unlock()
	r.HealLabel = "back"
	if _, err := v.TL.WaitState(ctx, m.Name, lab.Instance, "BACKUP", r.Heal, 15*time.Second); err != nil {
		return fmt.Errorf("wait for %s to rejoin as BACKUP: %w", m.Name, err)
	}
	if err := v.movedBack(ctx, r, peer, m); err != nil {
		return err
	}
	r.Extra = append(r.Extra, v.fenceRows(*r)...)
	return nil
}

// fenceRows are the summary rows of a fence.
func (v *Lab) fenceRows(r Result) [][2]string {
	f := r.Fence
	d := observe.FormatDur
	rel := func(at time.Duration) string {
		if at == observe.None {
			return "-"
		}
		return fmt.Sprintf("%+.1fms", float64(at-r.Fault)/float64(time.Millisecond))
	}
	return [][2]string{
		{"fence lead time (server expiry − fenced)", d(f.Lead)},
		{"  fenced's own account (fenced.json)", d(r.FencedLead)},
		{"  VIP released / track file 1 (t after cut)", rel(f.Released) + " / " + rel(f.Tracked)},
		{"  keepalived FAULT / server expiry (t after cut)", rel(f.Fault) + " / " + rel(f.Expired)},
	}
}

// GARPMasterDelay is keepalived's default garp_master_delay: a new MASTER
// sends a second burst of gratuitous ARPs this long after the first.
const GARPMasterDelay = 5 * time.Second

// SplitHold is how long the split brain lasts (from the second MASTER):
// longer than the refresh schedule, so the loser's refresher (started
// when it became MASTER) is over at the heal and cannot happen to hand the
// survivor a claim to answer, as in a split brain that lasts.
const SplitHold = RefreshFor + 1500*time.Millisecond

func (v *Lab) runSplit(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = fmt.Sprintf("split brain by bridge port isolation, healed after %s", SplitHold)
	// Split long after the last election, as in the field: keepalived's
	// second gratuitous ARP burst (garp_master_delay, 5 s after MASTER)
	// and vipctl's refresher would otherwise happen to re-announce around
	// the heal and hide what heals it (or not).
	var lastMaster time.Duration
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.Host == m.Name && e.Instance == lab.Instance && e.State == "MASTER"
	}) {
		lastMaster = e.At
	}
	quiet := lastMaster + GARPMasterDelay + 500*time.Millisecond
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= quiet }, GARPMasterDelay+5*time.Second); err != nil {
		return err
	}
	if !v.Control {
		if err := v.WaitNoRefresher(ctx, m, RefreshFor+10*time.Second); err != nil {
			return err
		}
	}
	r.Start = v.TL.Now()
	if r.Fault, err = v.Isolate(); err != nil {
		return err
	}
	second, err := v.TL.WaitState(ctx, peer.Name, lab.Instance, "MASTER", r.Fault, 10*time.Second)
	if err != nil {
		return err
	}
	// Heal right after one of the loser's adverts (lost in the isolation):
	// the survivor's next advert then reaches the loser before the loser's
	// next one reaches the survivor. Unless something makes the loser speak
	// before it steps down (vrrp_higher_prio_send_advert), the survivor
	// never hears a lower priority and nothing re-announces (seed 003);
	// healing at a random moment would test that case only by chance.
	if _, err := v.WaitFor(ctx, func(e observe.Event) bool {
		return e.Kind == observe.KindFrame && e.Op == observe.OpVRRP && e.Owner == peer.Name && e.At >= second.At+SplitHold
	}, SplitHold+5*time.Second); err != nil {
		return fmt.Errorf("wait for an advert of %s to heal after: %w", peer.Name, err)
	}
	if r.Heal, err = v.Heal(); err != nil {
		return err
	}
	backup, err := v.TL.WaitState(ctx, peer.Name, lab.Instance, "BACKUP", r.Heal, 10*time.Second)
	if err != nil {
		return err
	}
	// Healed or not, the client gets back to node-a once the router's
	// stale entry (if any) expires: up to a minute.
	if err := v.SettleWithin(ctx, &r.Result, m, r.Heal, time.Minute); err != nil {
		return err
	}
	if err := v.Reresolve(ctx, r); err != nil {
		return err
	}
	v.measure(r, m, peer)
	v.measureBack(r, peer, m)
	r.LoserSpoke = len(v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindFrame && e.Op == observe.OpVRRP && e.Owner == peer.Name && e.At > r.Heal && e.At <= backup.At
	})) > 0
	race := "loser stepped down unheard (seed 003)"
	if r.LoserSpoke {
		race = "loser advertised once more, survivor heard it"
	}
	r.Extra = append(r.Extra, [2]string{"heal", race})
	return nil
}

func (v *Lab) runLocalClient(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = "local client on the master (TCP to the VIP), then the master's keepalived stops (SIGTERM)"
	r.Start = v.TL.Now()
	type client struct {
		vip netip.Addr
		c   interface {
			Local() netip.Addr
			Close()
		}
	}
	var clients []client
	defer func() {
		for _, c := range clients {
			c.c.Close()
		}
	}()
	for _, ip := range v.VIPs() {
		c, err := v.DialTCP(ctx, m.Name, ip)
		if err != nil {
			return err
		}
		clients = append(clients, client{ip, c})
		if _, err := v.WaitFor(ctx, func(e observe.Event) bool {
			return e.Kind == observe.KindConn && e.Host == m.Name && e.IP == ip && e.Text == "answered"
		}, 5*time.Second); err != nil {
			return fmt.Errorf("wait for the local client to %s to be served: %w", ip, err)
		}
	}
	if r.Fault, err = v.StopKeepalived(m); err != nil {
		return err
	}
	if err := v.movedTo(ctx, r, m, peer); err != nil {
		return err
	}
	// Wait for every client to fail, or HangWait after the takeover.
	takeover := r.Fault + r.V4.Takeover
	if r.V4.Takeover == observe.None {
		takeover = r.Fault
	}
	failed := func(ip netip.Addr) bool {
		return len(v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindConn && e.Host == m.Name && e.IP == ip && e.At >= r.Fault && !e.OK && e.Text != "stalled"
		})) > 0
	}
	err = v.WaitUntil(ctx, func() bool {
		for _, c := range clients {
			if !failed(c.vip) {
				return false
			}
		}
		return true
	}, takeover+HangWait-v.TL.Now())
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		// A hang: wait out the window on the timeline itself.
		if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= takeover+HangWait }, HangWait+time.Second); err != nil {
			return err
		}
	}
	r.End = max(r.End, v.TL.Now())
	for _, c := range clients {
		l := Local{VIP: c.vip, Src: c.c.Local(), Failed: observe.None, Stalled: observe.None}
		f := r.V4
		if c.vip.Is6() {
			f = r.V6
		}
		l.Takeover = observe.None
		if f.Takeover != observe.None {
			l.Takeover = r.Fault + f.Takeover
		}
		for _, e := range v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindConn && e.Host == m.Name && e.IP == c.vip && e.At >= r.Fault
		}) {
			switch {
			case e.Text == "stalled" && l.Stalled == observe.None:
				l.Stalled = e.At
			case !e.OK && e.Text != "stalled" && l.Failed == observe.None:
				l.Failed, l.Text = e.At, e.Text
			}
		}
		r.Local = append(r.Local, l)
		r.Extra = append(r.Extra, [2]string{fmt.Sprintf("local client %s (src %s)", c.vip, l.Src), l.Outcome()})
	}
	return nil
}

// Outcome says in a few words what happened to the connection.
func (l Local) Outcome() string {
	if l.Failed != observe.None && l.Takeover != observe.None {
		what := "failed"
		if strings.Contains(l.Text, "reset") {
			what = "reset"
		}
		return fmt.Sprintf("%s %s after takeover", what, observe.FormatDur(l.Failed-l.Takeover))
	}
	if l.Failed != observe.None {
		return l.Text
	}
	return fmt.Sprintf("hangs (no answer, no error for %s)", HangWait)
}

func (v *Lab) runFencedKill(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = "fenced dies on the master (SIGKILL)"
	r.Start = v.TL.Now()
	if r.Fault, err = v.Signal(m.Name, v.Fenced(m), syscall.SIGKILL); err != nil {
		return err
	}
	fault, err := v.TL.WaitState(ctx, m.Name, lab.Instance, "FAULT", r.Fault, 10*time.Second)
	if err != nil {
		return err
	}
	r.FaultAfter = fault.At - r.Fault
	if err := v.movedTo(ctx, r, m, peer); err != nil {
		return err
	}
	r.Extra = append(r.Extra, [2]string{"keepalived FAULT after the kill", observe.FormatDur(r.FaultAfter)})
	return nil
}

// Flap schedule: FlapCount writes, FlapEvery apart, alternating 1 and 0
// (ending on 0, so the master may return).
const (
	FlapCount = 50
	FlapEvery = 20 * time.Millisecond
)

func (v *Lab) runFlaps(ctx context.Context, r *Result) error {
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = fmt.Sprintf("%d rapid writes 1/0 to the master's maintenance track file, %s apart", FlapCount, FlapEvery)
	r.Start = v.TL.Now()
	// The pace is the stimulus, not a wait for an event.
	tick := time.NewTicker(FlapEvery)
	defer tick.Stop()
	for i := range FlapCount {
		value := "1"
		if i%2 == 1 {
			value = "0"
		}
		at, err := v.WriteMaint(m, value)
		if err != nil {
			return err
		}
		if i == 0 {
			r.Fault = at
		}
		r.Heal = at
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	// The last write was 0: everything must settle with the master back.
	if _, err := v.WaitSteady(ctx, r.Heal, 30*time.Second); err != nil {
		return err
	}
	r.End = v.TL.Now()
	if err := v.Obs.ProbesResolved(ctx, r.End, 5*time.Second); err != nil {
		return err
	}
	r.From, r.To = m.Name, m.Name
	r.V4 = v.Failover(lab.VIP4, r.Fault, r.End, m, peer)
	if v.Uses(lab.VIP6) {
		r.V6 = v.Failover(lab.VIP6, r.Fault, r.End, m, peer)
	}
	r.Heal = 0
	transitions := len(v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.Instance == lab.Instance && e.At >= r.Fault && e.At <= r.End
	}))
	r.Extra = append(r.Extra, [2]string{"keepalived transitions reported", fmt.Sprint(transitions)})
	return nil
}

func (v *Lab) runReload(ctx context.Context, r *Result) error {
	if len(v.Etcd2) == 0 {
		return errors.New("the lab has no second etcd cluster (Options.Second)")
	}
	m, err := v.Reset(ctx)
	if err != nil {
		return err
	}
	peer := v.Peer(m)
	r.Name = "SIGHUP: every fenced gains VI_2, guarded by a second etcd cluster"
	r.Start = v.TL.Now()
	r.Leases = map[string][2]int64{}
	lease := func(n *lab.Node) (int64, error) {
		st, err := v.ReadFencedState(n)
		if err != nil {
			return 0, err
		}
		for _, c := range st.Clusters {
			if c.Name == "main" {
				return c.Lease.LeaseID, nil
			}
		}
		return 0, fmt.Errorf("fenced on %s holds no lease in cluster main", n.Name)
	}
	for _, n := range v.Nodes {
		id, err := lease(n)
		if err != nil {
			return err
		}
		r.Leases[n.Name] = [2]int64{id, 0}
		if err := v.WriteTOML(n, true); err != nil {
			return err
		}
	}
	for i, n := range v.Nodes {
		at, err := v.Signal(n.Name, v.Fenced(n), syscall.SIGHUP)
		if err != nil {
			return err
		}
		if i == 0 {
			r.Fault = at
		}
	}
	err = v.WaitUntil(ctx, func() bool {
		now := v.TL.Now()
		for _, n := range v.Nodes {
			want := "BACKUP"
			if n == m {
				want = "MASTER"
			}
			if v.TL.TrackAt(n.Name, Instance2+".fence", now) != "0" || v.TL.StateAt(n.Name, Instance2, now) != want {
				return false
			}
		}
		return v.Holds(m, netip.MustParseAddr(vip2v4), now) && !v.Holds(peer, netip.MustParseAddr(vip2v4), now)
	}, 20*time.Second)
	if err != nil {
		return fmt.Errorf("wait for VI_2 to be guarded and elected: %w", err)
	}
	r.End = v.TL.Now()
	for _, n := range v.Nodes {
		id, err := lease(n)
		if err != nil {
			return err
		}
		l := r.Leases[n.Name]
		l[1] = id
		r.Leases[n.Name] = l
		r.Extra = append(r.Extra, [2]string{"main lease of " + n.Name + " before / after", fmt.Sprintf("%x / %x", l[0], l[1])})
	}
	r.From, r.To = m.Name, m.Name
	r.V4 = v.Failover(lab.VIP4, r.Fault, r.End, m, peer)
	return nil
}

// Report prints a result's text timeline and summary to w (when not nil)
// and saves them with the SVG timeline as <slug>.txt and <slug>.svg in
// the lab's results directory. It returns the SVG's path.
func (v *Lab) Report(w io.Writer, slug string, r Result) (string, error) {
	return v.Lab.Report(w, slug, r.Result)
}
