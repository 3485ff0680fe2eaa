package exporter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

type fakeHost struct {
	assigned []string
	routes   []hostnet.LocalRoute
	err      error
}

func (h fakeHost) Assigned() (map[netip.Addr]bool, error) {
	m := map[netip.Addr]bool{}
	for _, a := range h.assigned {
		m[netip.MustParseAddr(a)] = true
	}
	return m, h.err
}

func (h fakeHost) Hinted() (map[netip.Addr]bool, error) {
	m := map[netip.Addr]bool{}
	for _, r := range h.routes {
		if r.IsHint() {
			m[r.Dst] = true
		}
	}
	return m, h.err
}

type fixedState struct {
	st  *runstate.State
	err error
}

func (f fixedState) Read() (*runstate.State, error) { return f.st, f.err }

func TestSeenExportsHooksAndKernel(t *testing.T) {
	now := time.Unix(2000, 0)
	cfg := &config.Config{StateDir: "/run/vipkit", Instances: []config.Instance{
		{Name: "VI_1", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("192.0.2.100"), vip.MustParse("2001:db8::100")}},
		{Name: "VI_2", Dev: "eth0", VIPs: []vip.VIP{vip.MustParse("192.0.2.101")}},
	}}
	st := &runstate.State{Entries: map[string]*runstate.Entry{}}
	st.Report("VI_1", "BACKUP", runstate.Ticket{Ticks: 1, PID: 1}, now.Add(-time.Minute))
	st.Report("VI_1", "MASTER", runstate.Ticket{Ticks: 2, PID: 1}, now.Add(-10*time.Second))
	st.Report("VI_9", "MASTER", runstate.Ticket{Ticks: 2, PID: 1}, now) // no longer configured
	st.Hook("notify").Observe(3*time.Millisecond, false, false)
	st.Hook("notify").Observe(30*time.Second, true, true)
	ref := runstate.Proc{PID: 77, Start: 5}
	st.Record(runstate.Entry{VIP: vip.MustParse("192.0.2.100"), Action: runstate.ActionUp, Refresher: &ref, Announced: time.Unix(1500, 0)})
	st.Record(runstate.Entry{VIP: vip.MustParse("2001:db8::100"), Action: runstate.ActionDown, Refresher: &ref})
	host := fakeHost{
		assigned: []string{"192.0.2.100", "192.0.2.11"},
		routes: []hostnet.LocalRoute{
			{Dst: netip.MustParseAddr("192.0.2.100"), Protocol: hostnet.HintProtocol},
			{Dst: netip.MustParseAddr("192.0.2.101"), Protocol: 2}, // the kernel's own
		},
	}
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errs_total", Help: "x"}, []string{"source"})
	s := NewSeen(Seen{Config: func() *config.Config { return cfg }, State: fixedState{st: st}, Host: host,
		Alive: func(p runstate.Proc) bool { return p == ref }, Now: func() time.Time { return now }, Errors: errs})
	want := `
# HELP vipkit_keepalived_instance_time_in_state_seconds Time since the hook that reported the instance's current state ran.
# TYPE vipkit_keepalived_instance_time_in_state_seconds gauge
vipkit_keepalived_instance_time_in_state_seconds{vrrp_instance="VI_1"} 10
# HELP vipkit_keepalived_transitions_total Transitions keepalived reported for the instance, by the state entered (late hooks included).
# TYPE vipkit_keepalived_transitions_total counter
vipkit_keepalived_transitions_total{state="BACKUP",vrrp_instance="VI_1"} 1
vipkit_keepalived_transitions_total{state="MASTER",vrrp_instance="VI_1"} 1
# HELP vipkit_hook_runs_total Runs of a state-changing vipctl command (a hook, a FIFO line, a command by hand).
# TYPE vipkit_hook_runs_total counter
vipkit_hook_runs_total{command="announce"} 0
vipkit_hook_runs_total{command="down"} 0
vipkit_hook_runs_total{command="fifo"} 0
vipkit_hook_runs_total{command="handover"} 0
vipkit_hook_runs_total{command="notify"} 2
vipkit_hook_runs_total{command="route-src-add"} 0
vipkit_hook_runs_total{command="route-src-del"} 0
vipkit_hook_runs_total{command="up"} 0
# HELP vipkit_hook_failures_total Runs that failed (non-zero exit, or a FIFO line that could not be applied).
# TYPE vipkit_hook_failures_total counter
vipkit_hook_failures_total{command="announce"} 0
vipkit_hook_failures_total{command="down"} 0
vipkit_hook_failures_total{command="fifo"} 0
vipkit_hook_failures_total{command="handover"} 0
vipkit_hook_failures_total{command="notify"} 1
vipkit_hook_failures_total{command="route-src-add"} 0
vipkit_hook_failures_total{command="route-src-del"} 0
vipkit_hook_failures_total{command="up"} 0
# HELP vipkit_hook_late_skips_total Runs that skipped VIPs a later-forked hook had already acted on (I6: a late hook never undoes a later transition).
# TYPE vipkit_hook_late_skips_total counter
vipkit_hook_late_skips_total{command="announce"} 0
vipkit_hook_late_skips_total{command="down"} 0
vipkit_hook_late_skips_total{command="fifo"} 0
vipkit_hook_late_skips_total{command="handover"} 0
vipkit_hook_late_skips_total{command="notify"} 1
vipkit_hook_late_skips_total{command="route-src-add"} 0
vipkit_hook_late_skips_total{command="route-src-del"} 0
vipkit_hook_late_skips_total{command="up"} 0
# HELP vipkit_vip_held 1 when the configured VIP is assigned on this host.
# TYPE vipkit_vip_held gauge
vipkit_vip_held{vip="192.0.2.100",vrrp_instance="VI_1"} 1
vipkit_vip_held{vip="192.0.2.101",vrrp_instance="VI_2"} 0
vipkit_vip_held{vip="2001:db8::100",vrrp_instance="VI_1"} 0
# HELP vipkit_vip_route_hint 1 when the VIP's local route carries vipkit's source hint (proto 86).
# TYPE vipkit_vip_route_hint gauge
vipkit_vip_route_hint{vip="192.0.2.100",vrrp_instance="VI_1"} 1
vipkit_vip_route_hint{vip="192.0.2.101",vrrp_instance="VI_2"} 0
vipkit_vip_route_hint{vip="2001:db8::100",vrrp_instance="VI_1"} 0
# HELP vipkit_vip_refresher_running 1 when a vipctl refresher is announcing the VIP.
# TYPE vipkit_vip_refresher_running gauge
vipkit_vip_refresher_running{vip="192.0.2.100",vrrp_instance="VI_1"} 1
vipkit_vip_refresher_running{vip="192.0.2.101",vrrp_instance="VI_2"} 0
vipkit_vip_refresher_running{vip="2001:db8::100",vrrp_instance="VI_1"} 0
# HELP vipkit_vip_last_announcement_timestamp_seconds When vipctl or fenced's defender last sent a burst of gratuitous ARP / unsolicited NA for the VIP (a refresher's rounds are not counted).
# TYPE vipkit_vip_last_announcement_timestamp_seconds gauge
vipkit_vip_last_announcement_timestamp_seconds{vip="192.0.2.100",vrrp_instance="VI_1"} 1500
`
	names := []string{"vipkit_keepalived_instance_time_in_state_seconds", "vipkit_keepalived_transitions_total", "vipkit_hook_runs_total",
		"vipkit_hook_failures_total", "vipkit_hook_late_skips_total", "vipkit_vip_held", "vipkit_vip_route_hint", "vipkit_vip_refresher_running",
		"vipkit_vip_last_announcement_timestamp_seconds"}
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// One series per state and configured instance; 1 only for the state
	// reported last; VI_2 (no report yet) all 0; VI_9 not exported.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vipkit_keepalived_instance_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var in, state string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "vrrp_instance":
					in = l.GetValue()
				case "state":
					state = l.GetValue()
				}
			}
			states[in+"/"+state] = m.GetGauge().GetValue()
		}
	}
	if len(states) != 2*len(States) || states["VI_1/MASTER"] != 1 || states["VI_1/BACKUP"] != 0 || states["VI_2/MASTER"] != 0 {
		t.Fatalf("instance states: %v", states)
	}
	// One hook histogram per command, every command from the start.
	if n := testutil.CollectAndCount(s, "vipkit_hook_duration_seconds"); n != len(Commands) {
		t.Fatalf("hook duration histograms: %d, want %d", n, len(Commands))
	}
	// A report older than the running keepalived (a keepalived killed
	// without its hooks, then started again) or with no keepalived says
	// nothing of the instance now; the transitions still count.
	for _, ka := range []struct {
		start   int64
		running bool
	}{{3, true}, {0, false}} {
		s.Keepalived = func() (int64, bool) { return ka.start, ka.running }
		want := `
# HELP vipkit_keepalived_up 1 when keepalived's VRRP process (fenced.vrrp_pid_file) runs.
# TYPE vipkit_keepalived_up gauge
vipkit_keepalived_up ` + map[bool]string{true: "1", false: "0"}[ka.running] + `
`
		if err := testutil.CollectAndCompare(s, strings.NewReader(want), "vipkit_keepalived_up", "vipkit_keepalived_instance_time_in_state_seconds"); err != nil {
			t.Fatal(err)
		}
		if got := testutil.CollectAndCount(s, "vipkit_keepalived_transitions_total"); got != 2 {
			t.Fatalf("transitions series: %d, want 2", got)
		}
		if got := testutil.ToFloat64(onlyMaster{s}); got != 0 {
			t.Fatalf("MASTER reported for a gone keepalived (start %d, running %v)", ka.start, ka.running)
		}
	}
	s.Keepalived = func() (int64, bool) { return 2, true }
	if got := testutil.ToFloat64(onlyMaster{s}); got != 1 {
		t.Fatal("MASTER from the running keepalived not exported")
	}
	// A source that cannot be read is counted, and the rest still exported.
	s2 := NewSeen(Seen{Config: func() *config.Config { return cfg }, State: fixedState{err: errors.New("boom")}, Host: fakeHost{err: errors.New("boom")},
		Alive: func(runstate.Proc) bool { return false }, Now: time.Now, Errors: errs})
	if n := testutil.CollectAndCount(s2, "vipkit_vip_held"); n != 3 {
		t.Fatalf("held series with unreadable sources: %d, want 3", n)
	}
	for _, src := range []string{"state", "addresses", "routes"} {
		if v := testutil.ToFloat64(errs.WithLabelValues(src)); v != 1 {
			t.Errorf("errors{source=%s} = %v, want 1", src, v)
		}
	}
}

// The state file is parsed again only when it changed.
func TestCachedStateReadsOnlyChanges(t *testing.T) {
	key := Key{Ino: 1, Size: 10}
	loads := 0
	c := &CachedState{
		Path: func() string { return "/run/vipkit/vipctl.state" },
		Stat: func(string) (Key, error) { return key, nil },
		Load: func(string) (*runstate.State, error) { loads++; return &runstate.State{}, nil },
	}
	for _, step := range []struct {
		change    func()
		wantLoads int
	}{
		{func() {}, 1},
		{func() {}, 1},
		{func() { key.Ino = 2 }, 2}, // replaced by rename
		{func() {}, 2},
		{func() { key.MtimeNS = 5 }, 3},
	} {
		step.change()
		if _, err := c.Read(); err != nil {
			t.Fatal(err)
		}
		if loads != step.wantLoads {
			t.Fatalf("loads = %d, want %d", loads, step.wantLoads)
		}
	}
}

// onlyMaster is VI_1's MASTER series of s.
type onlyMaster struct{ s *Seen }

func (o onlyMaster) Describe(ch chan<- *prometheus.Desc) { o.s.Describe(ch) }

func (o onlyMaster) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { o.s.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"vipkit_keepalived_instance_state"`) {
			var pb dto.Metric
			_ = m.Write(&pb)
			var in, st string
			for _, l := range pb.GetLabel() {
				if l.GetName() == "vrrp_instance" {
					in = l.GetValue()
				} else if l.GetName() == "state" {
					st = l.GetValue()
				}
			}
			if in == "VI_1" && st == "MASTER" {
				ch <- m
			}
		}
	}
}
