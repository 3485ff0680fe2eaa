package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hooks"
	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/pkg/runstate"
)

// apply carries out the actions of one keepalived event: the instances of
// a sync group that move the same way in one pass of the holder (one lock,
// one read per link, one state write).
//
// sn records the run for fenced (seen.go): the state keepalived reported for
// each instance, in the same write.
func apply(ctx context.Context, e *env, h *holder.Holder, ev keepalived.Event, ticket runstate.Ticket, sn *seen) (err error) {
	sn.ticket = ticket
	finish := sn.watch(h, e)
	defer func() { finish(err) }()
	acts, err := hooks.Plan(e.cfg, ev)
	if err != nil {
		return err
	}
	for _, a := range acts {
		sn.vips = append(sn.vips, a.Instance.VIPs...)
		if a.Verb != hooks.Announce {
			sn.reports = append(sn.reports, stateReport{a.Instance.Name, string(ev.State)})
		}
	}
	var errs []error
	for len(acts) > 0 {
		verb := acts[0].Verb
		var reqs []holder.Request
		var names []string
		for len(acts) > 0 && acts[0].Verb == verb {
			in := acts[0].Instance
			req := holder.For(in.Target(), ticket)
			req.Schedule = toSchedule(in.Announce)
			reqs, names = append(reqs, req), append(names, in.Name)
			acts = acts[1:]
		}
		lctx, cancel := context.WithTimeout(ctx, lockWait)
		out, err := h.Apply(lctx, holder.Verb(verb), reqs)
		cancel()
		report(e, string(verb), out)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", verb, strings.Join(names, ","), err))
			continue
		}
		e.log.Info("keepalived transition applied", "instance", strings.Join(names, ","), "state", string(ev.State), "action", string(verb))
	}
	return errors.Join(errs...)
}

func notifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "notify",
		Usage:     "keepalived generic notify hook: INSTANCE|GROUP NAME STATE PRIORITY",
		ArgsUsage: "TYPE NAME STATE PRIORITY",
		Description: `keepalived's generic notify script receives these four arguments appended to the
configured command. The configuration maps the instance (or sync group) to its interface,
VIPs and ownership. MASTER holds the VIPs, BACKUP, FAULT, STOP and DELETED release them,
MASTER_RX_LOWER_PRI re-announces.

keepalived.conf:
  notify "/usr/local/sbin/vipctl notify --config /etc/vipkit/vipkit.toml"`,
		Flags: common(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 4 {
				return usagef("notify takes TYPE NAME STATE PRIORITY (got %d arguments)", c.NArg())
			}
			ev, err := keepalived.ParseNotifyArgs(c.Args().Slice())
			if err != nil {
				return err
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			h, ticket, done, err := change(e)
			if err != nil {
				return err
			}
			defer done()
			return apply(c.Context, e, h, ev, ticket, newSeen("notify", e.cfg, started))
		},
	}
}

func fifoCommand() *cli.Command {
	return &cli.Command{
		Name:      "fifo",
		Usage:     "read keepalived's notify FIFO and apply every transition in order",
		ArgsUsage: "PATH",
		Description: `Run by keepalived as vrrp_notify_fifo_script (keepalived appends the FIFO path).
Lines are applied strictly in order; the FIFO is drained continuously so keepalived never
drops a line. On SIGTERM it keeps reading briefly, because keepalived signals the FIFO
script before it writes the STOP lines, then exits.

keepalived.conf (global_defs):
  vrrp_notify_fifo /run/vipkit/keepalived.fifo
  vrrp_notify_fifo_script "/usr/local/sbin/vipctl fifo --config /etc/vipkit/vipkit.toml"`,
		Flags: common(&cli.DurationFlag{Name: "drain", Value: 800 * time.Millisecond, Usage: "keep reading this long after SIGTERM"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("fifo takes the FIFO PATH")
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			path := c.Args().First()
			// Read-write: never blocks for a writer, never sees end of file
			// when keepalived reopens it on reload.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("open notify FIFO %s: %w", path, err)
			}
			defer f.Close()
			if st, err := f.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
				return usagef("%s is not a FIFO", path)
			}
			h, closeH, err := newHolder(e)
			if err != nil {
				return err
			}
			defer closeH()
			stop := make(chan struct{})
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			go func() { <-sigs; close(stop) }()
			e.log.Info("reading keepalived notify FIFO", "path", path)
			r := &hooks.FIFO{
				Drain: c.Duration("drain"),
				Quiet: 200 * time.Millisecond,
				Apply: func(ctx context.Context, line string) {
					ev, err := keepalived.ParseFIFOLine(line)
					if errors.Is(err, keepalived.ErrNotVRRP) {
						return
					}
					if err != nil {
						e.log.Warn("ignoring notify FIFO line", "line", line, "error", err)
						return
					}
					from := time.Now()
					ticket, err := runstate.NowTicket()
					if err == nil {
						err = apply(ctx, e, h, ev, ticket, newSeen("fifo", e.cfg, from))
					}
					if err != nil {
						e.log.Error("notify FIFO transition failed", "line", line, "error", err)
					}
				},
			}
			err = r.Run(c.Context, f, stop)
			e.log.Info("notify FIFO reader stopped", "path", path)
			return err
		},
	}
}
