package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

// stopGrace is how long a refresher gets to exit after SIGTERM before
// SIGKILL. It ignores nothing and holds no lock while asleep, so it exits
// at once in practice.
const stopGrace = 500 * time.Millisecond

// refreshers starts refreshers as detached copies of this binary running
// the hidden "refresh" command.
type refreshers struct {
	runstate.Procs
	stateDir string
	logLevel string
	// sockets duplicates the packet sockets this process opened, for a
	// child to inherit; handedOff says a child already has them.
	sockets   func() []*os.File
	handedOff bool
}

// start runs this binary detached, with stdio on /dev/null and inherit
// passed on (and closed here).
func (r *refreshers) start(args []string, inherit []*os.File) (*os.Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	files := []*os.File{null, null, null}
	defer func() {
		for _, f := range inherit {
			f.Close()
		}
	}()
	p, err := os.StartProcess(exe, args, &os.ProcAttr{
		Files: append(files, inherit...),
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return nil, err
	}
	if len(inherit) > 0 {
		r.handedOff = true
	}
	// Reap it if this process outlives it (the FIFO reader does).
	go func() { _, _ = p.Wait() }()
	return p, nil
}

// linger hands the packet sockets to a child that exits at once, when no
// refresher took them: the kernel's slow release of the socket then delays
// that child, not the hook.
func (r *refreshers) linger() {
	if r.handedOff || r.sockets == nil {
		return
	}
	socks := r.sockets()
	if len(socks) == 0 {
		return // nothing opened: nothing to hand over
	}
	if _, err := r.start([]string{"vipctl", "linger"}, socks); err != nil {
		return // the hook then pays for the close itself; nothing is lost
	}
}

func (r *refreshers) Spawn(_ context.Context, s holder.SpawnRequest) (runstate.Proc, error) {
	var socks []*os.File
	if r.sockets != nil {
		socks = r.sockets()
	}
	args := []string{"vipctl", "refresh",
		"--inherited", strconv.Itoa(len(socks)),
		"--state-dir", r.stateDir,
		"--log-level", r.logLevel,
		"--dev", s.Dev,
		"--start", strconv.FormatInt(s.Start.UnixNano(), 10),
		"--count", strconv.Itoa(s.Schedule.Count),
		"--interval", s.Schedule.Interval.String(),
		"--refresh-every", s.Schedule.RefreshEvery.String(),
		"--refresh-for", s.Schedule.RefreshFor.String(),
	}
	if f := os.Getenv("VIPKIT_LOG_FILE"); f != "" {
		args = append(args, "--log-file", f)
	}
	for _, v := range s.VIPs {
		args = append(args, v.Prefix().String())
	}
	var p *os.Process
	err := caughtWhileStarting(func() (err error) {
		p, err = r.start(args, socks)
		return err
	})
	if err != nil {
		return runstate.Proc{}, fmt.Errorf("start refresher: %w", err)
	}
	start, err := runstate.ProcStart(p.Pid)
	if err != nil {
		_ = p.Kill()
		return runstate.Proc{}, err
	}
	return runstate.Proc{PID: p.Pid, Start: start}, nil
}

func (r *refreshers) Stop(p runstate.Proc) error { return runstate.Stop(p, stopGrace) }
func (r *refreshers) Alive(p runstate.Proc) bool { return runstate.Alive(p) }

// lingerCommand only exits: its process holds the packet sockets a hook
// inherited it, so the kernel's release of them happens off the hook's time.
func lingerCommand() *cli.Command {
	return &cli.Command{Name: "linger", Hidden: true, Usage: "(internal) exit, releasing inherited sockets", Action: func(*cli.Context) error { return nil }}
}

func refreshCommand() *cli.Command {
	return &cli.Command{
		Name:   "refresh",
		Hidden: true,
		Usage:  "(internal) keep announcing VIPs on a schedule; started by up and announce",
		Flags: []cli.Flag{
			stateFlag, levelFlag, logFile, devFlag,
			&cli.Int64Flag{Name: "start", Usage: "schedule start, Unix nanoseconds"},
			&cli.IntFlag{Name: "inherited", Usage: "descriptors from 3 on to close at once (the starter's packet sockets)"},
			&cli.IntFlag{Name: "count"}, &cli.DurationFlag{Name: "interval"},
			&cli.DurationFlag{Name: "refresh-every"}, &cli.DurationFlag{Name: "refresh-for"},
		},
		Action: func(c *cli.Context) error {
			// Release the starter's sockets now, while nobody waits on this
			// process, rather than at its exit, which down waits for.
			for fd := 3; fd < 3+c.Int("inherited"); fd++ {
				syscall.Close(fd)
			}
			e, err := setupRefresher(c)
			if err != nil {
				return err
			}
			defer e.close()
			vips, err := vip.ParseList(c.Args().Slice())
			if err != nil {
				return err
			}
			self, err := runstate.Self()
			if err != nil {
				return err
			}
			sched := announce.Schedule{Count: c.Int("count"), Interval: c.Duration("interval"), RefreshEvery: c.Duration("refresh-every"), RefreshFor: c.Duration("refresh-for")}
			_, later := sched.Split()
			n, err := hostnet.Open()
			if err != nil {
				return err
			}
			defer n.Close()
			sender, err := announce.NewLinkSender(c.String("dev"))
			if err != nil {
				return err
			}
			defer sender.Close()
			h := &holder.Holder{Host: n, Store: runstate.New(e.stateDir), Log: e.log}
			gate := &holder.RefreshGate{Holder: h, Self: self, Dev: c.String("dev"), VIPs: vips}
			// No signal handling on purpose: SIGTERM ends the process at once,
			// and it never holds the lock while it waits.
			err = announce.Run(c.Context, sender, gate, time.Unix(0, c.Int64("start")), later)
			e.log.Debug("refresher done", "dev", c.String("dev"), "vips", len(vips), "error", err)
			return err
		},
	}
}

// setupRefresher builds the environment from flags only.
func setupRefresher(c *cli.Context) (*env, error) {
	cfg := config.Default()
	if err := cfg.LogLevel.UnmarshalText([]byte(c.String("log-level"))); err != nil && c.String("log-level") != "" {
		return nil, usagef("--log-level %q", c.String("log-level"))
	}
	e := &env{cfg: cfg, stateDir: c.String("state-dir")}
	log, closeLog, err := newLogger(cfg, c.String("log-file"))
	if err != nil {
		return nil, err
	}
	e.log, e.close = log, closeLog
	return e, nil
}
