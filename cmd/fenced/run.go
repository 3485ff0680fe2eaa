package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/announce"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/guard"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/logging"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/supervisor"
	"github.com/vipkit/vipkit/pkg/trackfile"
	"github.com/vipkit/vipkit/pkg/vip"
)

// lockWait bounds how long a fence waits for vipctl's lock before it
// removes the VIPs without it.
const lockWait = 200 * time.Millisecond

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the sidecar (systemd Type=notify)",
		Description: `Holds a lease in every configured etcd cluster and fences the instances of a cluster
(VIPs and hints removed, then 1 in each track file) before that lease can expire on the
server. SIGHUP reloads the configuration, changing only clusters and instances that
changed; a configuration that does not validate is refused and the running one is kept.
SIGTERM or SIGINT fence (unless on_stop = "keep") and revoke the leases.

From flags alone, for one instance:
  fenced run --endpoints http://192.0.2.20:2379 --node node-a --dev eth0 --vip 192.0.2.100 \
    --track-file /run/vipkit/VI_1.fence`,
		Flags:  append([]cli.Flag{configFlag, stateFlag, levelFlag, logFile}, runFlags()...),
		Action: runAction,
	}
}

func boottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ts.Nano())
}

// noSpawn lets the holder stop vipctl's refreshers when fencing; fenced
// itself never starts one.
type noSpawn struct{ runstate.Procs }

func (noSpawn) Spawn(context.Context, holder.SpawnRequest) (runstate.Proc, error) {
	return runstate.Proc{}, errors.New("fenced does not start refreshers")
}

func newLogger(c *cli.Context, cfg *config.Config) (*slog.Logger, func(), error) {
	level := cfg.LogLevel
	if s := c.String("log-level"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return nil, nil, usagef("--log-level %q is not debug, info, warn or error", s)
		}
	}
	return logging.New(logging.Options{Tag: "fenced", Level: level, File: c.String("log-file")})
}

func runAction(c *cli.Context) error {
	cfg, err := loadRunConfig(c)
	if err != nil {
		return err
	}
	if len(cfg.Clusters) == 0 {
		return usagef("no etcd cluster is configured: give --endpoints or a [[cluster]] in %s", cfg.Path)
	}
	log, closeLog, err := newLogger(c, cfg)
	if err != nil {
		return err
	}
	defer closeLog()
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	// Signals first: a SIGTERM during start-up must still stop cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := prepareDirs(cfg, log); err != nil {
		return err
	}
	n, err := hostnet.Open()
	if err != nil {
		return err
	}
	defer n.Close()
	senders := &linkSenders{}
	defer senders.close()
	h := &holder.Holder{Host: n, Store: runstate.New(cfg.StateDir), Senders: senders.get,
		Refreshers: noSpawn{runstate.Procs{Grace: 500 * time.Millisecond}}, Log: log}
	act := &fence.Actuator{Releaser: h, Host: n, Track: trackfile.Write, Read: trackfile.Read, Ticket: runstate.NowTicket, LockWait: lockWait, Log: log}
	progressEvery := time.Second
	watchdog, _ := daemon.SdWatchdogEnabled(false)
	if watchdog > 0 && watchdog/2 < progressEvery {
		progressEvery = watchdog / 2
	}
	sup := &supervisor.Supervisor{
		Node: cfg.Node, Version: version, Actuator: act, Dial: dialEtcd, Log: log,
		ProgressEvery: progressEvery, Changed: make(chan struct{}, 1), Clock: boottime,
	}
	st := &stateWriter{dir: cfg.StateDir, pid: os.Getpid(), started: time.Now(), log: log}
	// A planned restart: take over the leases (and deadlines) the previous
	// fenced handed over (handoff.go).
	var adopted func()
	sup.Adopt, adopted = takeHandoff(cfg.StateDir, log)

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if err := sup.Apply(ctx, cfg); err != nil {
		log.Error("start: some clusters did not start", "error", err)
	}
	st.write(sup.Snapshot(), time.Now()) // the first heartbeat: the loops just started
	adopted()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+statusLine(sup.Snapshot()))
	log.Info("fenced started", "node", cfg.Node, "clusters", len(cfg.Clusters), "instances", len(cfg.Instances), "state_dir", cfg.StateDir)

	var metrics *supervisor.Metrics
	if cfg.Fenced.Metrics != "" {
		reg := prometheus.NewRegistry()
		metrics = supervisor.NewMetrics(sup, reg)
		stopMetrics, err := serveMetrics(cfg.Fenced.Metrics, reg, log)
		if err != nil {
			log.Error("metrics endpoint", "error", err)
		} else {
			defer stopMetrics()
		}
	}
	gctx, stopGuards := context.WithCancel(ctx)
	guards := startGuards(gctx, cfg, h, sup, metrics, log)
	defer func() { stopGuards(); <-guards }()

	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	stalled := false
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if reload(ctx, c, sup, log) {
					// The guards watch the interfaces of the configuration.
					stopGuards()
					<-guards
					gctx, stopGuards = context.WithCancel(ctx)
					guards = startGuards(gctx, sup.Config(), h, sup, metrics, log)
				}
				continue
			}
			log.Info("stopping", "signal", sig.String(), "on_stop", sup.Config().Fenced.OnStop)
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			// Fence (and revoke) first: the guards' own shutdown must not
			// delay taking the VIPs down. A planned restart hands over.
			stopOrHandOver(ctx, sup, sup.Config(), log)
			stopGuards()
			<-guards
			snap := sup.Snapshot()
			snap.State = "stopped"
			st.write(snap, time.Time{})
			return nil
		case <-sup.Changed:
			snap := sup.Snapshot()
			st.write(snap, time.Time{})
			_, _ = daemon.SdNotify(false, "STATUS="+statusLine(snap))
		case <-tick.C:
			// The heartbeat and the watchdog go on only while every lease
			// loop makes progress: a hung holder gets fenced's restart.
			if !sup.Alive(3 * progressEvery) {
				if !stalled {
					log.Error("a lease holder is not making progress; heartbeat and watchdog stopped")
				}
				stalled = true
				continue
			}
			stalled = false
			st.write(sup.Snapshot(), time.Now())
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}

// prepareDirs creates the state directory and the track files'
// directories root-only if missing.
func prepareDirs(cfg *config.Config, log *slog.Logger) error {
	dirs := map[string]bool{cfg.StateDir: true}
	for _, in := range cfg.Instances {
		if in.TrackFile != "" {
			dirs[filepath.Dir(in.TrackFile)] = true
		}
	}
	for d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", d, err)
		}
		if err := trackfile.CheckDir(d); err != nil {
			log.Warn("track file directory is not root-only", "error", err)
		}
	}
	return nil
}

// startGuards runs the route guard and the keepalived reaper; the channel
// is closed when both have stopped.
func startGuards(ctx context.Context, cfg *config.Config, h *holder.Holder, sup *supervisor.Supervisor, m *supervisor.Metrics, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	events, err := guard.SubscribeAddrs(ctx, nil, func(err error) {
		if ctx.Err() == nil { // closing the subscription reports an error too
			log.Warn("address events", "error", err)
		}
	})
	if err != nil {
		log.Error("route guard: no address events; periodic checks only", "error", err)
	}
	routes := &guard.Routes{Events: events, Remover: h, Every: cfg.Fenced.ReconcileEvery, Log: log}
	if m != nil {
		routes.OnRemoved = func(_ hostnet.LocalRoute, w time.Duration) {
			if w > 0 {
				m.ObserveGuard(w)
			}
		}
	}
	reaper := &guard.Keepalived{
		PIDFile: cfg.Fenced.VRRPPIDFile, Every: cfg.Fenced.ReconcileEvery, Procs: guard.ProcFS{}, Log: log,
		Release: sup.ReleaseAll,
		OnStart: func(int) { sup.RewriteTracks(ctx) },
	}
	var defender *guard.Defender
	if cfg.Fenced.Defend {
		defender = newDefender(ctx, cfg, h, sup, log)
	}
	// Put fenced's value back the moment anyone else rewrites a track file
	// (keepalived does at every start: init_file 1 overwrite).
	var tracks []string
	for _, in := range cfg.Instances {
		if in.TrackFile != "" {
			tracks = append(tracks, in.TrackFile)
		}
	}
	if changed, err := guard.WatchFiles(ctx, tracks); err != nil {
		log.Error("track files are not watched; checked every reconcile_every", "error", err)
	} else {
		go func() {
			for range changed {
				sup.RewriteTracks(ctx)
			}
		}()
	}
	go func() {
		defer close(done)
		rdone, ddone := make(chan struct{}), make(chan struct{})
		go func() { defer close(rdone); _ = reaper.Run(ctx) }()
		go func() {
			defer close(ddone)
			if defender != nil {
				_ = defender.Run(ctx)
			}
		}()
		_ = routes.Run(ctx)
		<-rdone
		<-ddone
	}()
	return done
}

// newDefender listens for claims on every configured interface and answers
// those for VIPs held here with one announcement.
func newDefender(ctx context.Context, cfg *config.Config, h *holder.Holder, sup *supervisor.Supervisor, log *slog.Logger) *guard.Defender {
	claims := make(chan guard.Claim, 64)
	devs := map[string]bool{}
	var wg sync.WaitGroup
	for _, in := range cfg.Instances {
		if devs[in.Dev] {
			continue
		}
		devs[in.Dev] = true
		ch, err := guard.ListenClaims(ctx, in.Dev)
		if err != nil {
			log.Error("defender: cannot listen", "dev", in.Dev, "error", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				select {
				case claims <- c:
				default:
				}
			}
		}()
	}
	go func() { wg.Wait(); close(claims) }()
	return &guard.Defender{
		Claims: claims, Delay: cfg.Fenced.DefendDelay, Log: log,
		Guarded: func(a netip.Addr) (string, vip.VIP, bool) {
			for _, in := range sup.Config().Instances {
				for _, v := range in.VIPs {
					if v.Addr() == a {
						return in.Dev, v, true
					}
				}
			}
			return "", vip.VIP{}, false
		},
		Announce: func(ctx context.Context, dev string, v vip.VIP) (bool, error) {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			out, err := h.Announce(actx, holder.Request{Dev: dev, VIPs: []vip.VIP{v}, Schedule: announce.Schedule{Count: 1}})
			return len(out) == 1 && out[0].Result == holder.Applied, err
		},
	}
}

// linkSenders keeps one announcement sender per interface.
type linkSenders struct {
	mu sync.Mutex
	m  map[string]*announce.LinkSender
}

func (l *linkSenders) get(dev string) (announce.Sender, error) {
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

func (l *linkSenders) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.m {
		s.Close()
	}
}

// reload applies the configuration file again; false when it was refused.
func reload(ctx context.Context, c *cli.Context, sup *supervisor.Supervisor, log *slog.Logger) bool {
	if c.IsSet("endpoints") {
		log.Warn("SIGHUP ignored: running from flags, there is no file to reload")
		return false
	}
	cfg, err := loadRunConfig(c)
	if err != nil {
		log.Error("reload refused; the running configuration stays", "error", err)
		_, _ = daemon.SdNotify(false, "STATUS=reload refused: "+err.Error())
		return false
	}
	if cfg.Node == "" {
		cfg.Node = sup.Node
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReloading)
	if err := sup.Apply(ctx, cfg); err != nil {
		log.Error("reload: some clusters did not start", "error", err)
	}
	log.Info("configuration reloaded", "clusters", len(cfg.Clusters), "instances", len(cfg.Instances))
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+statusLine(sup.Snapshot()))
	return true
}

func statusLine(s supervisor.Snapshot) string {
	line := s.State
	for _, c := range s.Clusters {
		line += fmt.Sprintf("; %s: %s", c.Name, c.Lease.State)
		if c.Lease.LeaseID != 0 {
			line += fmt.Sprintf(" lease %x", int64(c.Lease.LeaseID))
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
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics served", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
