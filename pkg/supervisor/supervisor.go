// Package supervisor is fenced's runtime: one lease holder per configured
// etcd cluster, each fencing the instances that name its cluster, plus the
// route guard and the keepalived reaper for every configured VIP.
//
// A reload (SIGHUP) changes only what changed (F5, I8): a cluster whose
// settings are unchanged keeps its client, its lease and its state, and an
// instance that is unchanged keeps its track file untouched. A removed or
// changed cluster is detached from its instances before it is stopped, so
// nothing ever acts through a client of a cluster that is gone.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/witness"
)

// Actuator fences and unfences instances (fence.Actuator).
type Actuator interface {
	Fence(ctx context.Context, ins []fence.Instance, reason string) error
	Unfence(ins []fence.Instance) error
	Release(ctx context.Context, ins []fence.Instance) error
	Reassert(ins []fence.Instance, fenced bool) error
}

// Dialer makes the etcd client of a cluster; close releases it.
type Dialer func(ctx context.Context, cl config.Cluster) (cli lease.Client, close func() error, err error)

// Supervisor runs the clusters of one configuration at a time.
type Supervisor struct {
	Node     string
	Version  string
	Actuator Actuator
	Dial     Dialer
	Log      *slog.Logger
	// ProgressEvery is how often each holder must show progress; the
	// heartbeat (and the systemd watchdog) stops when one does not.
	ProgressEvery time.Duration
	// Changed is signalled (without blocking) whenever a status changes.
	Changed chan struct{}
	// Clock is CLOCK_BOOTTIME, for progress ages.
	Clock func() time.Duration
	// Adopt is what the previous fenced handed over on a planned restart:
	// the first Apply starts a matching cluster unfenced with its lease
	// (lease.Config.Adopt) instead of fencing it first.
	Adopt lease.Handoff
	// Observe, when set, samples the host for the fleet view: each
	// cluster then publishes this node's view under its lease and records
	// every node's (fleet.go).
	Observe Observer
	// OnFence, when set, is told how long each fence of all a cluster's
	// instances took; OnRenew the round trip of each acknowledged renewal
	// (metrics). Neither may block.
	OnFence func(cluster string, took time.Duration)
	OnRenew func(cluster string, latency, margin time.Duration)

	applyMu sync.Mutex
	fencing atomic.Int32    // fences in progress (Fencing)
	kaGone  atomic.Bool     // keepalived's VRRP process exited (SetKeepalived)
	maint   map[string]bool // witnessed instances in maintenance here (SetMaintenance), under mu
	// handovers are the answers to vipctl handover's requests, by
	// instance (Handover), under mu.
	handovers map[string]fencedstate.Handover
	mu        sync.Mutex
	cfg       *config.Config
	clusters  map[string]*cluster
	wg        sync.WaitGroup
}

// cluster is one running holder and the instances it fences.
type cluster struct {
	cfg    config.Cluster
	cancel context.CancelFunc
	done   chan struct{} // closed when the holder has stopped and the client is closed

	// mu orders fence actions: the holder's Fence and Unfence, and the
	// catch-up writes for instances added by a reload. fenced and members
	// change only under it, but are read without it, so that a status
	// snapshot never waits behind a fence in progress.
	mu      sync.Mutex
	fenced  atomic.Bool
	members atomic.Pointer[[]fence.Instance]
	act     Actuator
	log     *slog.Logger

	status       atomic.Pointer[lease.Status]
	servers      atomic.Pointer[[]fencedstate.Server]
	lastProgress atomic.Int64
	// fenceTook is how long the last fence of all the cluster's instances
	// took (ns): what the margin must cover, with room to spare.
	fenceTook atomic.Int64
	// fencing counts the fences in progress in the whole runtime.
	fencing *atomic.Int32
	onFence func(cluster string, took time.Duration)

	holder atomic.Pointer[lease.Holder]
	handed atomic.Pointer[lease.HandedLease] // set when the holder handed its lease over

	fleet fleetRecord

	// The witness (witness.go): the witnessed instances by name, and the
	// session of the current lease (sess and sessCancel under mu).
	node       string
	wit        atomic.Pointer[map[string]witness.Instance]
	kv         witness.KV // set once the client exists, under mu
	sess       *witness.Session
	sessCancel context.CancelFunc
	sessWG     sync.WaitGroup
	kaGone     *atomic.Bool
	maintOf    func(instance string) bool
}

// Fence implements lease.Fencer for the cluster's instances: all of them in
// one pass.
func (c *cluster) Fence(ctx context.Context, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fenced.Store(true)
	c.stopSession()
	return c.fence(ctx, c.memberList(), reason)
}

// fence runs one pass over ins and measures it. Without a deadline from the
// lease (start, reload) the pass gets the margin, the time a lease's fence
// has too, so that a wedged vipctl costs a fence the same bounded wait
// everywhere.
func (c *cluster) fence(ctx context.Context, ins []fence.Instance, reason string) error {
	if _, ok := ctx.Deadline(); !ok && c.cfg.Margin > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Margin)
		defer cancel()
	}
	if c.fencing != nil {
		c.fencing.Add(1)
		defer c.fencing.Add(-1)
	}
	start := time.Now()
	err := c.act.Fence(ctx, ins, reason)
	if len(ins) == len(c.memberList()) {
		took := time.Since(start)
		c.fenceTook.Store(int64(took))
		if c.onFence != nil {
			c.onFence(c.cfg.Name, took)
		}
	}
	return err
}

// Unfence implements lease.Fencer.
func (c *cluster) Unfence(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fenced.Store(false)
	// Witnessed instances get OK from their witness session only.
	return c.act.Unfence(c.plain(c.memberList()))
}

// setMembers replaces the instance list; the instances in fresh get the
// cluster's current state written (a released VIP and 1, or 0).
func (c *cluster) setMembers(ctx context.Context, ms, fresh []fence.Instance, w map[string]witness.Instance) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members.Store(&ms)
	old := c.witnessed()
	for _, in := range ms {
		// An instance that became witnessed, or stopped being, is written
		// again like a new one.
		_, was := old[in.Instance]
		_, is := w[in.Instance]
		if was != is && !slices.ContainsFunc(fresh, func(f fence.Instance) bool { return f.Instance == in.Instance }) {
			fresh = append(fresh, in)
		}
	}
	c.setWitnessed(w)
	if len(fresh) == 0 {
		return nil
	}
	if c.fenced.Load() {
		return c.fence(ctx, fresh, "configured while fenced")
	}
	var errs []error
	if ws := witnessedOf(fresh, w); len(ws) > 0 {
		// FAULT until the session claims them.
		errs = append(errs, c.fence(ctx, ws, "witnessed: waits for the owner key"))
	}
	return errors.Join(append(errs, c.act.Unfence(c.plain(fresh)))...)
}

func witnessedOf(ins []fence.Instance, w map[string]witness.Instance) []fence.Instance {
	var out []fence.Instance
	for _, in := range ins {
		if _, ok := w[in.Instance]; ok {
			out = append(out, in)
		}
	}
	return out
}

// detach empties the instance list, so that the holder's last Fence (on
// stop) touches nothing that now belongs elsewhere.
func (c *cluster) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members.Store(nil)
}

func (c *cluster) memberList() []fence.Instance {
	if p := c.members.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *cluster) isFenced() bool { return c.fenced.Load() }

// Fencing reports whether a fence is in progress. What would compete with
// it for vipctl's lock without need, the defender answering claims for
// VIPs about to go, steps aside meanwhile: under a storm of claims (both
// nodes announcing during an election) it took the lock once per VIP and
// the fence had to wait out its whole lock budget.
func (s *Supervisor) Fencing() bool { return s.fencing.Load() > 0 }

// ErrNoClusters means there is nothing to hold.
var ErrNoClusters = errors.New("no etcd cluster is configured")

// Apply makes the running state match cfg, touching only what differs
// from the configuration applied before. The first Apply starts
// everything: each instance is fenced (VIPs released, track file 1) before
// its holder starts, so keepalived stays in FAULT until a lease is held
// and the hold-down has passed (I5).
func (s *Supervisor) Apply(ctx context.Context, cfg *config.Config) error {
	// applyMu orders reloads; mu is held only for moments, so that the
	// heartbeat (Alive) and the state file (Snapshot) go on while a changed
	// cluster stops or a new one fences before it starts.
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	want := map[string][]fence.Instance{}
	wantWit := map[string]map[string]witness.Instance{}
	for _, in := range cfg.Instances {
		if in.Cluster != "" {
			want[in.Cluster] = append(want[in.Cluster], toFence(in))
		}
		if in.Witness {
			if wantWit[in.Cluster] == nil {
				wantWit[in.Cluster] = map[string]witness.Instance{}
			}
			wantWit[in.Cluster][in.Name] = toWitness(in)
		}
	}
	s.mu.Lock()
	if s.clusters == nil {
		s.clusters = map[string]*cluster{}
	}
	var stopping []*cluster
	kept := map[string]*cluster{}
	for name, c := range s.clusters {
		ncl, ok := cfg.ClusterByName(name)
		if ok && reflect.DeepEqual(ncl, c.cfg) {
			kept[name] = c
			continue
		}
		s.log().Info("stopping cluster", "cluster", name, "reason", map[bool]string{true: "changed", false: "removed"}[ok])
		// Detached first: nothing of this cluster's acts on an instance
		// that now belongs elsewhere.
		c.detach()
		stopping = append(stopping, c)
		delete(s.clusters, name)
	}
	s.mu.Unlock()
	for _, c := range stopping {
		s.stop(c)
	}
	var errs []error
	// Update the instance lists of unchanged clusters.
	for name, c := range kept {
		old := memberMap(c.memberList())
		var fresh []fence.Instance
		for _, in := range want[name] {
			if prev, ok := old[in.Instance]; !ok || !reflect.DeepEqual(prev, in) {
				fresh = append(fresh, in)
			}
		}
		if err := c.setMembers(ctx, want[name], fresh, wantWit[name]); err != nil {
			errs = append(errs, err)
		}
		if len(fresh) > 0 {
			s.log().Info("instances added to a running cluster", "cluster", name, "instances", names(fresh))
		}
	}
	// Start new and changed clusters.
	for _, cl := range cfg.Clusters {
		if _, ok := kept[cl.Name]; ok {
			continue
		}
		c := s.start(ctx, cfg, cl, want[cl.Name], wantWit[cl.Name])
		s.mu.Lock()
		s.clusters[cl.Name] = c
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.changed()
	return errors.Join(errs...)
}

func (s *Supervisor) start(ctx context.Context, cfg *config.Config, cl config.Cluster, members []fence.Instance, wit map[string]witness.Instance) *cluster {
	c := &cluster{cfg: cl, act: s.Actuator, done: make(chan struct{}), log: s.log().With("cluster", cl.Name), fencing: &s.fencing, onFence: s.OnFence, kaGone: &s.kaGone, maintOf: s.inMaintenance}
	c.members.Store(&members)
	c.wit.Store(&wit)
	adopt, adopting := s.Adopt.For(cl)
	c.fenced.Store(!adopting)
	if adopting {
		// The predecessor left these instances unfenced under a lease whose
		// deadline the holder (and, until it runs, runCluster) enforces.
		c.log.Info("adopting the lease of the previous fenced", "lease_id", fmt.Sprintf("%x", int64(adopt.LeaseID)))
	} else if err := c.fence(ctx, members, "starting"); err != nil {
		// Fail closed first: nothing of this cluster's may be held before
		// its lease is.
		c.log.Error("fence before start", "error", err)
	}
	node := cfg.Node
	if node == "" {
		node = s.Node
	}
	c.node = node
	lcfg := lease.Config{
		Cluster:       cl,
		Node:          node,
		Version:       s.Version,
		Logger:        s.log(), // the holder adds the cluster itself
		ProgressEvery: s.ProgressEvery,
		RevokeOnStop:  true,
		KeepOnStop:    cfg.Fenced.OnStop == "keep",
		OnChange: func(st lease.Status) {
			c.status.Store(&st)
			c.onStatus(st)
			s.changed()
		},
	}
	lcfg.OnRenew = func(d time.Duration) {
		if s.OnRenew != nil {
			s.OnRenew(cl.Name, d, cl.Margin)
		}
		// The state file records the new deadline (fencedstate.LeasesValid).
		s.changed()
	}
	if adopting {
		lcfg.Adopt = &adopt
	}
	st := lease.Status{State: lease.Starting}
	c.status.Store(&st)
	c.lastProgress.Store(int64(s.now()))
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(c.done)
		s.runCluster(hctx, c, lcfg)
	}()
	c.log.Info("cluster started", "endpoints", cl.Endpoints, "ttl", cl.TTL.String(), "margin", cl.Margin.String(), "instances", names(members))
	return c
}

// runCluster makes the cluster's client and runs its holder until ctx
// ends. A client that cannot be made (with user and password, clientv3
// needs etcd up to log in) is retried: the instances stay fenced meanwhile,
// and the loop keeps showing progress, because an etcd outage must not get
// fenced restarted by its watchdog.
func (s *Supervisor) runCluster(ctx context.Context, c *cluster, lcfg lease.Config) {
	if lcfg.Adopt != nil {
		// Until the holder runs (the client may take a while), the adopted
		// deadline is enforced here.
		started := make(chan struct{})
		var once sync.Once
		var ran atomic.Bool
		markStarted := func() { once.Do(func() { close(started) }) }
		guardDone := make(chan struct{})
		go func() {
			defer close(guardDone)
			s.guardAdopted(ctx, c, *lcfg.Adopt, started)
		}()
		defer func() {
			markStarted()
			<-guardDone
			// The holder never ran (stopped while dialling, or it could not
			// be made): nobody renews the adopted lease, so the instances
			// it covered are fenced now, not at its deadline (I5).
			if !ran.Load() && !(ctx.Err() != nil && lcfg.KeepOnStop) {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(c.cfg.Margin, time.Second))
				if err := c.Fence(fctx, "adopted lease: the lease holder never ran"); err != nil {
					c.log.Error("fence the adopted instances: "+err.Error(), "error", err)
				}
				cancel()
			}
		}()
		lcfg.OnRun = func() { ran.Store(true); markStarted() }
	}
	var cli lease.Client
	var closeCli func() error
	backoff := time.Second
	for {
		var err error
		cli, closeCli, err = s.Dial(ctx, c.cfg)
		if err == nil {
			break
		}
		c.log.Warn("cannot create the etcd client; retrying", "error", err, "in", backoff.String())
		if !s.waitShowingProgress(ctx, c, backoff) {
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	// Closed before done is: no code acts through it once stop returned.
	defer func() {
		if err := closeCli(); err != nil {
			c.log.Debug("close etcd client", "error", err)
		}
	}()
	if kv, ok := cli.(witness.KV); ok {
		c.mu.Lock()
		c.kv = kv
		c.mu.Unlock()
	}
	// The witness session stops before the client closes.
	defer func() {
		c.mu.Lock()
		c.stopSession()
		c.mu.Unlock()
		c.sessWG.Wait()
	}()
	if c.cfg.StrictEtcdVersion {
		for !s.checkServers(ctx, c, cli) {
			c.log.Error("strict_etcd_version: the cluster's instances stay fenced until every member runs a release without known lease bugs", "recheck_in", serverRecheck.String())
			if !s.waitShowingProgress(ctx, c, serverRecheck) {
				return
			}
		}
	} else {
		// Only reported: the holder does not wait for it (an adopted
		// lease's deadline keeps running meanwhile).
		sdone := make(chan struct{})
		go func() { defer close(sdone); s.checkServers(ctx, c, cli) }()
		defer func() { <-sdone }()
	}
	h, err := lease.New(cli, c, lcfg)
	if err != nil {
		c.log.Error("cannot start the lease holder; the cluster's instances stay fenced", "error", err)
		return
	}
	c.holder.Store(h)
	defer func() {
		if hl, ok := h.Handed(); ok {
			c.handed.Store(&hl)
		}
	}()
	// The fleet view rides on the holder's lease and client; it stops
	// before the client is closed.
	fdone := make(chan struct{})
	defer func() { <-fdone }()
	go func() { defer close(fdone); s.runFleet(ctx, c, cli, h, lcfg.Node) }()
	hdone := make(chan struct{})
	defer func() { <-hdone }()
	go func() {
		defer close(hdone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.Progress():
				c.lastProgress.Store(int64(s.now()))
			}
		}
	}()
	if err := h.Run(ctx); err != nil && ctx.Err() == nil {
		c.log.Error("lease holder stopped", "error", err)
	}
}

func (s *Supervisor) progressEvery() time.Duration {
	if s.ProgressEvery > 0 {
		return s.ProgressEvery
	}
	return time.Second
}

// stop cancels a cluster's holder and waits until it has stopped and its
// client is closed.
func (s *Supervisor) stop(c *cluster) {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(c.cfg.TTL + c.cfg.RequestTimeout):
		c.log.Error("lease holder did not stop in time")
	}
}

// Stop stops every cluster (each holder fences on stop unless on_stop is
// keep, and revokes its lease) and waits for them.
func (s *Supervisor) Stop() { s.stopAll(false) }

// Handoff stops every cluster like Stop, except that a holder that is
// Healthy hands its lease over (no fence, no revoke) instead: a planned
// restart. It returns the leases handed over; the other clusters fenced.
func (s *Supervisor) Handoff() []lease.HandedLease {
	var out []lease.HandedLease
	for _, c := range s.stopAll(true) {
		if hl := c.handed.Load(); hl != nil {
			out = append(out, *hl)
		}
	}
	return out
}

// stopAll stops every cluster at once, each holder first told to hand its
// lease over when handOver is set, and returns them once all have stopped.
func (s *Supervisor) stopAll(handOver bool) map[string]*cluster {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	cs := s.clusters
	s.clusters = map[string]*cluster{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	if !handOver && (s.cfg == nil || s.cfg.Fenced.OnStop != "keep") {
		// A planned stop hands witnessed instances to their successors
		// first: zero overlap, and faster than waiting out the lease.
		for _, c := range cs {
			wg.Add(1)
			go func() { defer wg.Done(); c.drainSession(max(c.cfg.RequestTimeout, time.Second)) }()
		}
		wg.Wait()
	}
	for _, c := range cs {
		if h := c.holder.Load(); h != nil && handOver {
			h.PrepareHandoff()
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(c) }()
	}
	wg.Wait()
	s.wg.Wait()
	return cs
}

// guardAdopted fences the cluster at the adopted deadline unless the
// holder started first (it enforces the deadline from then on).
func (s *Supervisor) guardAdopted(ctx context.Context, c *cluster, a lease.HandedLease, started <-chan struct{}) {
	clk := lease.SystemClock() // the clock the deadline is on: CLOCK_BOOTTIME (pkg/clock) with a timerfd
	timer, err := clk.NewTimer()
	if err != nil {
		c.log.Error("cannot arm the adopted deadline; fencing now: "+err.Error(), "error", err)
		_ = c.Fence(context.WithoutCancel(ctx), "adopted lease: no timer")
		return
	}
	defer timer.Close()
	timer.Reset(a.Deadline)
	for {
		select {
		case <-started:
			return
		case <-timer.C():
			if clk.Now() < a.Deadline {
				timer.Reset(a.Deadline) // a spurious wake-up
				continue
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			err := c.Fence(fctx, "adopted lease: deadline passed before the lease holder started")
			cancel()
			c.log.Warn("adopted lease's deadline passed before the holder started; fenced", "error", err)
			return
		}
	}
}

// Alive reports whether every holder showed progress within maxAge: the
// condition for the heartbeat and the systemd watchdog.
func (s *Supervisor) Alive(maxAge time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, c := range s.clusters {
		if now-time.Duration(c.lastProgress.Load()) > maxAge {
			return false
		}
	}
	return true
}

// clusterList is the running clusters, for work done without s.mu;
// s.mu must be held.
func (s *Supervisor) clusterList() []*cluster {
	cs := make([]*cluster, 0, len(s.clusters))
	for _, c := range s.clusters {
		cs = append(cs, c)
	}
	return cs
}

// RewriteTracks puts every instance's current value back where the file
// says otherwise: keepalived overwrites its track files when it starts
// (init_file 1 overwrite). Files that are right are not touched (I8).
func (s *Supervisor) RewriteTracks(ctx context.Context) {
	s.mu.Lock()
	cs := s.clusterList()
	s.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		if err := c.reassert(); err != nil {
			c.log.Error("rewrite track files", "error", err)
		}
		c.mu.Unlock()
	}
}

// ReleaseAll removes every configured VIP (the reaper's action).
func (s *Supervisor) ReleaseAll(ctx context.Context) error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if cfg == nil {
		return nil
	}
	var ins []fence.Instance
	for _, in := range cfg.Instances {
		ins = append(ins, toFence(in))
	}
	return s.Actuator.Release(ctx, ins)
}

// Config is the configuration applied last.
func (s *Supervisor) Config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

func (s *Supervisor) changed() {
	if s.Changed == nil {
		return
	}
	select {
	case s.Changed <- struct{}{}:
	default:
	}
}

func (s *Supervisor) now() time.Duration {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Duration(time.Now().UnixNano())
}

func (s *Supervisor) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func toFence(in config.Instance) fence.Instance {
	return fence.Instance{Target: in.Target(), TrackFile: in.TrackFile}
}

func memberMap(ms []fence.Instance) map[string]fence.Instance {
	m := map[string]fence.Instance{}
	for _, in := range ms {
		m[in.Instance] = in
	}
	return m
}

func names(ins []fence.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.Instance
	}
	sort.Strings(out)
	return out
}
