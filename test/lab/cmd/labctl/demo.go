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
	"text/tabwriter"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/report"
	"github.com/vipkit/vipkit/test/lab/vipkit"
	"github.com/vipkit/vipkit/test/repo"
)

// chapter is one scenario of the demo's story.
type chapter struct {
	scenario vipkit.Scenario
	title    string
	// control runs the same scenario with keepalived alone, for contrast.
	control bool
	// story says what happened and why it matters, from the results.
	story func(v, ctl *vipkit.Lab, r, c *vipkit.Result) string
}

var chapters = []chapter{
	{vipkit.Election, "Normal election", false, storyElection},
	{vipkit.Handover, "Planned handover: vipctl handover, then --undo", false, storyHandover},
	{vipkit.Crash, "Master crash: keepalived SIGKILLed on the master", true, storyCrash},
	{vipkit.EtcdLoss, "The master loses etcd and fences itself", false, storyEtcdLoss},
	{vipkit.Split, "Split brain, then heal", true, storySplit},
	{vipkit.LocalClient, "A client on the old master (F1)", true, storyLocal},
}

func demo(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	modeName := fs.String("mode", "hooks", "how keepalived and vipkit share the VIP: hooks, notify, fifo, owned")
	results := fs.String("results", "", "results directory (default results/demo in the repository)")
	verbose := fs.Bool("v", false, "log the lab's progress to stderr")
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
	mode, err := vipkit.ParseMode(*modeName)
	if err != nil {
		return usageError{err}
	}
	dir := *results
	if dir == "" {
		root, err := repo.Root()
		if err != nil {
			return err
		}
		dir = filepath.Join(root, "results", "demo")
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	started := time.Now()

	fmt.Fprintf(out, "vipkit lab demo: two keepalived nodes (node-a priority 150, node-b 100) share\n"+
		"%s and %s behind a router; a client probes them every 10 ms.\n"+
		"Mode: %s. keepalived %s (%s), etcd 3.6, bin/vipctl and bin/fenced, in network namespaces.\n"+
		"fenced: lease TTL %s, margin %s, hold-down %s. Timelines are relative to each scenario's event.\n",
		lab.VIP4, lab.VIP6, mode, kaVersion, ka, vipkit.DefaultTTL, vipkit.DefaultMargin, vipkit.DefaultHoldDown)

	open := func(name string, opts vipkit.Options) (*vipkit.Lab, error) {
		opts.Lab = lab.Options{Name: name, ResultsDir: filepath.Join(dir, name), Logger: log, NoSignalHandler: true, Keepalived: ka, Nodes: opts.Lab.Nodes}
		return vipkit.New(ctx, opts)
	}
	v, err := open("vipkit", vipkit.Options{Mode: mode})
	if err != nil {
		return err
	}
	var ctl *vipkit.Lab
	defer func() {
		err = errors.Join(err, v.Close())
		if ctl != nil {
			err = errors.Join(err, ctl.Close())
		}
		if err == nil {
			fmt.Fprintf(out, "\nEverything torn down. Total %s. Timelines (SVG), logs and events: %s\n", time.Since(started).Round(time.Second), dir)
		}
	}()

	type row struct {
		title    string
		r, c     *vipkit.Result
		svg, csv string
	}
	var rows []row
	for i, ch := range chapters {
		fmt.Fprintf(out, "\n%s\n%d. %s\n%s\n", strings.Repeat("━", 78), i+1, ch.title, strings.Repeat("━", 78))
		var fleet *fleetWatch
		if ch.scenario == vipkit.Split {
			// vipctl fleet on node-a while the split lasts, and after.
			fleet = watchFleet(ctx, v, v.Node("node-a"))
		}
		r, err := v.Run(ctx, ch.scenario)
		if err != nil {
			if fleet != nil {
				_ = fleet.report(ctx, io.Discard, &r)
			}
			return fmt.Errorf("%w (logs in %s)", err, v.Dir)
		}
		svg, err := brief(out, v, string(ch.scenario), r)
		if err != nil {
			return err
		}
		var c *vipkit.Result
		csvg := ""
		if ch.control {
			if ctl == nil {
				if ctl, err = open("control", vipkit.Options{Control: true}); err != nil {
					return err
				}
				if _, _, err := ctl.Up(ctx); err != nil {
					return fmt.Errorf("control lab: %w (logs in %s)", err, ctl.Dir)
				}
			}
			cr, err := ctl.Run(ctx, ch.scenario)
			if err != nil {
				return fmt.Errorf("control: %w (logs in %s)", err, ctl.Dir)
			}
			c = &cr
			if csvg, err = ctl.Report(nil, string(ch.scenario), cr); err != nil {
				return err
			}
		}
		fmt.Fprintln(out)
		if err := chapterTable(out, &r, c); err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%s\n\ntimeline: %s", wrap(ch.story(v, ctl, &r, c), 78), rel(svg))
		if csvg != "" {
			fmt.Fprintf(out, "  (keepalived alone: %s)", rel(csvg))
		}
		fmt.Fprintln(out)
		if fleet != nil {
			if err := fleet.report(ctx, out, &r); err != nil {
				return fmt.Errorf("fleet view: %w (logs in %s)", err, v.Dir)
			}
		}
		rows = append(rows, row{ch.title, &r, c, svg, csvg})
	}

	fmt.Fprintf(out, "\n%s\n%d. Split brain among three nodes, without and with the witness\n%s\n", strings.Repeat("━", 78), len(chapters)+1, strings.Repeat("━", 78))
	if err := witnessChapter(ctx, out, mode, open); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n%s\nSummary (IPv4 VIP; IPv6 within a millisecond unless noted in the chapters)\n%s\n", strings.Repeat("━", 78), strings.Repeat("━", 78))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\t\ttakeover\tclient outage\trouter conv.\tdual-owner\tfence lead")
	for _, rw := range rows {
		line := func(label string, r *vipkit.Result) {
			f := moveOf(r)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, map[bool]string{true: "keepalived alone", false: "vipkit"}[r.Mode == "control"],
				d(f.Takeover), d(f.Outage), d(f.RouterConvergence), d(f.DualOwner), fenceLead(r))
		}
		line(rw.title, rw.r)
		if rw.c != nil {
			line("", rw.c)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nElection: takeover and outage count from the start of everything. Split brain: from the heal;\n"+
		"takeover is the survivor's first announcement after it. Every chapter's full timeline is in its .txt file.")
	return nil
}

// moveOf is the IPv4 metrics of the move a chapter is about: for a split
// brain the heal, otherwise the first move.
func moveOf(r *vipkit.Result) observe.Failover {
	if r.Scenario == vipkit.Split {
		return r.HealV4
	}
	return r.V4
}

func d(v time.Duration) string { return observe.FormatDur(v) }

func fenceLead(r *vipkit.Result) string {
	if r.Fence == nil {
		return "-"
	}
	return d(r.Fence.Lead)
}

// brief prints the short timeline of a result and saves the full one (text
// and SVG) in the lab's results directory; it returns the SVG's path.
func brief(out io.Writer, v *vipkit.Lab, slug string, r vipkit.Result) (string, error) {
	view := v.View(r.Result)
	view.Title = ""
	view.Brief = true
	if err := report.WriteText(out, view); err != nil {
		return "", err
	}
	return v.Report(nil, slug, r)
}

// chapterTable prints the chapter's metrics: IPv4 and IPv6 with vipkit,
// and keepalived alone when there is a control.
func chapterTable(out io.Writer, r, c *vipkit.Result) error {
	type col struct {
		name string
		f    observe.Failover
		r    *vipkit.Result
	}
	var cols []col
	add := func(prefix string, r *vipkit.Result) {
		v4, v6 := r.V4, r.V6
		if r.Scenario == vipkit.Split {
			v4, v6 = r.HealV4, r.HealV6
		}
		cols = append(cols, col{prefix + "IPv4", v4, r})
		if v6.VIP.IsValid() {
			cols = append(cols, col{prefix + "IPv6", v6, r})
		}
	}
	add("vipkit ", r)
	if c != nil {
		add("alone ", c)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "metric\t"
	for _, c := range cols {
		head += c.name + "\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, f func(col) string) {
		line := name + "\t"
		for _, c := range cols {
			line += f(c) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	what := "takeover"
	if r.Scenario == vipkit.Split {
		what = "survivor heard of after heal"
	}
	row(what, func(c col) string { return d(c.f.Takeover) })
	row("client outage", func(c col) string { return d(c.f.Outage) })
	row("router convergence", func(c col) string { return d(c.f.RouterConvergence) })
	if r.Scenario == vipkit.Split {
		row("router on node-a after heal", func(c col) string { return d(routerBack(c.r, c.f)) })
	}
	row("dual-owner time", func(c col) string { return d(c.f.DualOwner) })
	row("fence lead time", func(c col) string { return fenceLead(c.r) })
	locals := func(c col) string {
		for _, l := range c.r.Local {
			if l.VIP == c.f.VIP {
				return l.Outcome()
			}
		}
		return "-"
	}
	if len(r.Local) > 0 {
		row("local client", locals)
	}
	return tw.Flush()
}

// routerBack is when, after a heal, the router started pointing at the
// surviving master for good, relative to the heal.
func routerBack(r *vipkit.Result, f observe.Failover) time.Duration {
	if f.RouterConverged == observe.None {
		return observe.None
	}
	return f.RouterConverged - r.Heal
}

// wrap breaks text into lines of at most width characters.
func wrap(text string, width int) string {
	var out, line strings.Builder
	for _, w := range strings.Fields(text) {
		if line.Len() > 0 && line.Len()+1+len(w) > width {
			out.WriteString(line.String() + "\n")
			line.Reset()
		}
		if line.Len() > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(w)
	}
	out.WriteString(line.String())
	return out.String()
}

// rel shortens a path under the working directory.
func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// witnessChapter splits three nodes (node-c added, priority 50) from each
// other for 4 s, each still reaching etcd and the router: first with
// fenced but without the witness, then with VI_1 witnessed. It prints how
// long each node held the VIP and the dual-owner time.
func witnessChapter(ctx context.Context, out io.Writer, mode vipkit.Mode, open func(string, vipkit.Options) (*vipkit.Lab, error)) error {
	const hold = 4 * time.Second
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tnode-a held\tnode-b held\tnode-c held\tdual-owner\tbecame MASTER")
	for _, witness := range []bool{false, true} {
		name, label := "three", "vipkit, no witness"
		if witness {
			name, label = "witness", "vipkit + witness"
		}
		v, err := open(name, vipkit.Options{Mode: mode, Witness: witness, Lab: lab.Options{Nodes: 3}})
		if err != nil {
			return err
		}
		err = func() error {
			if _, _, err := v.Up(ctx); err != nil {
				return fmt.Errorf("%s lab: %w (logs in %s)", name, err, v.Dir)
			}
			from, err := v.Isolate()
			if err != nil {
				return err
			}
			if _, err := v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= from+hold }, hold+10*time.Second); err != nil {
				return err
			}
			to, err := v.Heal()
			if err != nil {
				return err
			}
			var claims [][]observe.Span
			row := label
			for _, n := range v.Nodes {
				c := observe.Clip(v.TL.ClaimSpans(n.Name, lab.VIP4, to), from, to)
				claims = append(claims, c)
				row += "\t" + d(observe.Total(c))
			}
			var masters []string
			for _, n := range v.Nodes {
				for _, e := range v.TL.Events(func(e observe.Event) bool {
					return e.Kind == observe.KindState && e.Host == n.Name && e.Instance == lab.Instance && e.State == "MASTER" && e.At >= from && e.At <= to
				}) {
					masters = append(masters, fmt.Sprintf("%s +%s", e.Host, d(e.At-from)))
					break
				}
			}
			if len(masters) == 0 {
				masters = []string{"nobody else"}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", row, d(observe.Total(observe.AtLeast(2, claims...))), strings.Join(masters, ", "))
			return nil
		}()
		if cerr := v.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\n"+wrap("Every node still reaches etcd and the router; only VRRP between the nodes is cut, for 4 s (IPv4 VIP). "+
		"Without the witness node-b and node-c stop hearing node-a, elect themselves after the master-down interval "+
		"and hold the VIP beside it, and the router follows whoever announced last. "+
		"With the witness (witness = true: etcd's owner key decides, docs/witness.md) only node-a, which holds the key "+
		"under its live lease, may leave FAULT: node-b and node-c stay in FAULT whatever VRRP hears, and there is never a second owner.", 78))
	return nil
}
