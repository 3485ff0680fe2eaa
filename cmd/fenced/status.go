package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show fenced's state; --alive for keepalived's track_script",
		Description: `Reads fenced's state file (fenced.json in the state directory): the state of each
cluster's lease, each guarded instance and what its track file says now.

--alive prints nothing and exits 0 only when fenced runs and its heartbeat is fresh (it
beats only while every lease loop makes progress); otherwise it says why on stderr and exits
1. Use it where keepalived's track_process cannot work (network namespaces, containers):

  vrrp_script fenced_alive {
      script "/usr/local/sbin/fenced status --alive"
      interval 1
      fall 1
      rise 1
      weight 0
  }`,
		Flags: []cli.Flag{configFlag, stateFlag,
			&cli.BoolFlag{Name: "json", Usage: "print the state file"},
			&cli.BoolFlag{Name: "alive", Usage: "exit 0 only if fenced runs with a fresh heartbeat"},
			&cli.DurationFlag{Name: "max-age", Value: 5 * time.Second, Usage: "heartbeat age beyond which fenced counts as hung"},
		},
		Action: func(c *cli.Context) error {
			dir, err := stateDir(c)
			if err != nil {
				return err
			}
			path := filepath.Join(dir, fencedstate.File)
			b, err := os.ReadFile(path)
			var snap fencedstate.Snapshot
			if err == nil {
				err = json.Unmarshal(b, &snap)
			}
			if c.Bool("alive") {
				if err == nil {
					err = fencedstate.Alive(snap, clock.Boottime(), c.Duration("max-age"))
				}
				if err != nil && handoffCovers(dir) {
					// A planned restart is between two processes, and the
					// handed deadline is still far enough away.
					return nil
				}
				if err != nil {
					fmt.Fprintf(c.App.ErrWriter, "fenced is not alive: %v\n", err)
					return silentError{exitFail}
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("read fenced state %s: %w (is fenced running with this state directory?)", path, err)
			}
			if c.Bool("json") {
				_, err := c.App.Writer.Write(b)
				return err
			}
			printStatus(c.App.Writer, snap)
			return nil
		},
	}
}

// stateDir is --state-dir, else the config's, else the default. A missing
// default config file is fine here.
func stateDir(c *cli.Context) (string, error) {
	if s := c.String("state-dir"); s != "" {
		return s, nil
	}
	path := c.String("config")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !c.IsSet("config") {
		return config.DefaultStateDir, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	return cfg.StateDir, nil
}

func printStatus(w io.Writer, s fencedstate.Snapshot) {
	beat := "none yet"
	if s.HeartbeatBoot != 0 {
		beat = (clock.Boottime() - s.HeartbeatBoot).Round(time.Millisecond).String() + " ago"
	}
	fmt.Fprintf(w, "fenced %s pid %d, node %s, started %s, heartbeat %s\nstate: %s\n\n",
		s.Version, s.PID, s.Node, s.Started.Local().Format("2006-01-02 15:04:05"), beat, s.State)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSTATE\tLEASE\tTTL\tVALID FOR\tLAST RENEW\tRENEWALS OK/FAILED\tFENCES\tLAST FENCE LEAD\tFENCE TAKES")
	for _, c := range s.Clusters {
		st := c.Lease
		var fences []string
		for r, n := range st.Fences {
			fences = append(fences, fmt.Sprintf("%s=%d", r, n))
		}
		lead := "-"
		if st.LastFenceReason != "" {
			lead = fmt.Sprintf("%s (%s)", st.LastFenceLead.Round(time.Millisecond), st.LastFenceReason)
		}
		lid := "-"
		if st.LeaseID != 0 {
			lid = fmt.Sprintf("%x", int64(st.LeaseID))
		}
		took := "-"
		if c.FenceDuration > 0 {
			took = c.FenceDuration.Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", c.Name, st.State, lid, st.TTL, st.ValidFor.Round(time.Millisecond),
			st.LastRenewLatency.Round(time.Microsecond), st.RenewalsOK, st.RenewalsFailed, orDash(strings.Join(fences, ",")), lead, took)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tCLUSTER\tFENCED\tTRACK FILE\tFILE SAYS\tVIPS")
	for _, in := range s.Instances {
		says := "missing (keepalived reads 0: OK)"
		if v, ok, err := trackfile.Read(in.TrackFile); err != nil {
			says = err.Error()
		} else if ok {
			says = map[bool]string{true: fmt.Sprintf("%d (FAULT)", v), false: "0 (OK)"}[v != 0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", in.Name, in.Cluster, in.Fenced, in.TrackFile, says, strings.Join(in.VIPs, " "))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
