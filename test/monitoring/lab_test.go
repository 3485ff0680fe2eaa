package monitoring

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/vipkit"
	"github.com/vipkit/vipkit/test/promtool"
)

// Lab timers for the recordings: a 9 s TTL renews every 3 s, and a
// request waits up to 6 s, so that an etcd stalled for 4.2 s holds one
// renewal of every node (sent 0 to 3 s into the stall, whatever the
// node's phase) for 1.2 s or more, more than half the 1 s margin, without
// timing it out and without the local deadline (last renewal sent + 8 s,
// at least 5 s after the stall began) passing.
const (
	labTTL     = 9 * time.Second
	labMargin  = time.Second
	labTimeout = 6 * time.Second
	// Scrapes of the recordings: every second, as fast as fenced's own
	// heartbeat; the rules assume at most 5 s.
	scrapeEvery = time.Second
)

func requireLab(t *testing.T) {
	t.Helper()
	vipkit.Require(t, "lab test")
	promtool.Path(t)
}

// recording is one scenario recorded: the steps of interest and what the
// rules must make of it.
type recording struct {
	name string
	// run performs the scenario while rec scrapes; it marks "fault"
	// (after which the alerts may fire) and "assert" (the step at which
	// they must fire). A quiet scenario marks nothing.
	run   func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error
	fires func(a, b string) []Firing // by the names of the master and the other node
}

// TestLabFiresEachAlert runs the lab (notify hooks: keepalived's exact
// states) with every fenced serving metrics, records each scenario's
// scrapes as Prometheus would, and replays them through the shipped rules
// with promtool: the quiet scenarios fire nothing at any moment; each
// fault fires the alerts that name it, with the labels an operator would
// see, and not before the fault. The recordings, the generated tests and
// the dashboard check against the families seen stay in the results
// directory.
func TestLabFiresEachAlert(t *testing.T) {
	requireLab(t)
	rulesPath := contribFile(t, "prometheus", "vipkit.rules.yml")
	rules, err := ReadRules(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := vipkit.New(ctx, vipkit.Options{Mode: vipkit.Notify, TTL: labTTL, Margin: labMargin, RequestTimeout: labTimeout,
		Lab: lab.Options{Name: "monitoring"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	a, b := v.Nodes[0], v.Nodes[1]
	rec := &Recorder{Interval: scrapeEvery, Timeout: 500 * time.Millisecond}
	for _, n := range v.Nodes {
		rec.Targets = append(rec.Targets, Target{Name: n.Name, Scrape: func(ctx context.Context) ([]byte, error) { return v.Scrape(ctx, n) }})
	}
	families := map[string]dto.MetricType{}
	scenarios := []recording{
		// Quiet: what happens every day.
		{name: "election", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			_, _, err := v.Up(ctx)
			return settle(err, 10*time.Second)
		}},
		{name: "handover", run: runScenario(vipkit.Handover)},
		{name: "crash", run: runScenario(vipkit.Crash)},
		{name: "etcd-loss", run: runScenario(vipkit.EtcdLoss)},
		{name: "split-brain-short", run: runScenario(vipkit.Split)},
		{name: "reset-after-faults", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			_, err := v.Reset(ctx)
			return settle(err, 5*time.Second)
		}},
		// Faults.
		{name: "hook-failure", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			time.Sleep(3 * time.Second)
			rec.Mark("fault")
			// keepalived runs the notify hook for an instance vipkit.toml
			// does not describe (a config deployed to one node only).
			if out, err := v.Vipctl(ctx, v.Nodes[0], "notify", "INSTANCE", "VI_9", "MASTER", "100"); err == nil {
				return fmt.Errorf("vipctl notify for an unknown instance succeeded: %s", out)
			}
			time.Sleep(3 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			return nil
		}, fires: func(m, _ string) []Firing {
			return []Firing{{Alert: "VipkitHookFailures", Labels: []map[string]string{{"job": Job, "instance": m, "command": "notify"}}}}
		}},
		{name: "flaps", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			rec.Mark("fault")
			if _, err := v.Run(ctx, vipkit.Flaps); err != nil {
				return err
			}
			if err := v.WaitHooksDone(ctx, 10*time.Second); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			return nil
		}, fires: func(m, _ string) []Firing {
			return []Firing{{Alert: "VipkitInstanceFlapping", Labels: []map[string]string{{"instance": m, "vrrp_instance": lab.Instance}}}}
		}},
		{name: "etcd-stall", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			time.Sleep(2 * time.Second)
			rec.Mark("fault")
			if _, err := v.PauseEtcd(); err != nil {
				return err
			}
			time.Sleep(4200 * time.Millisecond)
			if _, err := v.ResumeEtcd(); err != nil {
				return err
			}
			time.Sleep(4 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			// Stalled, not lost: nobody fenced.
			for _, n := range v.Nodes {
				if st, err := v.ReadFencedState(n); err != nil || st.State != "healthy" {
					return fmt.Errorf("%s after the stall: %q %v (the stall must not fence)", n.Name, st.State, err)
				}
			}
			return nil
		}, fires: func(m, o string) []Firing {
			return []Firing{{Alert: "VipkitRenewLatencyHigh", Labels: []map[string]string{
				{"job": Job, "instance": m, "cluster": "main"}, {"job": Job, "instance": o, "cluster": "main"}}}}
		}},
		{name: "split-brain", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			m, err := v.Reset(ctx)
			if err != nil {
				return err
			}
			fault, err := v.Isolate()
			if err != nil {
				return err
			}
			if _, err := v.TL.WaitState(ctx, v.Peer(m).Name, lab.Instance, "MASTER", fault, 10*time.Second); err != nil {
				return err
			}
			rec.Mark("fault")
			time.Sleep(25 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			_, err = v.Heal()
			return err
		}, fires: func(_, _ string) []Firing {
			return []Firing{
				{Alert: "VipkitVIPTwoOwners", Labels: []map[string]string{{"vip": lab.VIP4.String()}, {"vip": lab.VIP6.String()}}},
				{Alert: "VipkitInstanceTwoMasters", Labels: []map[string]string{{"vrrp_instance": lab.Instance}}},
				{Alert: "VipkitFleetTwoOwners", Labels: []map[string]string{{"vrrp_instance": lab.Instance}}},
			}
		}},
		{name: "etcd-lost-everywhere", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			if _, err := v.Reset(ctx); err != nil {
				return err
			}
			rec.Mark("fault")
			var cut time.Duration
			for _, n := range v.Nodes {
				at, err := v.CutEtcd(n)
				if err != nil {
					return err
				}
				cut = at
			}
			for _, n := range v.Nodes {
				if _, err := v.TL.WaitState(ctx, n.Name, lab.Instance, "FAULT", cut, labTTL+5*time.Second); err != nil {
					return err
				}
			}
			time.Sleep(30 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			return nil
		}, fires: func(m, o string) []Firing {
			return []Firing{
				{Alert: "VipkitInstanceNoMaster", Labels: []map[string]string{{"vrrp_instance": lab.Instance}}},
				{Alert: "VipkitNodeFault", Labels: []map[string]string{{"instance": m, "vrrp_instance": lab.Instance}, {"instance": o, "vrrp_instance": lab.Instance}}},
				{Alert: "VipkitNodeFenced", Labels: []map[string]string{{"instance": m, "cluster": "main"}, {"instance": o, "cluster": "main"}}},
			}
		}},
		{name: "fenced-starved-during-etcd-loss", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			m, err := v.Reset(ctx)
			if err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			rec.Mark("fault")
			// fenced gets no CPU from the cut until past its deadline
			// (at most TTL − margin after the last renewal): its fence
			// comes late, its lead below half the margin (or negative).
			if _, err := v.Signal(m.Name, v.Fenced(m), syscall.SIGSTOP); err != nil {
				return err
			}
			if _, err := v.CutEtcd(m); err != nil {
				return err
			}
			time.Sleep(labTTL - labMargin/4)
			if _, err := v.Signal(m.Name, v.Fenced(m), syscall.SIGCONT); err != nil {
				return err
			}
			// fenced.json follows the fence (no lab event does): polled.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if st, err := v.ReadFencedState(m); err == nil && st.State == "fenced" {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("fenced on %s did not fence within 10 s after it resumed", m.Name)
				}
			}
			time.Sleep(3 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			return nil
		}, fires: func(m, _ string) []Firing {
			return []Firing{{Alert: "VipkitFenceLeadLow", Labels: []map[string]string{{"job": Job, "instance": m, "cluster": "main"}}}}
		}},
		{name: "fenced-killed", run: func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
			rec.Mark("fault")
			if _, err := v.Run(ctx, vipkit.FencedKill); err != nil {
				return err
			}
			time.Sleep(15 * time.Second)
			rec.Mark("assert")
			time.Sleep(time.Second)
			return nil
		}, fires: func(m, _ string) []Firing {
			return []Firing{{Alert: "VipkitFencedDown", Labels: []map[string]string{{"job": Job, "instance": m}}}}
		}},
	}
	dir := filepath.Join(v.Dir, "monitoring")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	proven := map[string]bool{}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			if s.name != "election" {
				// Each recording starts from the steady state: what came
				// before is not replayed.
				if _, err := v.Reset(ctx); err != nil {
					t.Fatalf("reset: %v (logs in %s)", err, v.Dir)
				}
			}
			rec.Start(ctx)
			runErr := s.run(ctx, t, v, rec)
			got, err := rec.Stop()
			if runErr != nil {
				t.Fatalf("%s: %v (logs in %s)", s.name, runErr, v.Dir)
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, ty := range got.Families {
				families[f] = ty
			}
			rp := Replay{RuleFile: rulesPath, Rules: rules, Rec: got, Quiet: s.fires == nil}
			if s.fires != nil {
				fault, ok1 := got.Mark("fault")
				assert, ok2 := got.Mark("assert")
				if !ok1 || !ok2 {
					t.Fatalf("%s marked no fault or assert step", s.name)
				}
				rp.QuietUntil = fault
				for _, f := range s.fires(a.Name, b.Name) {
					f.Step = assert
					rp.Fire = append(rp.Fire, f)
					proven[f.Alert] = true
				}
			}
			replayed(t, dir, s.name, rp)
			t.Logf("%s: %d steps of %s replayed through %d rules", s.name, len(got.Steps), got.Interval, len(rules))
		})
	}
	for _, r := range rules {
		if !proven[r.Alert] {
			t.Errorf("no lab scenario fires %s", r.Alert)
		}
	}
	// The dashboard asks only for what fenced really exported here.
	checkDashboard(t, families)
}

// runScenario runs one of the lab's own scenarios, then records a few
// seconds more.
func runScenario(s vipkit.Scenario) func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
	return func(ctx context.Context, t *testing.T, v *vipkit.Lab, rec *Recorder) error {
		_, err := v.Run(ctx, s)
		return settle(err, 5*time.Second)
	}
}

func settle(err error, d time.Duration) error {
	if err == nil {
		time.Sleep(d)
	}
	return err
}

// replayed writes the recording's promtool test to dir and runs it.
func replayed(t *testing.T, dir, name string, rp Replay) {
	t.Helper()
	doc, err := rp.Test()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".test.json")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := promtool.Run(t, nil, "test", "rules", path); !ok {
		if len(out) > 20000 {
			out = out[:20000] + "\n..."
		}
		t.Fatalf("the rules on the lab's recording (%s):\n%s", path, out)
	}
}
