package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/logging"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/supervisor"
	"github.com/vipkit/vipkit/pkg/trackfile"
)

// lockWait bounds how long a fence without a deadline waits for vipctl's
// lock before it removes the VIPs without it. fenced's fences all have one
// (the lease's expiry, or the margin) and wait a quarter of it.
const lockWait = 200 * time.Millisecond

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the sidecar (systemd Type=notify)",
		Description: `Holds a lease in every configured etcd cluster and fences the instances of a cluster
(VIPs and hints removed, then 1 in each track file) before that lease can expire on the
server. SIGHUP reloads the configuration, changing only clusters and instances that
changed; a configuration that does not validate is refused and the running one is kept.
SIGTERM or SIGINT fence (unless on_stop = "keep") and revoke the leases.

From flags alone, for one instance:
  fenced run --endpoints http://192.0.2.20:2379 --node node-a --dev eth0 --vip 192.0.2.100 \
    --track-file /run/vipkit/VI_1.fence`,
		Flags:  append([]cli.Flag{configFlag, stateFlag, levelFlag, logFile}, runFlags()...),
		Action: runAction,
	}
}

// noSpawn lets the holder stop vipctl's refreshers when fencing; fenced
// itself never starts one.
type noSpawn struct{ runstate.Procs }

func (noSpawn) Spawn(context.Context, holder.SpawnRequest) (runstate.Proc, error) {
	return runstate.Proc{}, errors.New("fenced does not start refreshers")
}

func newLogger(c *cli.Context, cfg *config.Config) (*slog.Logger, func(), error) {
	level := cfg.LogLevel
	if s := c.String("log-level"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return nil, nil, usagef("--log-level %q is not debug, info, warn or error", s)
		}
	}
	return logging.New(logging.Options{Tag: "fenced", Level: level, File: c.String("log-file")})
}

func runAction(c *cli.Context) error {
	cfg, err := loadRunConfig(c)
	if err != nil {
		return err
	}
	if len(cfg.Clusters) == 0 {
		return usagef("no etcd cluster is configured: give --endpoints or a [[cluster]] in %s", cfg.Path)
	}
	log, closeLog, err := newLogger(c, cfg)
	if err != nil {
		return err
	}
	defer closeLog()
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	// Signals first: a SIGTERM during start-up must still stop cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := prepareDirs(cfg, log); err != nil {
		return err
	}
	n, err := hostnet.Open()
	if err != nil {
		return err
	}
	defer n.Close()
	// The fleet view's samples use a netlink socket of their own.
	on, err := hostnet.Open()
	if err != nil {
		return err
	}
	defer on.Close()
	senders := &supervisor.LinkSenders{}
	defer senders.Close()
	h := &holder.Holder{Host: n, Store: runstate.New(cfg.StateDir), Senders: senders.Get,
		Refreshers: noSpawn{runstate.Procs{Grace: 500 * time.Millisecond}}, Log: log}
	act := &fence.Actuator{Releaser: h, Host: n, Track: trackfile.Publish, Read: trackfile.Read, Ticket: runstate.NowTicket, LockWait: lockWait, Log: log}
	progressEvery := time.Second
	watchdog, _ := daemon.SdWatchdogEnabled(false)
	if watchdog > 0 && watchdog/2 < progressEvery {
		progressEvery = watchdog / 2
	}
	rt := &supervisor.Runtime{
		Sup: &supervisor.Supervisor{
			Node: cfg.Node, Version: version, Actuator: act, Dial: dialEtcd, Log: log,
			ProgressEvery: progressEvery, Clock: clock.Boottime,
			Observe: observer(on, cfg.StateDir, log),
		},
		Holder: h, Senders: senders, Log: log,
		Notify: func(state string) (bool, error) { return daemon.SdNotify(false, state) },
	}
	// A planned restart: take over the leases (and deadlines) the previous
	// fenced handed over, and hand ours over when systemd restarts us
	// (handoff.go).
	rt.Sup.Adopt, rt.Adopted = takeHandoff(cfg.StateDir, log)
	rt.HandOver = func() bool {
		return rt.Sup.Config().Fenced.OnStop != "keep" && restartPending(c.Context, log)
	}
	rt.Handed = func(leases []lease.HandedLease) { recordHandoff(rt.Sup.Config(), leases, log) }
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, cfg) }()
	for {
		select {
		case err := <-done:
			return err
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				cancel()
				return <-done
			}
			if c.IsSet("endpoints") {
				log.Warn("SIGHUP ignored: running from flags, there is no file to reload")
				continue
			}
			ncfg, err := loadRunConfig(c)
			if err != nil {
				rt.Refused(err)
				continue
			}
			if ncfg.Node == "" {
				ncfg.Node = cfg.Node
			}
			rt.Reload(ctx, ncfg)
		}
	}
}

// prepareDirs creates the state directory and the track files'
// directories root-only if missing.
func prepareDirs(cfg *config.Config, log *slog.Logger) error {
	dirs := map[string]bool{cfg.StateDir: true}
	for _, in := range cfg.Instances {
		if in.TrackFile != "" {
			dirs[filepath.Dir(in.TrackFile)] = true
		}
	}
	for d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", d, err)
		}
		if err := trackfile.CheckDir(d); err != nil {
			log.Warn("track file directory is not root-only: "+err.Error(), "error", err)
		}
	}
	return nil
}
