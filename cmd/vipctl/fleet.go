package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/fleetview"
)

func fleetCommand() *cli.Command {
	return &cli.Command{
		Name:  "fleet",
		Usage: "show every node's view of every instance, instances held by two nodes or by none flagged",
		Description: `Every node's fenced publishes in etcd, under its lease, what it holds and sees of its
instances (keepalived's state as vipctl's hooks recorded it, the VIPs assigned, the MAC,
since when) and watches everyone else's. vipctl reads what the local fenced recorded in
its state file (fenced.json): it never talks to etcd itself, so it works the same on
every node. An instance held by two nodes (a split brain) or by none is flagged, with
the time it began and the node whose view says so. A node's view not rewritten for
too long, or every view when the local fenced is down or its heartbeat is older than
--max-age, is marked stale and not counted.

Exit status: 0 (also with problems shown: alert on fenced's
vipkit_fleet_instance_owners); 1 if fenced's state cannot be read.`,
		Flags: common(
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.DurationFlag{Name: "max-age", Value: 5 * time.Second, Usage: "heartbeat age beyond which the local fenced's record is stale"},
		),
		Action: func(c *cli.Context) error {
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			snap, err := fencedstate.Read(e.stateDir)
			if err != nil {
				return fmt.Errorf("fleet: %w (is fenced running on this node?)", err)
			}
			now := clock.Boottime()
			r := fleetview.Build(snap, now, recordDown(snap, now, c.Duration("max-age")))
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printFleet(c.App.Writer, r, time.Now())
			return nil
		},
	}
}

// recordDown says why the local fenced's record cannot be trusted, as
// fenced status --alive judges it.
func recordDown(s fencedstate.Snapshot, now, maxAge time.Duration) string {
	if err := fencedstate.Alive(s, now, maxAge); err != nil {
		return err.Error()
	}
	return ""
}

// printFleet writes the human table: one row per instance and node, then
// one line per flagged instance. now places times of today.
func printFleet(w io.Writer, r fleetview.Report, now time.Time) {
	fmt.Fprintf(w, "fleet view recorded by %s", dash(r.Node))
	if !r.Recorded.IsZero() {
		fmt.Fprintf(w, " (fenced heartbeat %s)", clockTime(r.Recorded, now))
	}
	fmt.Fprintln(w)
	if r.Stale != "" {
		fmt.Fprintf(w, "STALE: %s; the views below are not trusted\n", r.Stale)
	}
	if len(r.Instances) == 0 {
		fmt.Fprintln(w, "no fleet view yet: fenced publishes one once it holds a lease")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tNODE\tKEEPALIVED\tSINCE\tHOLDS\tMAC\tVIEW")
	for _, ir := range r.Instances {
		for i, cell := range ir.Nodes {
			name := ir.Name
			if i > 0 {
				name = ""
			}
			state := dash(cell.State)
			if cell.StateFrom != "" {
				state += " (" + cell.StateFrom + ")"
			}
			holds := "-"
			if cell.Holds() {
				holds = strings.Join(cell.Held, ",")
				if len(cell.Held) < len(cell.VIPs) {
					holds += fmt.Sprintf(" (%d of %d)", len(cell.Held), len(cell.VIPs))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, cell.Node, state, clockTime(cell.Since, now), holds, dash(cell.MAC), viewAge(cell))
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, ir := range r.Instances {
		if ir.Problem != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", strings.ToUpper(ir.Problem), ir.Name, ir.Describe())
		}
	}
	switch {
	case r.Stale != "":
		fmt.Fprintln(w, "not judged: the record is stale")
	case r.Problems == 0:
		fmt.Fprintln(w, "every instance is held by exactly one node")
	}
}

func viewAge(c fleetview.Cell) string {
	s := "self"
	if !c.Self {
		s = c.Age.Round(100*time.Millisecond).String() + " old"
	}
	if c.Stale {
		s += " STALE"
	}
	if c.Lease != "" && c.Lease != "healthy" {
		s += ", lease " + c.Lease
	}
	return s
}

// clockTime shows a time of today as a clock reading, others with the date.
func clockTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	l, n := t.Local(), now.Local()
	if l.YearDay() == n.YearDay() && l.Year() == n.Year() {
		return l.Format("15:04:05.000")
	}
	return l.Format("2006-01-02 15:04:05")
}
