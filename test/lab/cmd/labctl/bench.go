package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
	"github.com/vipkit/vipkit/test/repo"
)

// benchScenarios are the scenarios `labctl bench` runs by default.
var benchScenarios = []vipkit.Scenario{vipkit.Election, vipkit.Handover, vipkit.Crash, vipkit.EtcdLoss, vipkit.Split, vipkit.LocalClient, vipkit.FencedKill}

// extraMetric is the one metric particular to a scenario.
func extraMetric(s vipkit.Scenario) (string, func(r *vipkit.Result) (time.Duration, string)) {
	switch s {
	case vipkit.Handover:
		return "takeover back (--undo / restart)", func(r *vipkit.Result) (time.Duration, string) { return r.HealV4.Takeover, "" }
	case vipkit.EtcdLoss:
		return "fence lead time", func(r *vipkit.Result) (time.Duration, string) {
			if r.Fence == nil {
				return observe.None, ""
			}
			return r.Fence.Lead, ""
		}
	case vipkit.Split:
		return "router on survivor after heal", func(r *vipkit.Result) (time.Duration, string) { return routerBack(r, r.HealV4), "" }
	case vipkit.LocalClient:
		return "local client error after takeover", func(r *vipkit.Result) (time.Duration, string) {
			for _, l := range r.Local {
				if l.VIP.Is4() {
					if l.Failed == observe.None || l.Takeover == observe.None {
						return observe.None, "hang"
					}
					return l.Failed - l.Takeover, ""
				}
			}
			return observe.None, ""
		}
	case vipkit.FencedKill:
		return "keepalived FAULT after the kill", func(r *vipkit.Result) (time.Duration, string) { return r.FaultAfter, "" }
	}
	return "", nil
}

// series collects one metric over runs.
type series struct {
	vals []time.Duration
	tags map[string]int // runs without a value, by reason
}

func (s *series) add(v time.Duration, tag string) {
	if v != observe.None {
		s.vals = append(s.vals, v)
		return
	}
	if tag == "" {
		tag = "none"
	}
	if s.tags == nil {
		s.tags = map[string]int{}
	}
	s.tags[tag]++
}

// String is "median (min–max)" plus the runs without a value.
func (s *series) String() string {
	var parts []string
	if n := len(s.vals); n > 0 {
		v := slices.Clone(s.vals)
		slices.Sort(v)
		med := v[n/2]
		if n%2 == 0 {
			med = (v[n/2-1] + v[n/2]) / 2
		}
		parts = append(parts, fmt.Sprintf("%s (%s–%s)", ms1(med), ms1(v[0]), ms1(v[n-1])))
	}
	for tag, n := range s.tags {
		parts = append(parts, fmt.Sprintf("%s ×%d", tag, n))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}

func ms1(v time.Duration) string {
	return fmt.Sprintf("%.1f", float64(v)/float64(time.Millisecond))
}

// benchRow is one scenario in one setup.
type benchRow struct {
	scenario vipkit.Scenario
	setup    string
	runs     int
	m        [5]series // takeover, outage, router, dual-owner, extra
}

func bench(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	runs := fs.Int("runs", 10, "runs of each scenario in each setup")
	modes := fs.String("modes", "hooks,owned", "vipkit modes to measure (hooks, notify, fifo, owned), comma-separated")
	noControl := fs.Bool("no-control", false, "skip the control runs (keepalived alone)")
	results := fs.String("results", "", "results directory (default results/bench in the repository)")
	var ka string
	keepalivedFlag(fs, &ka)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if ka, err = keepalivedPath(ka); err != nil {
		return err
	}
	kaVersion, err := repo.KeepalivedVersion(ka)
	if err != nil {
		return err
	}
	scenarios := benchScenarios
	if fs.NArg() > 0 {
		scenarios = nil
		for _, a := range fs.Args() {
			if !slices.Contains(vipkit.Scenarios, vipkit.Scenario(a)) {
				return usageError{fmt.Errorf("unknown scenario %q", a)}
			}
			scenarios = append(scenarios, vipkit.Scenario(a))
		}
	}
	type setup struct {
		name string
		opts vipkit.Options
	}
	var setups []setup
	for _, m := range strings.Split(*modes, ",") {
		mode, err := vipkit.ParseMode(strings.TrimSpace(m))
		if err != nil {
			return usageError{err}
		}
		setups = append(setups, setup{"vipkit " + mode.Short(), vipkit.Options{Mode: mode}})
	}
	if !*noControl {
		setups = append(setups, setup{"keepalived alone", vipkit.Options{Control: true}})
	}
	dir := *results
	if dir == "" {
		root, err := repo.Root()
		if err != nil {
			return err
		}
		dir = filepath.Join(root, "results", "bench")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	fmt.Fprintf(os.Stderr, "bench: keepalived %s (%s), %d runs of %d scenarios in %d setups; results in %s\n", kaVersion, ka, *runs, len(scenarios), len(setups), dir)

	var rows []*benchRow
	for _, su := range setups {
		var shared *vipkit.Lab
		closeShared := func() error {
			if shared == nil {
				return nil
			}
			err := shared.Close()
			shared = nil
			return err
		}
		open := func(name string) (*vipkit.Lab, error) {
			o := su.opts
			o.Lab = lab.Options{Name: name, ResultsDir: filepath.Join(dir, strings.ReplaceAll(su.name, " ", "-"), name), Logger: slog.New(slog.DiscardHandler), NoSignalHandler: true, Keepalived: ka}
			return vipkit.New(ctx, o)
		}
		for _, s := range scenarios {
			row := &benchRow{scenario: s, setup: su.name}
			_, extra := extraMetric(s)
			for i := range *runs {
				var v *vipkit.Lab
				var err error
				switch {
				case s == vipkit.Election:
					// Every election needs a lab that is not up yet.
					if v, err = open(fmt.Sprintf("election-%d", i)); err != nil {
						return errors.Join(err, closeShared())
					}
				case shared == nil:
					if shared, err = open("scenarios"); err != nil {
						return err
					}
					if _, _, err := shared.Up(ctx); err != nil {
						return errors.Join(fmt.Errorf("%s: %w (logs in %s)", su.name, err, shared.Dir), closeShared())
					}
					v = shared
				default:
					v = shared
				}
				if !v.Applies(s) {
					if v != shared {
						err = v.Close()
					}
					row = nil
					if err != nil {
						return err
					}
					break
				}
				rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
				r, err := v.Run(rctx, s)
				cancel()
				if err == nil && i == 0 {
					_, err = v.Report(nil, string(s), r)
				}
				if v != shared {
					err = errors.Join(err, v.Close())
				}
				if err != nil {
					return errors.Join(fmt.Errorf("%s, run %d: %w (logs in %s)", su.name, i+1, err, v.Dir), closeShared())
				}
				f := moveOf(&r)
				row.runs++
				row.m[0].add(f.Takeover, "")
				row.m[1].add(f.Outage, "")
				row.m[2].add(f.RouterConvergence, "")
				row.m[3].add(f.DualOwner, "")
				if extra != nil {
					row.m[4].add(extra(&r))
				}
				fmt.Fprintf(os.Stderr, "  %-18s %-14s run %2d/%d: takeover %s, outage %s\n", su.name, s, i+1, *runs, d(f.Takeover), d(f.Outage))
			}
			if row != nil {
				rows = append(rows, row)
			}
		}
		if err := closeShared(); err != nil {
			return err
		}
	}
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(out, "labctl bench -runs %d -modes %s%s -keepalived %s — keepalived %s, %s, %s, %d CPUs, load %s, %s, took %s\n\n",
		*runs, *modes, map[bool]string{true: " -no-control", false: ""}[*noControl], ka, kaVersion, time.Now().UTC().Format("2006-01-02"),
		host, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "), runtime.Version(), time.Since(started).Round(time.Second))
	fmt.Fprintln(out, "Milliseconds, IPv4 VIP: median (min–max) over the runs.")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| scenario | setup | runs | takeover | client outage | router convergence | dual-owner time | scenario metric |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		name, _ := extraMetric(r.scenario)
		extra := "–"
		if name != "" {
			extra = name + ": " + r.m[4].String()
		}
		fmt.Fprintf(out, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", r.scenario, r.setup, r.runs,
			r.m[0].String(), r.m[1].String(), r.m[2].String(), r.m[3].String(), extra)
	}
	return nil
}
