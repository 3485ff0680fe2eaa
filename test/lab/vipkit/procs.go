package vipkit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/test/lab"
)

// VipctlProcs lists the command lines of the live vipctl processes in node
// n's namespace: hooks, the FIFO reader, refreshers ("vipctl refresh").
func VipctlProcs(n *lab.Node) ([][]string, error) {
	pids, err := n.Host.NS.Pids()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// Zombies (where PID 1 does not reap) run nothing.
		if i := strings.LastIndexByte(string(stat), ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "vipctl" {
			out = append(out, args)
		}
	}
	return out, nil
}

// Refreshers are the command lines of the refreshers running on node n.
func Refreshers(n *lab.Node) ([][]string, error) {
	procs, err := VipctlProcs(n)
	var out [][]string
	for _, args := range procs {
		if len(args) > 1 && args[1] == "refresh" {
			out = append(out, args)
		}
	}
	return out, err
}

// hookCommands are the vipctl commands keepalived runs as hooks.
var hookCommands = map[string]bool{"up": true, "down": true, "notify": true, "announce": true, "handover": true}

// WaitProcs waits until cond holds for the vipctl processes of every
// node. The exits of keepalived's hooks and of refreshers are not events
// the lab records, so this one wait polls the process table (every 20 ms,
// up to within).
func (v *Lab) WaitProcs(ctx context.Context, what string, cond func(n *lab.Node, procs [][]string) bool, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		ok := true
		for _, n := range v.Nodes {
			procs, err := VipctlProcs(n)
			if err != nil {
				return err
			}
			ok = ok && cond(n, procs)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitHooksDone waits until no vipctl hook runs on any node: the moment
// their effects are final.
func (v *Lab) WaitHooksDone(ctx context.Context, within time.Duration) error {
	return v.WaitProcs(ctx, "vipctl hooks to finish", func(_ *lab.Node, procs [][]string) bool {
		for _, args := range procs {
			if len(args) > 1 && hookCommands[args[1]] {
				return false
			}
		}
		return true
	}, within)
}

// WaitNoRefresher waits until node n runs no refresher (its schedule
// after the last takeover is over).
func (v *Lab) WaitNoRefresher(ctx context.Context, n *lab.Node, within time.Duration) error {
	return v.WaitProcs(ctx, "the refresher on "+n.Name+" to end", func(o *lab.Node, procs [][]string) bool {
		if o != n {
			return true
		}
		for _, args := range procs {
			if len(args) > 1 && args[1] == "refresh" {
				return false
			}
		}
		return true
	}, within)
}
