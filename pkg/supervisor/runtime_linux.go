package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/exporter"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/guard"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
	"github.com/vipkit/vipkit/pkg/vip"
)

// handoverAnswerWithin bounds a requested handover in fenced: an etcd
// round trip or two, the successor's answer (witness.DefaultHandoverWait);
// vipctl waits a little longer (cmd/vipctl handoverWait).
const handoverAnswerWithin = 3 * time.Second

// Runtime is fenced as a whole: the lease holders (Supervisor), the route
// guard, the keepalived reaper, the defender, the state file, the heartbeat
// and the systemd notifications. Run runs it; Reload applies a new
// configuration while it runs, touching only what changed (clusters,
// instances and guards alike). The constructor starts nothing, and Run
// returns only once every goroutine it started has ended.
type Runtime struct {
	Sup *Supervisor
	// Holder removes orphan routes and announces for the defender.
	Holder *holder.Holder
	// Senders gives the announcement sender of an interface (Holder's).
	Senders *LinkSenders
	Log     *slog.Logger
	// Notify sends a systemd notification (daemon.SdNotify); nil sends none.
	Notify func(state string) (sent bool, err error)
	// Reloadable is false when there is no file to reload (flags alone).
	Reloadable bool
	// Adopted, when set, is called once the first heartbeat is written: the
	// leases in Sup.Adopt are this process's from then on, so the record of
	// the handoff can go (docs/fencing.md, "Restart without failover").
	Adopted func()
	// HandOver, when set, is asked once when Run stops: true is a planned
	// restart, and the Healthy leases are handed over (Supervisor.Handoff)
	// and passed to Handed instead of fenced and revoked. Anything else
	// stops as always: fence (unless on_stop is keep) and revoke.
	HandOver func() bool
	Handed   func(leases []lease.HandedLease)

	reloads chan struct{}
	mu      sync.Mutex
	guards  guardConfig
}

// guardConfig is what the guards depend on: a reload that changes none of
// it leaves them running.
type guardConfig struct {
	Devs   []string
	Tracks []string
	// Maints are the maintenance files of witnessed instances, by instance.
	Maints         map[string]string
	ReconcileEvery time.Duration
	VRRPPIDFile    string
	Defend         bool
	DefendDelay    time.Duration
}

func guardsOf(cfg *config.Config) guardConfig {
	g := guardConfig{ReconcileEvery: cfg.Fenced.ReconcileEvery, VRRPPIDFile: cfg.Fenced.VRRPPIDFile, Defend: cfg.Fenced.Defend, DefendDelay: cfg.Fenced.DefendDelay}
	for _, in := range cfg.Instances {
		if !slices.Contains(g.Devs, in.Dev) {
			g.Devs = append(g.Devs, in.Dev)
		}
		if in.TrackFile != "" {
			g.Tracks = append(g.Tracks, in.TrackFile)
		}
		if in.Witness && in.MaintenanceFile != "" {
			if g.Maints == nil {
				g.Maints = map[string]string{}
			}
			g.Maints[in.Name] = in.MaintenanceFile
		}
	}
	slices.Sort(g.Devs)
	slices.Sort(g.Tracks)
	return g
}

// notify sends a systemd notification; a failure is logged, never fatal.
func (r *Runtime) notify(state string) {
	if r.Notify == nil {
		return
	}
	if _, err := r.Notify(state); err != nil {
		r.log().Warn("sd_notify failed: "+err.Error(), "state", state)
	}
}

func (r *Runtime) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Run starts everything for cfg and runs until ctx ends; then it fences
// (unless on_stop is keep), revokes the leases, stops the guards and writes
// the state file a last time.
func (r *Runtime) Run(ctx context.Context, cfg *config.Config) error {
	if r.Sup.Changed == nil {
		r.Sup.Changed = make(chan struct{}, 1)
	}
	r.mu.Lock()
	r.reloads = make(chan struct{}, 1)
	r.mu.Unlock()
	every := r.Sup.progressEvery()
	st := NewStateWriter(cfg.StateDir, os.Getpid(), time.Now(), r.log())
	// Metrics first: the fence before the first lease counts too.
	var metrics *Metrics
	if cfg.Fenced.Metrics != "" {
		reg := prometheus.NewRegistry()
		metrics = NewMetrics(r.Sup, reg)
		NewFleetMetrics(r.Sup, reg)
		metrics.HeartbeatAge = func() time.Duration { return st.HeartbeatAge(clock.Boottime()) }
		r.Sup.OnFence, r.Sup.OnRenew = metrics.ObserveFence, metrics.ObserveRenew
		// Its own netlink socket: a scrape never waits behind a fence.
		if n, err := hostnet.Open(); err != nil {
			r.log().Error("metrics: no netlink socket; VIP metrics off: "+err.Error(), "error", err)
		} else {
			defer n.Close()
			reg.MustRegister(r.seen(n, metrics))
		}
		stop, err := serveMetrics(cfg.Fenced.Metrics, reg, r.log())
		if err != nil {
			r.log().Error("metrics endpoint: "+err.Error(), "error", err)
		} else {
			defer stop()
		}
	}
	if err := r.Sup.Apply(ctx, cfg); err != nil {
		r.log().Error("start: some clusters did not start: "+err.Error(), "error", err)
	}
	st.Write(r.Sup.Snapshot(), time.Now()) // the first heartbeat: the loops just started
	if r.Adopted != nil {
		r.Adopted()
	}
	r.notify("READY=1\nSTATUS=" + statusLine(r.Sup.Snapshot()))
	r.log().Info("fenced started", "node", cfg.Node, "clusters", len(cfg.Clusters), "instances", len(cfg.Instances), "state_dir", cfg.StateDir)

	gctx, stopGuards := context.WithCancel(ctx)
	r.mu.Lock()
	r.guards = guardsOf(cfg)
	r.mu.Unlock()
	guards := r.startGuards(gctx, cfg, metrics)

	tick := time.NewTicker(every)
	defer tick.Stop()
	hb := &Heartbeat{
		Alive:  func() bool { return r.Sup.Alive(3 * every) },
		Beat:   func() { st.Write(r.Sup.Snapshot(), time.Now()) },
		Notify: func() { r.notify("WATCHDOG=1") },
		Log:    r.log(),
	}
	for {
		select {
		case <-ctx.Done():
			r.log().Info("stopping", "on_stop", r.Sup.Config().Fenced.OnStop)
			r.notify("STOPPING=1")
			// Fence (and revoke) first: the guards' own shutdown must not
			// delay taking the VIPs down. A planned restart hands over.
			if r.HandOver != nil && r.HandOver() {
				leases := r.Sup.Handoff()
				if r.Handed != nil {
					r.Handed(leases)
				}
			} else {
				r.Sup.Stop()
			}
			stopGuards()
			<-guards
			snap := r.Sup.Snapshot()
			snap.State = "stopped"
			st.Write(snap, time.Time{})
			return nil
		case <-r.reloads:
			// The guards watch the interfaces and files of the configuration.
			stopGuards()
			<-guards
			gctx, stopGuards = context.WithCancel(ctx)
			guards = r.startGuards(gctx, r.Sup.Config(), metrics)
		case <-r.Sup.Changed:
			snap := r.Sup.Snapshot()
			st.Write(snap, time.Time{})
			r.notify("STATUS=" + statusLine(snap))
		case <-tick.C:
			hb.Tick()
		}
	}
}

// Reload applies cfg to the running runtime: clusters, instances and guards
// that did not change are left alone (I8). The heartbeat goes on meanwhile.
// It must be called while Run runs.
func (r *Runtime) Reload(ctx context.Context, cfg *config.Config) {
	r.notify("RELOADING=1")
	if err := r.Sup.Apply(ctx, cfg); err != nil {
		r.log().Error("reload: some clusters did not start: "+err.Error(), "error", err)
	}
	r.mu.Lock()
	g := guardsOf(cfg)
	changed := !reflect.DeepEqual(g, r.guards)
	r.guards = g
	reloads := r.reloads
	r.mu.Unlock()
	if changed && reloads != nil {
		select {
		case reloads <- struct{}{}:
		default:
		}
	}
	r.log().Info("configuration reloaded", "clusters", len(cfg.Clusters), "instances", len(cfg.Instances), "guards_restarted", changed)
	r.notify("READY=1\nSTATUS=" + statusLine(r.Sup.Snapshot()))
}

// Refused reports a reload that was refused (the file does not validate).
func (r *Runtime) Refused(err error) {
	r.log().Error("reload refused; the running configuration stays: "+err.Error(), "error", err)
	r.notify("STATUS=reload refused: " + err.Error())
}

// startGuards runs the route guard, the keepalived reaper, the defender and
// the track file watch; the channel is closed when every one has stopped.
func (r *Runtime) startGuards(ctx context.Context, cfg *config.Config, m *Metrics) <-chan struct{} {
	log := r.log()
	var wg sync.WaitGroup
	events, err := guard.SubscribeAddrs(ctx, nil, func(err error) {
		if ctx.Err() == nil { // closing the subscription reports an error too
			log.Warn("address events: "+err.Error(), "error", err)
		}
	})
	if err != nil {
		log.Error("route guard: no address events; periodic checks only: "+err.Error(), "error", err)
	}
	routes := &guard.Routes{Events: events, Remover: r.Holder, Every: cfg.Fenced.ReconcileEvery, Log: log}
	if m != nil {
		routes.OnRemoved = func(_ hostnet.LocalRoute, w time.Duration) { m.ObserveGuard(w) }
	}
	reaper := &guard.Keepalived{
		PIDFile: cfg.Fenced.VRRPPIDFile, Every: cfg.Fenced.ReconcileEvery, Procs: guard.ProcFS{}, Log: log,
		Release: r.Sup.ReleaseAll,
		OnStart: func(int) { r.Sup.RewriteTracks(ctx); r.Sup.SetKeepalived(true) },
		OnExit:  func(int) { r.Sup.SetKeepalived(false) },
	}
	if cfg.Fenced.Defend {
		if d := r.newDefender(ctx, cfg, &wg, m); d != nil {
			wg.Go(func() { _ = d.Run(ctx) })
		}
	}
	// Put fenced's value back the moment anyone else rewrites a track file
	// (keepalived does at every start: init_file 1 overwrite).
	g := guardsOf(cfg)
	if changed, err := guard.WatchFiles(ctx, g.Tracks); err != nil {
		log.Error("track files are not watched; checked every reconcile_every: "+err.Error(), "error", err)
	} else {
		wg.Go(func() {
			for range changed {
				r.Sup.RewriteTracks(ctx)
			}
		})
	}
	if len(g.Maints) > 0 {
		// A witnessed instance in maintenance (vipctl handover wrote 1) is
		// handed over by the witness; at 0 this node is a candidate again.
		// A request file beside it is vipctl handover asking for the fast
		// path (docs/witness.md): answered once per request ID, in
		// fenced.json; an instance handed over that way stays in
		// maintenance while the request is there (vipctl writes 1, then
		// removes it).
		read := func() {
			for name, path := range g.Maints {
				v, ok, err := trackfile.Read(path)
				id, rerr := fencedstate.ReadRequest(fencedstate.RequestFile(path))
				if rerr != nil {
					log.Warn("handover request not read: "+rerr.Error(), "instance", name, "error", rerr)
				}
				h, seen := r.Sup.HandoverAnswer(name)
				if askFenced(id, h, seen) {
					hctx, cancel := context.WithTimeout(ctx, handoverAnswerWithin)
					h, seen = r.Sup.Handover(hctx, name, id), true
					cancel()
				}
				r.Sup.SetMaintenance(name, keptOut(err == nil && ok && v != 0, id, h, seen))
			}
		}
		read()
		paths := slices.Collect(maps.Values(g.Maints))
		for _, p := range slices.Clone(paths) {
			paths = append(paths, fencedstate.RequestFile(p))
		}
		if changed, err := guard.WatchFiles(ctx, paths); err != nil {
			log.Error("maintenance files of witnessed instances are not watched: "+err.Error(), "error", err)
		} else {
			wg.Go(func() {
				for range changed {
					read()
				}
			})
		}
	}
	wg.Go(func() { _ = reaper.Run(ctx) })
	wg.Go(func() { _ = routes.Run(ctx) })
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// newDefender listens for claims on every configured interface and answers
// those for VIPs held here with one announcement. Its listeners are added
// to wg.
func (r *Runtime) newDefender(ctx context.Context, cfg *config.Config, wg *sync.WaitGroup, m *Metrics) *guard.Defender {
	log := r.log()
	claims := make(chan guard.Claim, 64)
	var listeners sync.WaitGroup
	for _, dev := range guardsOf(cfg).Devs {
		ch, err := guard.ListenClaims(ctx, dev)
		if err != nil {
			log.Error(fmt.Sprintf("defender: cannot listen on %s: %v", dev, err), "dev", dev, "error", err)
			continue
		}
		listeners.Go(func() {
			for c := range ch {
				select {
				case claims <- c:
				default:
				}
			}
		})
	}
	wg.Go(func() { listeners.Wait(); close(claims) })
	return &guard.Defender{
		Claims: claims, Delay: cfg.Fenced.DefendDelay, Log: log,
		Guarded: func(a netip.Addr) (string, vip.VIP, bool) {
			for _, in := range r.Sup.Config().Instances {
				for _, v := range in.VIPs {
					if v.Addr() == a {
						return in.Dev, v, true
					}
				}
			}
			return "", vip.VIP{}, false
		},
		Announce: func(ctx context.Context, dev string, v vip.VIP) (bool, error) {
			if r.Sup.Fencing() {
				return false, nil // the VIP is going: do not take the lock from the fence
			}
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			out, err := r.Holder.Announce(actx, holder.Request{Dev: dev, VIPs: []vip.VIP{v}, Schedule: announce.Schedule{Count: 1}})
			sent := len(out) == 1 && out[0].Result == holder.Applied
			if sent && m != nil {
				m.Defended.Inc()
			}
			return sent, err
		},
	}
}

// LinkSenders keeps one announcement sender per interface.
type LinkSenders struct {
	mu sync.Mutex
	m  map[string]*announce.LinkSender
}

// Get returns dev's sender, opening it the first time.
func (l *LinkSenders) Get(dev string) (announce.Sender, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.m[dev]; ok {
		return s, nil
	}
	s, err := announce.NewLinkSender(dev)
	if err != nil {
		return nil, err
	}
	if l.m == nil {
		l.m = map[string]*announce.LinkSender{}
	}
	l.m[dev] = s
	return s, nil
}

// Close closes every sender.
func (l *LinkSenders) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.m {
		s.Close()
	}
}

func statusLine(s fencedstate.Snapshot) string {
	line := s.State
	for _, c := range s.Clusters {
		line += fmt.Sprintf("; %s: %s", c.Name, c.Lease.State)
		if c.Lease.LeaseID != 0 {
			line += fmt.Sprintf(" lease %x", c.Lease.LeaseID)
		}
	}
	return line
}

func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (func(), error) {
	if err := config.CheckMetricsAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	// Loopback only: compressing the answer would cost CPU and save nothing.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{DisableCompression: true}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	log.Info("metrics served", "addr", ln.Addr().String())
	return func() { _ = srv.Close(); <-done }, nil
}

// Heartbeat keeps the state file's heartbeat and the systemd watchdog
// going only while every lease holder makes progress (I5): a holder stuck
// in a live process stops both, so keepalived's liveness check puts the
// instances in FAULT and systemd restarts fenced.
type Heartbeat struct {
	Alive   func() bool // every holder showed progress lately
	Beat    func()      // a new heartbeat in the state file
	Notify  func()      // WATCHDOG=1
	Log     *slog.Logger
	stalled bool
}

// Tick beats, or does not, once.
func (h *Heartbeat) Tick() {
	if !h.Alive() {
		if !h.stalled {
			h.Log.Error("a lease holder is not making progress; heartbeat and watchdog stopped")
		}
		h.stalled = true
		return
	}
	if h.stalled {
		h.Log.Info("every lease holder makes progress again; heartbeat resumed")
	}
	h.stalled = false
	h.Beat()
	h.Notify()
}

// StateWriter keeps fenced.json current.
type StateWriter struct {
	dir     string
	pid     int
	started time.Time
	log     *slog.Logger
	beat    time.Time
	beatB   time.Duration
	// lastBeat is beatB (or the start) for readers on other goroutines
	// (a scrape).
	lastBeat atomic.Int64
}

// NewStateWriter writes dir's fenced.json for process pid, started then.
func NewStateWriter(dir string, pid int, started time.Time, log *slog.Logger) *StateWriter {
	w := &StateWriter{dir: dir, pid: pid, started: started, log: log}
	w.lastBeat.Store(int64(clock.Boottime()))
	return w
}

// HeartbeatAge is the time from the last heartbeat (or the start, before
// the first) to now, both on CLOCK_BOOTTIME.
func (w *StateWriter) HeartbeatAge(now time.Duration) time.Duration {
	return max(now-time.Duration(w.lastBeat.Load()), 0)
}

// Write replaces the state file; heartbeat, when set, is a new heartbeat.
func (w *StateWriter) Write(s fencedstate.Snapshot, heartbeat time.Time) {
	if !heartbeat.IsZero() {
		w.beat, w.beatB = heartbeat, clock.Boottime()
		w.lastBeat.Store(int64(w.beatB))
	}
	s.PID, s.Started, s.Heartbeat, s.HeartbeatBoot = w.pid, w.started, w.beat, w.beatB
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		w.log.Error("encode state: "+err.Error(), "error", err)
		return
	}
	path := filepath.Join(w.dir, fencedstate.File)
	tmp := path + ".tmp"
	err = os.WriteFile(tmp, append(b, '\n'), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		w.log.Error("write state file: "+err.Error(), "path", path, "error", err)
	}
}

// seen exports what vipctl's hooks recorded and what the kernel holds of
// the configured VIPs, through n (exporter.Seen).
func (r *Runtime) seen(n *hostnet.Net, m *Metrics) *exporter.Seen {
	state := &exporter.CachedState{
		Path: func() string { return filepath.Join(r.Sup.Config().StateDir, runstate.StateFile) },
		Stat: exporter.StatKey,
		Load: func(path string) (*runstate.State, error) { return runstate.New(filepath.Dir(path)).Read() },
	}
	return exporter.NewSeen(exporter.Seen{
		Config: r.Sup.Config,
		State:  state,
		Host:   n,
		Alive:  runstate.Alive,
		Keepalived: func() (int64, bool) {
			pid, ok := guard.ProcFS{}.Find(r.Sup.Config().Fenced.VRRPPIDFile)
			if !ok {
				return 0, false
			}
			start, err := runstate.ProcStart(pid)
			return start, err == nil
		},
		Now:    time.Now,
		Errors: m.ScrapeErrors,
	})
}
