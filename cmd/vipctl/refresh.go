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
}

func (r *refreshers) Spawn(_ context.Context, s holder.SpawnRequest) (runstate.Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return runstate.Proc{}, fmt.Errorf("find own executable: %w", err)
	}
	args := []string{"vipctl", "refresh",
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
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return runstate.Proc{}, err
	}
	defer null.Close()
	p, err := os.StartProcess(exe, args, &os.ProcAttr{
		Files: []*os.File{null, null, null},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return runstate.Proc{}, fmt.Errorf("start refresher: %w", err)
	}
	// Reap it if this process outlives it (the FIFO reader does).
	go func() { _, _ = p.Wait() }()
	start, err := runstate.ProcStart(p.Pid)
	if err != nil {
		_ = p.Kill()
		return runstate.Proc{}, err
	}
	return runstate.Proc{PID: p.Pid, Start: start}, nil
}

func (r *refreshers) Stop(p runstate.Proc) error { return runstate.Stop(p, stopGrace) }
func (r *refreshers) Alive(p runstate.Proc) bool { return runstate.Alive(p) }

func refreshCommand() *cli.Command {
	return &cli.Command{
		Name:   "refresh",
		Hidden: true,
		Usage:  "(internal) keep announcing VIPs on a schedule; started by up and announce",
		Flags: []cli.Flag{
			stateFlag, levelFlag, logFile, devFlag,
			&cli.Int64Flag{Name: "start", Usage: "schedule start, Unix nanoseconds"},
			&cli.IntFlag{Name: "count"}, &cli.DurationFlag{Name: "interval"},
			&cli.DurationFlag{Name: "refresh-every"}, &cli.DurationFlag{Name: "refresh-for"},
		},
		Action: func(c *cli.Context) error {
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
