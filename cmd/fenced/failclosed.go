package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
)

func failClosedCommand() *cli.Command {
	return &cli.Command{
		Name:  "fail-closed",
		Usage: "release every guarded VIP, then write 1 to every track file (systemd ExecStopPost)",
		Description: `Runs after fenced has stopped for any reason, including a crash or a watchdog kill,
when fenced itself could not fence. It needs no etcd: it removes the VIPs and hints of every
instance that names a cluster, then writes 1 to their track files, in that order (I3).

With on_stop = "keep" and a clean stop (systemd sets SERVICE_RESULT=success), it does
nothing: the operator asked to keep the VIPs.`,
		Flags: append([]cli.Flag{configFlag, stateFlag, levelFlag, logFile}, runFlags()...),
		Action: func(c *cli.Context) error {
			// Not loadRunConfig: a VIP that is the host's own address must
			// not stop this from writing 1 (the fence skips that VIP, and
			// keepalived goes to FAULT all the same).
			cfg, err := readRunConfig(c)
			if err != nil {
				return err
			}
			log, closeLog, err := newLogger(c, cfg)
			if err != nil {
				return err
			}
			defer closeLog()
			if cfg.Fenced.OnStop == "keep" && os.Getenv("SERVICE_RESULT") == "success" {
				log.Info("fail-closed skipped: on_stop is keep and fenced stopped cleanly")
				return nil
			}
			n, err := hostnet.Open()
			if err != nil {
				return err
			}
			defer n.Close()
			h := &holder.Holder{Host: n, Store: runstate.New(cfg.StateDir), Refreshers: noSpawn{runstate.Procs{Grace: 500 * time.Millisecond}}, Log: log}
			act := &fence.Actuator{Releaser: h, Host: n, Track: trackfile.Publish, Read: trackfile.Read, Ticket: runstate.NowTicket, LockWait: lockWait, Log: log}
			// A planned restart left some clusters to the next fenced.
			handed := acceptHandoff(cfg.StateDir, log)
			kept := map[string]bool{}
			for _, cl := range cfg.Clusters {
				if hl, ok := handed.For(cl); ok {
					kept[cl.Name] = true
					log.Info("planned restart: instances left to the next fenced", "cluster", cl.Name, "lease_id", fmt.Sprintf("%x", int64(hl.LeaseID)), "valid_for", (hl.Deadline - clock.Boottime()).String())
				}
			}
			var ins []fence.Instance
			for _, in := range cfg.Instances {
				if in.Cluster != "" && !kept[in.Cluster] {
					ins = append(ins, fence.Instance{Target: in.Target(), TrackFile: in.TrackFile})
				}
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			return act.Fence(ctx, ins, "fenced stopped (service result "+os.Getenv("SERVICE_RESULT")+")")
		},
	}
}
