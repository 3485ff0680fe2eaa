package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// The labs the tests share, by key (a mode's short name, "control",
// "fleet").
var (
	labsMu sync.Mutex
	labs   = map[string]*fixture{}
)

type fixture struct {
	opts vipkit.Options
	v    *vipkit.Lab
	runs map[vipkit.Scenario]*run
}

// run is one scenario run that several tests examine.
type run struct {
	v      *vipkit.Lab
	r      vipkit.Result
	err    error
	report string
}

func TestMain(m *testing.M) {
	code := m.Run()
	labsMu.Lock()
	for _, f := range labs {
		if f.v != nil {
			if err := f.v.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "close lab %s: %v\n", f.v.Dir, err)
			}
		}
	}
	labsMu.Unlock()
	os.Exit(code)
}

// require stops a test that cannot run here: a skip on a developer
// machine, a failure under CI=true.
func require(t *testing.T) {
	t.Helper()
	vipkit.Require(t, "end-to-end lab test")
}

func modeOpts(m vipkit.Mode) (string, vipkit.Options) {
	return m.Short(), vipkit.Options{Mode: m}
}

func controlOpts() (string, vipkit.Options) { return "control", vipkit.Options{Control: true} }

func fleetOpts() (string, vipkit.Options) {
	return "fleet", vipkit.Options{Mode: vipkit.Hooks, Second: true}
}

// shared returns the lab for key in the steady state, building it on first
// use and rebuilding it once if it cannot be reset (a previous failure
// left it broken).
func shared(t *testing.T, ctx context.Context, key string, opts vipkit.Options) *vipkit.Lab {
	t.Helper()
	require(t)
	labsMu.Lock()
	defer labsMu.Unlock()
	f := labs[key]
	if f == nil {
		f = &fixture{opts: opts, runs: map[vipkit.Scenario]*run{}}
		labs[key] = f
	}
	if f.v != nil {
		if _, err := f.v.Reset(ctx); err == nil {
			return f.v
		} else {
			t.Logf("lab %s cannot be reset, building a new one: %v", key, err)
		}
		if err := f.v.Close(); err != nil {
			t.Logf("close lab %s: %v", key, err)
		}
		f.v = nil
	}
	o := f.opts
	o.Lab.Name = "e2e-" + key
	v, err := vipkit.New(ctx, o)
	if err != nil {
		t.Fatalf("build lab %s: %v", key, err)
	}
	f.v = v
	if _, _, err := v.Up(ctx); err != nil {
		t.Fatalf("bring lab %s up: %v (logs in %s)", key, err, v.Dir)
	}
	return v
}

// scenario runs s in the lab for key, once per test binary run: tests that
// examine different aspects of the same run share it. On failure of the
// run itself the test fails with the runner's error and the timeline.
func scenario(t *testing.T, key string, opts vipkit.Options, s vipkit.Scenario) (*vipkit.Lab, vipkit.Result) {
	t.Helper()
	labsMu.Lock()
	f := labs[key]
	var done *run
	if f != nil {
		done = f.runs[s]
	}
	labsMu.Unlock()
	if done == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		v := shared(t, ctx, key, opts)
		done = &run{v: v}
		done.r, done.err = v.Run(ctx, s)
		var b strings.Builder
		slug := fmt.Sprintf("%s-%d", s, v.TL.Len())
		if _, err := v.Report(&b, slug, done.r); err != nil {
			fmt.Fprintf(&b, "(report: %v)\n", err)
		}
		done.report = b.String() + "\nresults: " + filepath.Join(v.Dir, slug) + ".{txt,svg}\n"
		labsMu.Lock()
		labs[key].runs[s] = done
		labsMu.Unlock()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s in the %s lab:\n%s", s, key, done.report)
		}
	})
	if done.err != nil {
		t.Fatalf("%v (logs in %s)", done.err, done.v.Dir)
	}
	return done.v, done.r
}

// node is a lab node by name.
func node(t *testing.T, v *vipkit.Lab, name string) *lab.Node {
	t.Helper()
	n := v.Node(name)
	if n == nil {
		t.Fatalf("no node %s", name)
	}
	return n
}

// failovers are the per-VIP metrics of a result's first move (or, with
// back, of its second: a heal, an undo, a recovery).
func failovers(r lab.Result, back bool) []observe.Failover {
	fs := []observe.Failover{r.V4, r.V6}
	if back {
		fs = []observe.Failover{r.HealV4, r.HealV6}
	}
	var out []observe.Failover
	for _, f := range fs {
		if f.VIP.IsValid() {
			out = append(out, f)
		}
	}
	return out
}

// claimEnd is when host's last claim on ip (address or local route) that
// overlaps [from, to] ended; None if it still claims at to or never did.
func claimEnd(tl *observe.Timeline, host string, ip netip.Addr, from, to time.Duration) time.Duration {
	end := observe.None
	for _, s := range observe.Clip(tl.ClaimSpans(host, ip, to+1), from, to+1) {
		if s.To > to {
			return observe.None
		}
		end = s.To
	}
	return end
}

// announcesFor reports whether a captured frame tells the segment that its
// sender owns ip: an ARP reply or gratuitous ARP from ip, or a neighbour
// advertisement for it.
func announcesFor(e observe.Event, ip netip.Addr) bool {
	if e.Kind != observe.KindFrame {
		return false
	}
	switch e.Op {
	case observe.OpARPReply:
		return e.IP == ip
	case observe.OpARPRequest:
		return e.Gratuitous && e.IP == ip
	case observe.OpNA:
		return e.Target == ip
	}
	return false
}

// answersFrom are the frames host sent in (from, to] that announce ip.
func answersFrom(tl *observe.Timeline, host string, ip netip.Addr, from, to time.Duration) []observe.Event {
	return tl.Events(func(e observe.Event) bool {
		return e.Owner == host && announcesFor(e, ip) && e.At > from && e.At <= to
	})
}

func ms(d time.Duration) string { return observe.FormatDur(d) }
