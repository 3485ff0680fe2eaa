// Package exporter is fenced's Prometheus view of what it does not run
// itself: keepalived's instances as the hooks and the notify FIFO reported
// them (vipctl's state file, never a signal to keepalived), the hooks' own
// runs, and each configured VIP as the kernel holds it.
//
// Every value is read at scrape time: the state file (parsed again only
// when it changed), one dump of the host's addresses and one of its local
// routes. Labels are bounded by the configuration: instances and VIPs not
// configured are not exported, and the command label takes vipctl's few
// state-changing commands.
package exporter

import (
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/runstate"
)

// States are the values of the state label, one series each per instance:
// keepalived's states as `notify` and the FIFO report them, and RELEASED
// from per-state hooks, which only know that the instance left MASTER.
var States = []string{"MASTER", "BACKUP", "FAULT", "STOP", "DELETED", runstate.StateReleased}

// Commands are vipctl's state-changing commands, the values of the command
// label: each is exported from the start, at 0.
var Commands = []string{"notify", "fifo", runstate.ActionUp, runstate.ActionDown, runstate.ActionAnnounce,
	runstate.ActionRouteSrcAdd, runstate.ActionRouteSrcDel, runstate.ActionHandover}

// Host is the kernel as the exporter reads it (hostnet.Net).
type Host interface {
	Assigned() (map[netip.Addr]bool, error)
	// Hinted lists the addresses whose local route carries vipkit's hint.
	Hinted() (map[netip.Addr]bool, error)
}

// StateFile reads vipctl's state (CachedState).
type StateFile interface {
	Read() (*runstate.State, error)
}

// Seen exports what the hooks saw and what the kernel holds.
type Seen struct {
	Config func() *config.Config
	State  StateFile
	Host   Host
	// Alive reports whether a refresher still runs (runstate.Alive).
	Alive func(runstate.Proc) bool
	// Keepalived finds keepalived's VRRP process and its start (clock
	// ticks since boot, as tickets count): a report older than the process
	// is from a keepalived that is gone (killed: no hook ran) and says
	// nothing of the instance now. Nil: reports are taken as current.
	Keepalived func() (start int64, running bool)
	Now        func() time.Time
	// Errors counts scrapes that could not read a source, by source.
	Errors *prometheus.CounterVec

	// mu serializes scrapes: Host is one netlink socket.
	mu *sync.Mutex

	up                                      *prometheus.Desc
	instanceState, timeInState, transitions *prometheus.Desc
	hookRuns, hookFailures, hookLate        *prometheus.Desc
	hookDuration                            *prometheus.Desc
	held, hint, refresher, announced        *prometheus.Desc
}

// NewSeen describes the metrics; register it with the scrape's registry.
func NewSeen(s Seen) *Seen {
	s.mu = &sync.Mutex{}
	in := []string{"vrrp_instance"}
	v := []string{"vrrp_instance", "vip"}
	cmd := []string{"command"}
	s.up = prometheus.NewDesc("vipkit_keepalived_up", "1 when keepalived's VRRP process (fenced.vrrp_pid_file) runs.", nil, nil)
	s.instanceState = prometheus.NewDesc("vipkit_keepalived_instance_state", "1 for the state keepalived last reported for the instance through a hook or the notify FIFO (RELEASED: a per-state hook said only that it left MASTER); every state 0 before the running keepalived reported any, and while keepalived does not run.", []string{"vrrp_instance", "state"}, nil)
	s.timeInState = prometheus.NewDesc("vipkit_keepalived_instance_time_in_state_seconds", "Time since the hook that reported the instance's current state ran.", in, nil)
	s.transitions = prometheus.NewDesc("vipkit_keepalived_transitions_total", "Transitions keepalived reported for the instance, by the state entered (late hooks included).", []string{"vrrp_instance", "state"}, nil)
	s.hookRuns = prometheus.NewDesc("vipkit_hook_runs_total", "Runs of a state-changing vipctl command (a hook, a FIFO line, a command by hand).", cmd, nil)
	s.hookFailures = prometheus.NewDesc("vipkit_hook_failures_total", "Runs that failed (non-zero exit, or a FIFO line that could not be applied).", cmd, nil)
	s.hookLate = prometheus.NewDesc("vipkit_hook_late_skips_total", "Runs that skipped VIPs a later-forked hook had already acted on (I6: a late hook never undoes a later transition).", cmd, nil)
	s.hookDuration = prometheus.NewDesc("vipkit_hook_duration_seconds", "Time from a run's start to its state write.", cmd, nil)
	s.held = prometheus.NewDesc("vipkit_vip_held", "1 when the configured VIP is assigned on this host.", v, nil)
	s.hint = prometheus.NewDesc("vipkit_vip_route_hint", "1 when the VIP's local route carries vipkit's source hint (proto 86).", v, nil)
	s.refresher = prometheus.NewDesc("vipkit_vip_refresher_running", "1 when a vipctl refresher is announcing the VIP.", v, nil)
	s.announced = prometheus.NewDesc("vipkit_vip_last_announcement_timestamp_seconds", "When vipctl or fenced's defender last sent a burst of gratuitous ARP / unsolicited NA for the VIP (a refresher's rounds are not counted).", v, nil)
	return &s
}

// Describe implements prometheus.Collector.
func (s *Seen) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.up, s.instanceState, s.timeInState, s.transitions, s.hookRuns, s.hookFailures, s.hookLate, s.hookDuration, s.held, s.hint, s.refresher, s.announced} {
		ch <- d
	}
}

func (s *Seen) fail(source string) {
	if s.Errors != nil {
		s.Errors.WithLabelValues(source).Inc()
	}
}

// Collect implements prometheus.Collector.
func (s *Seen) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.Config()
	if cfg == nil {
		return
	}
	st, err := s.State.Read()
	if err != nil {
		s.fail("state")
		st = &runstate.State{}
	}
	now := s.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	kaStart, kaRunning := int64(0), true
	if s.Keepalived != nil {
		kaStart, kaRunning = s.Keepalived()
		gauge(s.up, b2f(kaRunning))
	}
	for _, in := range cfg.Instances {
		rec := st.Instances[in.Name]
		if rec != nil && (!kaRunning || rec.Ticket.Ticks < kaStart) {
			rec = nil // reported to a keepalived that is gone
		}
		for _, state := range States {
			gauge(s.instanceState, b2f(rec != nil && rec.State == state), in.Name, state)
		}
		if all := st.Instances[in.Name]; all != nil {
			// Counted over keepalived's restarts: a counter never goes back.
			for state, n := range all.Transitions {
				ch <- prometheus.MustNewConstMetric(s.transitions, prometheus.CounterValue, float64(n), in.Name, state)
			}
		}
		if rec != nil {
			gauge(s.timeInState, max(now.Sub(rec.Since), 0).Seconds(), in.Name)
		}
	}
	hooks := maps.Clone(st.Hooks)
	if hooks == nil {
		hooks = map[string]*runstate.HookStats{}
	}
	for _, cmd := range Commands {
		if hooks[cmd] == nil {
			hooks[cmd] = &runstate.HookStats{} // at 0 from the start, for increase()
		}
	}
	for cmd, h := range hooks {
		ch <- prometheus.MustNewConstMetric(s.hookRuns, prometheus.CounterValue, float64(h.Runs), cmd)
		ch <- prometheus.MustNewConstMetric(s.hookFailures, prometheus.CounterValue, float64(h.Failed), cmd)
		ch <- prometheus.MustNewConstMetric(s.hookLate, prometheus.CounterValue, float64(h.Late), cmd)
		buckets := make(map[float64]uint64, len(runstate.HookBuckets))
		var cum uint64
		for i, b := range runstate.HookBuckets {
			cum += h.Buckets[i]
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(s.hookDuration, h.Runs, h.Sum.Seconds(), buckets, cmd)
	}
	assigned, err := s.Host.Assigned()
	if err != nil {
		s.fail("addresses")
	}
	hinted, err := s.Host.Hinted()
	if err != nil {
		s.fail("routes")
	}
	alive := map[runstate.Proc]bool{}
	for _, in := range cfg.Instances {
		for _, v := range in.VIPs {
			a := v.Addr()
			name := a.String()
			gauge(s.held, b2f(assigned[a]), in.Name, name)
			gauge(s.hint, b2f(hinted[a]), in.Name, name)
			e := st.Entry(v)
			running := false
			if e != nil && e.Refresher != nil && e.Holding() {
				p := *e.Refresher
				r, ok := alive[p]
				if !ok {
					r = s.Alive(p)
					alive[p] = r
				}
				running = r
			}
			gauge(s.refresher, b2f(running), in.Name, name)
			if e != nil && !e.Announced.IsZero() {
				gauge(s.announced, float64(e.Announced.UnixNano())/1e9, in.Name, name)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// CachedState reads the state file again only when it changed (its size,
// modification time or inode), so that a scrape of a quiet host parses
// nothing. vipctl replaces the file by rename: a new write is a new inode.
type CachedState struct {
	// Path is the file's path now (a reload may move the state directory).
	Path func() string
	Stat func(path string) (Key, error)
	Load func(path string) (*runstate.State, error)

	mu   sync.Mutex
	path string
	key  Key
	st   *runstate.State
}

// Key identifies one version of the file.
type Key struct {
	Ino, Size, MtimeNS int64
}

// Read implements StateFile.
func (c *CachedState) Read() (*runstate.State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path := c.Path()
	k, err := c.Stat(path)
	if err == nil && c.st != nil && k == c.key && path == c.path {
		return c.st, nil
	}
	st, err := c.Load(path)
	if err != nil {
		return nil, err
	}
	c.key, c.st, c.path = k, st, path
	return st, nil
}
