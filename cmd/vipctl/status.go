package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
)

// VIPStatus is one VIP as status reports it.
type VIPStatus struct {
	VIP         string   `json:"vip"`
	Dev         string   `json:"dev,omitempty"`
	Instance    string   `json:"instance,omitempty"`
	Assigned    bool     `json:"assigned"`
	Hint        string   `json:"hint,omitempty"` // source of vipkit's hint route
	LocalRoutes []string `json:"local_routes"`
	Orphan      bool     `json:"orphan"`
	LastAction  string   `json:"last_action,omitempty"`
	LastAt      string   `json:"last_at,omitempty"`
	LastPID     int      `json:"last_pid,omitempty"`
	Refresher   int      `json:"refresher_pid,omitempty"`
	RefresherUp bool     `json:"refresher_running"`
}

// Status is the whole report.
type Status struct {
	StateDir string          `json:"state_dir"`
	VIPs     []VIPStatus     `json:"vips"`
	Orphans  []string        `json:"orphan_routes"`
	Fenced   json.RawMessage `json:"fenced,omitempty"`
}

func collectStatus(e *env) (*Status, error) {
	n, err := hostnet.Open()
	if err != nil {
		return nil, err
	}
	defer n.Close()
	st, err := runstate.New(e.stateDir).Read()
	if err != nil {
		return nil, err
	}
	out := &Status{StateDir: e.stateDir, Orphans: []string{}}
	type key = netip.Addr
	vips := map[key]*VIPStatus{}
	get := func(a netip.Addr) *VIPStatus {
		if v, ok := vips[a]; ok {
			return v
		}
		v := &VIPStatus{VIP: a.String(), LocalRoutes: []string{}}
		vips[a] = v
		return v
	}
	for _, in := range e.cfg.Instances {
		for _, v := range in.VIPs {
			s := get(v.Addr())
			s.Dev, s.Instance = in.Dev, in.Name
		}
	}
	for _, en := range st.Sorted() {
		s := get(en.VIP.Addr())
		s.Dev = en.Dev
		if en.Instance != "" {
			s.Instance = en.Instance
		}
		s.LastAction, s.LastAt, s.LastPID = en.Action, en.At.Format(time.RFC3339Nano), en.Ticket.PID
		if en.Refresher != nil {
			s.Refresher, s.RefresherUp = en.Refresher.PID, runstate.Alive(*en.Refresher)
		}
	}
	routes, err := n.AllLocalRoutes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.IsHint() {
			get(r.Dst)
		}
	}
	orphans, err := n.Orphans()
	if err != nil {
		return nil, err
	}
	for _, o := range orphans {
		out.Orphans = append(out.Orphans, o.String())
		get(o.Dst).Orphan = true
	}
	for a, s := range vips {
		if s.Assigned, err = n.AssignedAnywhere(a); err != nil {
			return nil, err
		}
		for _, r := range routes {
			if r.Dst != a {
				continue
			}
			s.LocalRoutes = append(s.LocalRoutes, r.String())
			if r.IsHint() && r.Src.IsValid() {
				s.Hint = r.Src.String()
			}
		}
		out.VIPs = append(out.VIPs, *s)
	}
	sort.Slice(out.VIPs, func(i, j int) bool {
		return netip.MustParseAddr(out.VIPs[i].VIP).Less(netip.MustParseAddr(out.VIPs[j].VIP))
	})
	if b, err := os.ReadFile(filepath.Join(e.stateDir, fencedstate.File)); err == nil && json.Valid(b) {
		out.Fenced = b
	}
	return out, nil
}

func printStatus(w io.Writer, s *Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIP\tDEV\tINSTANCE\tASSIGNED\tHINT SRC\tLAST ACTION\tREFRESHER")
	for _, v := range s.VIPs {
		last := "-"
		if v.LastAction != "" {
			last = fmt.Sprintf("%s at %s (pid %d)", v.LastAction, shortTime(v.LastAt), v.LastPID)
		}
		ref := "-"
		if v.Refresher != 0 {
			ref = fmt.Sprintf("pid %d", v.Refresher)
			if !v.RefresherUp {
				ref += " (gone; vipctl cleanup)"
			}
		}
		hint := v.Hint
		switch {
		case hint == "" && v.Assigned && !v.Orphan:
			hint = "none (local clients use the VIP as source: F1 risk)"
		case v.Orphan:
			hint += " ORPHAN"
		case hint == "":
			hint = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", v.VIP, dash(v.Dev), dash(v.Instance), yesNo(v.Assigned), hint, last, ref)
	}
	tw.Flush()
	if len(s.Orphans) > 0 {
		fmt.Fprintf(w, "\norphan local routes (the host still answers for these; run vipctl cleanup):\n  %s\n", strings.Join(s.Orphans, "\n  "))
	}
	if len(s.Fenced) > 0 {
		var f fencedstate.Snapshot
		_ = json.Unmarshal(s.Fenced, &f)
		fmt.Fprintf(w, "\nfenced: %s (fenced status for details)\n", dash(f.State))
	}
}

func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show VIPs, route hints, orphan routes, refreshers and the last action per VIP",
		Description: `Lists every VIP vipctl knows of (from the configuration, its state and the routing
table): whether it is assigned here, the source of its route hint, the local routes for
it, the last vipctl action and its refresher; then orphan local routes (a local route
for an address no longer assigned: the host still answers ARP for it) and fenced's state.
Exit status 0; 1 if something could not be read.`,
		Flags: common(&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			s, err := collectStatus(e)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(c.App.Writer, s)
			return nil
		},
	}
}

func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "remove orphan route hints and forget refreshers that are gone",
		Description: `Removes local routes for addresses that are no longer assigned on this host (left
by a crash, a SIGKILLed hook or keepalived deleting the VIP before the hook ran), and
clears records of refreshers that no longer run. Safe to run at any time: it takes the
same lock as every other vipctl command.`,
		Flags: common(),
		Action: func(c *cli.Context) error {
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			holdSignals()
			h, closeH, err := newHolder(e)
			if err != nil {
				return err
			}
			defer closeH()
			ctx, cancel := context.WithTimeout(c.Context, lockWait)
			defer cancel()
			removed, err := h.RemoveOrphans(ctx)
			for _, r := range removed {
				fmt.Fprintf(c.App.Writer, "removed %s\n", r)
			}
			if err == nil && len(removed) == 0 {
				fmt.Fprintln(c.App.Writer, "nothing to clean up")
			}
			return err
		},
	}
}
