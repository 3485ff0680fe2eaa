package main

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
	"github.com/vipkit/vipkit/pkg/vip"
)

// lockWait bounds how long a command waits for another vipctl.
const lockWait = 10 * time.Second

var (
	devFlag      = &cli.StringFlag{Name: "dev", Aliases: []string{"d"}, Usage: "network `INTERFACE` the VIPs are on"}
	instanceFlag = &cli.StringFlag{Name: "instance", Aliases: []string{"i"}, Usage: "take interface, VIPs, ownership and schedule from this configured keepalived `INSTANCE`"}
	ownFlag      = &cli.BoolFlag{Name: "own", Usage: "vipctl adds and removes the address (VIP not in keepalived's virtual_ipaddress)"}
	srcFlag      = &cli.StringFlag{Name: "src", Usage: "use `ADDR` as the route source hint instead of the interface's primary address"}
)

func scheduleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "count", Usage: "announcements sent at once", DefaultText: "3, or the config's"},
		&cli.DurationFlag{Name: "interval", Usage: "gap between the first announcements", DefaultText: "0s, or the config's"},
		&cli.DurationFlag{Name: "refresh-every", Usage: "refresh period after the burst", DefaultText: "1s, or the config's"},
		&cli.DurationFlag{Name: "refresh-for", Usage: "how long to keep refreshing; 0s means no refresher", DefaultText: "30s, or the config's"},
	}
}

// target is the resolved subject of a command: from --instance or from
// --dev and VIP arguments, validated, before anything happens.
type target struct {
	vip.Target
	schedule config.Announce
}

func resolveTarget(c *cli.Context, e *env) (target, error) {
	t := target{schedule: e.cfg.Announce}
	if name := c.String("instance"); name != "" {
		if c.IsSet("dev") || c.NArg() > 0 {
			return t, usagef("give either --instance or --dev with VIPs, not both")
		}
		in, ok := e.cfg.InstanceByName(name)
		if !ok {
			return t, usagef("instance %q is not in %s", name, configName(e.cfg))
		}
		t = target{Target: in.Target(), schedule: in.Announce}
	} else {
		if c.String("dev") == "" {
			return t, usagef("--dev INTERFACE and at least one VIP are required (or --instance NAME)")
		}
		if err := config.CheckDev(c.String("dev")); err != nil {
			return t, usagef("--dev: %v", err)
		}
		if c.NArg() == 0 {
			return t, usagef("no VIP given")
		}
		vips, err := vip.ParseList(c.Args().Slice())
		if err != nil {
			return t, err
		}
		t.Dev, t.VIPs = c.String("dev"), vips
	}
	if c.IsSet("own") {
		t.Own = c.Bool("own")
	}
	if c.IsSet("count") {
		t.schedule.Count = c.Int("count")
	}
	if c.IsSet("interval") {
		t.schedule.Interval = c.Duration("interval")
	}
	if c.IsSet("refresh-every") {
		t.schedule.RefreshEvery = c.Duration("refresh-every")
	}
	if c.IsSet("refresh-for") {
		t.schedule.RefreshFor = c.Duration("refresh-for")
	}
	if err := t.schedule.Validate(); err != nil {
		return t, usagef("%v", err)
	}
	return t, nil
}

func configName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "the configuration (no file loaded; pass --config)"
	}
	return cfg.Path
}

func toSchedule(a config.Announce) announce.Schedule {
	return announce.Schedule{Count: a.Count, Interval: a.Interval, RefreshEvery: a.RefreshEvery, RefreshFor: a.RefreshFor}
}

// newHolder wires the holder to this host. The returned func releases what
// it opened; a packet socket is handed to a detached child rather than
// closed here (see announce.LinkSender.DupSockets).
func newHolder(e *env) (*holder.Holder, func(), error) {
	n, err := hostnet.Open()
	if err != nil {
		return nil, nil, err
	}
	senders := map[string]*announce.LinkSender{}
	sockets := func() []*os.File {
		var files []*os.File
		for _, s := range senders {
			fs, err := s.DupSockets()
			if err != nil {
				e.log.Debug("hand off packet socket", "error", err)
			}
			files = append(files, fs...)
		}
		return files
	}
	ref := &refreshers{Procs: runstate.Procs{Grace: stopGrace}, stateDir: e.stateDir, logLevel: e.cfg.LogLevel.String(), sockets: sockets}
	h := &holder.Holder{
		Host:  n,
		Store: runstate.New(e.stateDir),
		Senders: func(dev string) (announce.Sender, error) {
			if s, ok := senders[dev]; ok {
				return s, nil
			}
			s, err := announce.NewLinkSender(dev)
			if err != nil {
				return nil, err
			}
			senders[dev] = s
			return s, nil
		},
		Refreshers: ref,
		Track:      trackfile.Write,
		Log:        e.log,
	}
	return h, func() {
		ref.linger()
		for _, s := range senders {
			s.Close()
		}
		n.Close()
	}, nil
}

// holdSignals keeps SIGTERM, SIGINT and SIGHUP from killing a command
// half-way through a change (keepalived SIGTERMs its hooks when it exits);
// every change takes milliseconds. Ignoring is cheaper than catching, which
// starts the runtime's signal goroutine: hooks pay for every microsecond.
// There is no undo: the command exits when the change is done, and Go's
// signal.Reset would not undo it anyway (the runtime leaves an ignored
// SIGTERM ignored) while costing a thread and three hand-offs to it.
func holdSignals() {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
}

// caughtWhileStarting runs start, which starts a refresher, with SIGTERM
// caught instead of ignored. A child inherits SIG_IGN across exec: a
// refresher would lose a SIGTERM that arrives before its runtime installs
// a handler (1 in 10 sent just after up returned), and down would wait
// out the grace before SIGKILL. Caught signals are reset to the default in
// the child; here one arriving meanwhile is dropped, as while ignored.
// SIGINT and SIGHUP stay ignored in the refresher, which has no terminal.
func caughtWhileStarting(start func() error) error {
	if !signal.Ignored(syscall.SIGTERM) {
		return start()
	}
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM)
	defer signal.Ignore(syscall.SIGTERM)
	return start()
}

// change prepares a state-changing command: this process's ticket, signals
// held off until it exits, and a holder. done closes the holder.
func change(e *env) (h *holder.Holder, ticket runstate.Ticket, done func(), err error) {
	ticket, err = runstate.ForkTicket()
	if err != nil {
		return nil, ticket, nil, err
	}
	holdSignals()
	h, closeH, err := newHolder(e)
	if err != nil {
		return nil, ticket, nil, err
	}
	return h, ticket, closeH, nil
}

type holdFunc func(*holder.Holder, context.Context, holder.Request) ([]holder.Outcome, error)

// holdAction is the shared body of up, down, route-src and announce. action
// names the command in the hook statistics; state is what the command
// reports of its instance (up: MASTER; down: it left MASTER), if anything.
func holdAction(name, action, state string, fn holdFunc, needSrc bool) cli.ActionFunc {
	return func(c *cli.Context) (err error) {
		e, err := setup(c)
		if err != nil {
			return err
		}
		defer e.close()
		sn := newSeen(action, e.cfg, started)
		var h *holder.Holder
		defer func() {
			if h == nil && err != nil {
				e.log.Error("vipctl "+action+" failed: "+oneLine(err), "command", action, "error", err)
				sn.failed(runstate.New(e.stateDir))
			}
		}()
		t, err := resolveTarget(c, e)
		if err != nil {
			return err
		}
		var src netip.Addr
		if s := c.String("src"); s != "" && needSrc {
			if src, err = netip.ParseAddr(s); err != nil {
				return usagef("--src %q is not an IP address", s)
			}
		}
		h, ticket, done, err := change(e)
		if err != nil {
			return err
		}
		defer done()
		sn.ticket, sn.vips = ticket, t.VIPs
		if in := instanceOf(e.cfg, t.Target); in != "" && state != "" {
			sn.reports = []stateReport{{in, state}}
		}
		finish := sn.watch(h, e)
		req := holder.For(t.Target, ticket)
		req.Src, req.Schedule = src, toSchedule(t.schedule)
		ctx, cancel := context.WithTimeout(c.Context, lockWait)
		defer cancel()
		out, err := fn(h, ctx, req)
		report(e, name, out)
		finish(err)
		return err
	}
}

func report(e *env, name string, out []holder.Outcome) {
	for _, o := range out {
		switch o.Result {
		case holder.Superseded:
			e.log.Info("skipped: a later keepalived transition was already applied", "action", name, "vip", o.VIP.String(),
				"later_action", o.By.Action, "later_pid", o.By.Ticket.PID)
		case holder.Absent:
			e.log.Debug("skipped: VIP not assigned here", "action", name, "vip", o.VIP.String())
		}
	}
}

func upCommand() *cli.Command {
	return &cli.Command{
		Name:      "up",
		Usage:     "hold VIPs: (with --own) add the address, set the route source hint, announce",
		ArgsUsage: "[VIP...]",
		Description: `Makes this host hold the VIPs. With --own the address is added (IPv4 default /32,
IPv6 /128, or the prefix given); without it keepalived owns the address and only VIPs
already assigned are acted on (absent ones are skipped silently). Then the local-table
route for each VIP gets the interface's primary address as its source, a burst of
gratuitous ARP / unsolicited NA (Override) goes out, and a background refresher keeps
announcing on the schedule. Returns as soon as the burst is sent.

Examples:
  vipctl up --dev eth0 192.0.2.100                   # keepalived notify_master
  vipctl up --own --dev eth0 192.0.2.100 2001:db8::100
  vipctl up --config /etc/vipkit/vipkit.toml --instance VI_1`,
		Flags:  common(append([]cli.Flag{devFlag, instanceFlag, ownFlag, srcFlag}, scheduleFlags()...)...),
		Action: holdAction("up", runstate.ActionUp, "MASTER", (*holder.Holder).Up, true),
	}
}

func downCommand() *cli.Command {
	return &cli.Command{
		Name:      "down",
		Usage:     "stop holding VIPs: stop announcing, remove the hint, then (with --own) the address",
		ArgsUsage: "[VIP...]",
		Description: `Stops announcing at once (the refresher is between two sends, since sends hold the
lock), removes the route source hint, then with --own removes the address. A VIP that is
still assigned and not owned keeps the kernel's own local route (src = VIP), so the host
never holds an assigned VIP without a local route.

Examples:
  vipctl down --dev eth0 192.0.2.100                 # keepalived notify_backup/fault/stop
  vipctl down --own --dev eth0 192.0.2.100`,
		Flags:  common(devFlag, instanceFlag, ownFlag),
		Action: holdAction("down", runstate.ActionDown, runstate.StateReleased, (*holder.Holder).Down, false),
	}
}

func routeSrcCommand() *cli.Command {
	flags := common(devFlag, instanceFlag)
	return &cli.Command{
		Name:  "route-src",
		Usage: "set or remove the route source hint alone",
		Description: `The hint alone, with the same rules as up and down: only VIPs assigned here get a
hint; removing it from an assigned VIP restores the kernel's own route.`,
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "set the hint for assigned VIPs", ArgsUsage: "[VIP...]", Flags: append(flags, srcFlag), Action: holdAction("route-src add", runstate.ActionRouteSrcAdd, "", (*holder.Holder).RouteSrcAdd, true)},
			{Name: "del", Usage: "remove the hint", ArgsUsage: "[VIP...]", Flags: flags, Action: holdAction("route-src del", runstate.ActionRouteSrcDel, "", (*holder.Holder).RouteSrcDel, false)},
		},
	}
}

func announceCommand() *cli.Command {
	return &cli.Command{
		Name:      "announce",
		Usage:     "send gratuitous ARP / unsolicited NA now for VIPs assigned here, optionally refreshing",
		ArgsUsage: "[VIP...]",
		Description: `Announces only addresses assigned here (never what this host does not hold). Use it
from notify_master_rx_lower_pri to re-announce when a split brain heals.

Examples:
  vipctl announce --dev eth0 --refresh-for 0s 192.0.2.100
  vipctl announce --dev eth0 --count 5 --interval 200ms 192.0.2.100`,
		Flags:  common(append([]cli.Flag{devFlag, instanceFlag}, scheduleFlags()...)...),
		Action: holdAction("announce", runstate.ActionAnnounce, "", (*holder.Holder).Announce, false),
	}
}
