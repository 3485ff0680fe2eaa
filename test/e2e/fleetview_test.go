package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fleetview"
	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// fleetObs is one look at a node's fleet view of the lab's instance.
type fleetObs struct {
	at      time.Duration // lab time the look ended
	node    string
	owners  []string
	problem string
}

// metricObs is one scrape of a node's owner count of the lab's instance.
type metricObs struct {
	at    time.Duration
	node  string
	value float64
}

// The fleet view on plain instances (issue 10, item 2): in the two-node
// lab's split brain (both nodes MASTER, both still reach etcd), every
// node's record flags the instance as held by two nodes within one
// renewal interval of the second MASTER, `vipctl fleet` on each node says
// so, and fenced's vipkit_fleet_instance_owners says 2; after the heal it
// says 1. While the lab is quiet, before the split and after the heal,
// nothing is flagged. The records are polled from the nodes' state files
// (what vipctl fleet reads, judged by the same code) every 20 ms; the
// time of a look is taken after it, so a latency measured here is an
// upper bound.
func TestFleetViewSplitBrain(t *testing.T) {
	for _, m := range []vipkit.Mode{vipkit.Hooks, vipkit.Owned} {
		t.Run(string(m), func(t *testing.T) { fleetSplit(t, m) })
	}
}

func fleetSplit(t *testing.T, m vipkit.Mode) {
	key, opts := modeOpts(m)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	v := shared(t, ctx, key, opts)
	cfg, err := config.Load(v.Nodes[0].ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	renew := cfg.Clusters[0].RenewEvery
	series := `vipkit_fleet_instance_owners{vrrp_instance="` + lab.Instance + `"}`

	var (
		mu      sync.Mutex
		looks   []fleetObs
		scrapes []metricObs
		cli     = map[string]fleetview.Report{} // vipctl fleet --json at the first dual owner a node saw
		wg      sync.WaitGroup
	)
	pctx, stop := context.WithCancel(ctx)
	for _, n := range v.Nodes {
		wg.Go(func() {
			asked := false
			for pctx.Err() == nil {
				if r, err := v.FleetView(n); err == nil {
					o := fleetObs{at: v.TL.Now(), node: n.Name}
					for _, ir := range r.Instances {
						if ir.Name == lab.Instance {
							o.owners, o.problem = ir.Owners, ir.Problem
						}
					}
					mu.Lock()
					looks = append(looks, o)
					mu.Unlock()
					if o.problem == fleetview.DualOwner && !asked {
						asked = true
						wg.Go(func() {
							rep := vipctlFleet(t, pctx, v, n)
							mu.Lock()
							cli[n.Name] = rep
							mu.Unlock()
						})
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		wg.Go(func() {
			for pctx.Err() == nil {
				if m, err := v.Metrics(n); err == nil {
					if x, err := vipkit.Sample(m, series); err == nil {
						mu.Lock()
						scrapes = append(scrapes, metricObs{at: v.TL.Now(), node: n.Name, value: x})
						mu.Unlock()
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	r, err := v.Run(ctx, vipkit.Split)
	if err == nil {
		// Some quiet after the heal.
		until := v.TL.Now() + 3*time.Second
		_, err = v.WaitFor(ctx, func(e observe.Event) bool { return e.At >= until }, 10*time.Second)
	}
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("split brain: %v (logs in %s)", err, v.Dir)
	}
	a, b := node(t, v, "node-a"), node(t, v, "node-b")
	second, err := v.TL.WaitState(ctx, b.Name, lab.Instance, "MASTER", r.Fault, time.Second)
	if err != nil {
		t.Fatalf("no second MASTER after the split: %v", err)
	}
	backup, err := v.TL.WaitState(ctx, b.Name, lab.Instance, "BACKUP", r.Heal, time.Second)
	if err != nil {
		t.Fatalf("node-b never stepped down after the heal: %v", err)
	}
	// Quiet before: from the last state change of the steady state (plus a
	// sample and a write) to the split.
	var lastChange time.Duration
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.Instance == lab.Instance && e.At < r.Fault
	}) {
		lastChange = e.At
	}
	quiet := [][2]time.Duration{{lastChange + 2*renew, r.Fault}, {backup.At + 2*renew, v.TL.Now()}}
	for _, n := range []*lab.Node{a, b} {
		var first time.Duration = observe.None
		quietLooks := 0
		for _, o := range looks {
			if o.node != n.Name {
				continue
			}
			if first == observe.None && o.at >= second.At && o.at < r.Heal && o.problem == fleetview.DualOwner {
				first = o.at
				if !slices.Equal(o.owners, []string{"node-a", "node-b"}) {
					t.Errorf("%s: dual owner flagged with owners %v, want node-a and node-b", n.Name, o.owners)
				}
			}
			for _, w := range quiet {
				if o.at >= w[0] && o.at < w[1] {
					quietLooks++
					if o.problem != "" || !slices.Equal(o.owners, []string{"node-a"}) {
						t.Errorf("%s at %s (quiet lab): %s, owners %v; want node-a alone, nothing flagged", n.Name, ms(o.at), o.problem, o.owners)
					}
				}
			}
		}
		switch {
		case first == observe.None:
			t.Errorf("%s: the split brain (second MASTER at %s, heal at %s) was never flagged", n.Name, ms(second.At), ms(r.Heal))
		case first-second.At > renew:
			t.Errorf("%s: dual owner flagged %s after the second MASTER, want within one renewal interval (%s)", n.Name, ms(first-second.At), renew)
		default:
			t.Logf("%s: dual owner flagged %s after the second MASTER (renewal interval %s)", n.Name, ms(first-second.At), renew)
		}
		if quietLooks < 20 {
			t.Errorf("%s: only %d looks while the lab was quiet: the quiet check proves nothing", n.Name, quietLooks)
		}
		t.Logf("%s: %d looks while the lab was quiet, none flagged", n.Name, quietLooks)

		rep, ok := cli[n.Name]
		switch {
		case !ok:
			t.Errorf("%s: vipctl fleet did not run during the split brain", n.Name)
		case rep.Stale != "" || len(rep.Instances) == 0 || rep.Instances[0].Problem != fleetview.DualOwner:
			t.Errorf("%s: vipctl fleet --json during the split brain: %+v, want %s flagged %s", n.Name, rep, lab.Instance, fleetview.DualOwner)
		}

		var two bool
		last := -1.0
		for _, s := range scrapes {
			if s.node != n.Name {
				continue
			}
			if s.at > second.At && s.at < r.Heal && s.value == 2 {
				two = true
			}
			if s.at >= backup.At+2*renew {
				last = s.value
			}
		}
		if !two {
			t.Errorf("%s: %s never said 2 during the split brain", n.Name, series)
		}
		if last != 1 {
			t.Errorf("%s: %s = %v after the heal, want 1", n.Name, series, last)
		}
	}
}

// vipctlFleet runs vipctl fleet on n (JSON for the test, the table for the
// log) and returns its report.
func vipctlFleet(t *testing.T, ctx context.Context, v *vipkit.Lab, n *lab.Node) fleetview.Report {
	var r fleetview.Report
	out, err := v.Vipctl(ctx, n, "fleet", "--json")
	if err == nil {
		err = json.Unmarshal([]byte(out), &r)
	}
	table, _ := v.Vipctl(ctx, n, "fleet")
	if err != nil {
		t.Errorf("vipctl fleet on %s: %v", n.Name, err)
	}
	t.Logf("vipctl fleet on %s during the split brain:\n%s", n.Name, strings.TrimRight(table, "\n"))
	return r
}
