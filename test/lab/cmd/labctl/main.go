// Command labctl runs the DESIGN §7 lab by hand: the demo story with
// vipkit (what `make demo` prints), the measurements with and without
// vipkit, control scenarios with their timelines, an interactive lab to
// poke at, and the clean-up of a crashed run's namespaces. It needs root.
//
//	labctl demo [-mode hooks|notify|fifo|owned] [-keepalived PATH]
//	labctl bench [-runs 10] [-modes hooks,owned] [-keepalived PATH] [SCENARIO...]
//	labctl run [flags] [kill|term|pause|port-down|split ...]
//	labctl up [flags]
//	labctl cleanup [-prefix vkl]
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
	"strings"
	"syscall"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/repo"
)

const usage = `usage: labctl COMMAND [flags]

Commands:
  demo [-mode M]             tell the story with vipkit: election, planned handover,
                             master crash, etcd loss, split brain, local client;
                             timelines, metrics and SVGs (results/demo), with
                             keepalived alone for contrast (what make demo runs)
  bench [-runs N] [-modes M,...] [SCENARIO...]
                             run each scenario N times with vipkit and with
                             keepalived alone and print the medians (Markdown)
  run [flags] [SCENARIO...]  run scenarios, each in a fresh lab, and print
                             their timelines and metrics (default: kill split)
                             SCENARIO: kill, term, pause, port-down, split
  up [flags]                 bring a lab up with keepalived running, print how
                             to enter it, and tear it down on Ctrl-C
  cleanup [-prefix P]        delete namespaces left by crashed lab runs

Every command but cleanup takes -keepalived PATH, the keepalived binary the
nodes run (default $VIPKIT_KEEPALIVED, else /usr/sbin/keepalived, Debian's
2.2.7; bin/keepalived-2.3.3 after make keepalived).

Run "labctl COMMAND -h" for the flags. Needs root.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:], os.Stdout)
	case "up":
		err = up(os.Args[2:], os.Stdout)
	case "demo":
		err = demo(os.Args[2:], os.Stdout)
	case "bench":
		err = bench(os.Args[2:], os.Stdout)
	case "cleanup":
		err = cleanup(os.Args[2:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "labctl: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "labctl: %v\n", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "labctl: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

// common are the flags of run and up.
type common struct {
	results    string
	conf       string
	advertInt  string
	keepalived string
	verbose    bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.results, "results", "", "results directory (default results/lab/<scenario>-<prefix> in the repository)")
	fs.StringVar(&c.conf, "conf", "", "keepalived config to render per node (default: the lab's control config, keepalived alone)")
	fs.StringVar(&c.advertInt, "advert-int", "", `override advert_int in -conf (e.g. "0.1"; fractional values switch to VRRPv3)`)
	keepalivedFlag(fs, &c.keepalived)
	fs.BoolVar(&c.verbose, "v", false, "log the lab's progress to stderr")
}

// keepalivedFlag registers -keepalived: the binary every node runs.
func keepalivedFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "keepalived", repo.Keepalived(),
		"keepalived binary the nodes run (default $"+repo.KeepalivedEnv+", else Debian's 2.2.7; bin/"+repo.BuiltKeepalived+" is 2.3.3, `make keepalived`)")
}

// keepalivedPath checks the -keepalived value and makes it absolute (the
// lab starts keepalived from each node's directory).
func keepalivedPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", usageError{fmt.Errorf("-keepalived %s: %w", p, err)}
	}
	if _, err := repo.KeepalivedVersion(abs); err != nil {
		return "", usageError{fmt.Errorf("-keepalived %s: %w", p, err)}
	}
	return abs, nil
}

func (c *common) config() (string, error) {
	if c.conf == "" {
		return proc.ControlConfig, nil
	}
	b, err := os.ReadFile(c.conf)
	if err != nil {
		return "", fmt.Errorf("read keepalived config: %w", err)
	}
	return string(b), nil
}

func (c *common) options(name string) lab.Options {
	o := lab.Options{Name: name, AdvertInt: c.advertInt, Keepalived: c.keepalived, Logger: slog.New(slog.DiscardHandler)}
	if c.verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if c.results != "" {
		o.ResultsDir = filepath.Join(c.results, name)
	}
	return o
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	hold := fs.Duration("split-hold", time.Second, "how long the split brain lasts before it heals")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	var err error
	if c.keepalived, err = keepalivedPath(c.keepalived); err != nil {
		return err
	}
	scenarios := fs.Args()
	if len(scenarios) == 0 {
		scenarios = []string{"kill", "split"}
	}
	for _, s := range scenarios {
		if s != "split" && !known(lab.MasterFault(s)) {
			return usageError{fmt.Errorf("unknown scenario %q (kill, term, pause, port-down, split)", s)}
		}
	}
	conf, err := c.config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for i, s := range scenarios {
		if i > 0 {
			fmt.Fprintln(out)
		}
		if err := runOne(ctx, &c, conf, s, *hold, out); err != nil {
			return err
		}
	}
	return nil
}

func known(f lab.MasterFault) bool {
	for _, k := range lab.MasterFaults {
		if k == f {
			return true
		}
	}
	return false
}

func runOne(ctx context.Context, c *common, conf, scenario string, hold time.Duration, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	l, err := lab.New(ctx, c.options(scenario))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	var r lab.Result
	if scenario == "split" {
		r, err = l.RunSplitBrain(ctx, conf, hold)
	} else {
		r, err = l.RunMasterFault(ctx, conf, lab.MasterFault(scenario))
	}
	if c.conf == "" {
		r.Name = "control (keepalived only): " + r.Name
	} else {
		r.Name = filepath.Base(c.conf) + ": " + r.Name
	}
	if err != nil {
		return fmt.Errorf("scenario %s: %w (logs in %s)", scenario, err, l.Dir)
	}
	svg, err := l.Report(out, scenario, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\ntimeline: %s\nlogs and events: %s\n", svg, l.Dir)
	return nil
}

func up(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var c common
	c.register(fs)
	withEtcd := fs.Bool("etcd", false, "also run etcd (bin/etcd, `make etcd`)")
	noKeepalived := fs.Bool("no-keepalived", false, "do not start keepalived")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if c.keepalived, err = keepalivedPath(c.keepalived); err != nil {
		return err
	}
	conf, err := c.config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := c.options("up")
	o.NoSignalHandler = true // we tear down ourselves on Ctrl-C
	l, err := lab.New(ctx, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if *withEtcd {
		if err := l.StartEtcd(ctx); err != nil {
			return err
		}
	}
	if !*noKeepalived {
		if err := l.StartKeepalivedAll(conf); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "lab %s is up; results in %s\n\n", l.Prefix, l.Dir)
	for _, ns := range l.Topo.Namespaces() {
		fmt.Fprintf(out, "  %-8s ip netns exec %s bash\n", ns.Role, ns.Name)
	}
	if *withEtcd {
		fmt.Fprintf(out, "\n  etcd     %s\n", strings.Join(l.EtcdEndpoints(), ","))
	}
	fmt.Fprintf(out, "\nCtrl-C tears everything down and writes events.jsonl.\n")
	<-ctx.Done()
	fmt.Fprintln(out, "\ntearing down")
	return nil
}

func cleanup(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	prefix := fs.String("prefix", "vkl", "namespace name prefix of the runs to clean up")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	deleted, err := lab.CleanupStale(*prefix)
	for _, n := range deleted {
		fmt.Fprintf(out, "deleted %s\n", n)
	}
	if err == nil && len(deleted) == 0 {
		fmt.Fprintln(out, "nothing to clean up")
	}
	return err
}
