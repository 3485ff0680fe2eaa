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
	"github.com/vipkit/vipkit/pkg/lease"
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

	mu       sync.Mutex
	cfg      *config.Config
	clusters map[string]*cluster
	wg       sync.WaitGroup
}

// cluster is one running holder and the instances it fences.
type cluster struct {
	cfg    config.Cluster
	cancel context.CancelFunc
	done   chan struct{} // closed when the holder has stopped and the client is closed

	// mu orders fence actions: the holder's Fence and Unfence, and the
	// catch-up writes for instances added by a reload.
	mu      sync.Mutex
	fenced  bool
	members []fence.Instance
	act     Actuator
	log     *slog.Logger

	status       atomic.Pointer[lease.Status]
	lastProgress atomic.Int64
	holder       atomic.Pointer[lease.Holder]
	handed       atomic.Pointer[lease.HandedLease]
}

// Fence implements lease.Fencer for the cluster's instances.
func (c *cluster) Fence(ctx context.Context, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fenced = true
	return c.act.Fence(ctx, c.members, reason)
}

// Unfence implements lease.Fencer.
func (c *cluster) Unfence(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fenced = false
	return c.act.Unfence(c.members)
}

// setMembers replaces the instance list; the instances in fresh get the
// cluster's current state written (a released VIP and 1, or 0).
func (c *cluster) setMembers(ctx context.Context, ms, fresh []fence.Instance) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = ms
	if len(fresh) == 0 {
		return nil
	}
	if c.fenced {
		return c.act.Fence(ctx, fresh, "configured while fenced")
	}
	return c.act.Unfence(fresh)
}

// detach empties the instance list, so that the holder's last Fence (on
// stop) touches nothing that now belongs elsewhere.
func (c *cluster) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = nil
}

func (c *cluster) memberList() []fence.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members
}

func (c *cluster) isFenced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fenced
}

// ErrNoClusters means there is nothing to hold.
var ErrNoClusters = errors.New("no etcd cluster is configured")

// Apply makes the running state match cfg, touching only what differs
// from the configuration applied before. The first Apply starts
// everything: each instance is fenced (VIPs released, track file 1) before
// its holder starts, so keepalived stays in FAULT until a lease is held
// and the hold-down has passed (I5).
func (s *Supervisor) Apply(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusters == nil {
		s.clusters = map[string]*cluster{}
	}
	want := map[string][]fence.Instance{}
	for _, in := range cfg.Instances {
		if in.Cluster != "" {
			want[in.Cluster] = append(want[in.Cluster], toFence(in))
		}
	}
	var errs []error
	// Stop clusters that are gone or changed, detached first.
	for name, c := range s.clusters {
		ncl, ok := cfg.ClusterByName(name)
		if ok && reflect.DeepEqual(ncl, c.cfg) {
			continue
		}
		s.log().Info("stopping cluster", "cluster", name, "reason", map[bool]string{true: "changed", false: "removed"}[ok])
		c.detach()
		s.stop(c)
		delete(s.clusters, name)
	}
	// Update the instance lists of unchanged clusters.
	for name, c := range s.clusters {
		old := memberMap(c.memberList())
		var fresh []fence.Instance
		for _, in := range want[name] {
			if prev, ok := old[in.Name]; !ok || !reflect.DeepEqual(prev, in) {
				fresh = append(fresh, in)
			}
		}
		if err := c.setMembers(ctx, want[name], fresh); err != nil {
			errs = append(errs, err)
		}
		if len(fresh) > 0 {
			s.log().Info("instances added to a running cluster", "cluster", name, "instances", names(fresh))
		}
	}
	// Start new and changed clusters.
	for _, cl := range cfg.Clusters {
		if _, ok := s.clusters[cl.Name]; ok {
			continue
		}
		s.clusters[cl.Name] = s.start(ctx, cfg, cl, want[cl.Name])
	}
	s.cfg = cfg
	s.changed()
	return errors.Join(errs...)
}

func (s *Supervisor) start(ctx context.Context, cfg *config.Config, cl config.Cluster, members []fence.Instance) *cluster {
	c := &cluster{cfg: cl, act: s.Actuator, members: members, fenced: true, done: make(chan struct{}), log: s.log().With("cluster", cl.Name)}
	adopt, adopting := s.Adopt.For(cl)
	if adopting {
		// The predecessor left these instances unfenced under a lease whose
		// deadline the holder (and, until it runs, runCluster) enforces.
		c.fenced = false
		c.log.Info("adopting the lease of the previous fenced", "lease_id", fmt.Sprintf("%x", int64(adopt.LeaseID)))
	} else if err := s.Actuator.Fence(ctx, members, "starting"); err != nil {
		// Fail closed first: nothing of this cluster's may be held before
		// its lease is.
		c.log.Error("fence before start", "error", err)
	}
	node := cfg.Node
	if node == "" {
		node = s.Node
	}
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
			s.changed()
		},
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
		defer func() {
			select {
			case <-started:
			default:
				close(started)
			}
		}()
		guardDone := make(chan struct{})
		defer func() { <-guardDone }()
		go func() {
			defer close(guardDone)
			s.guardAdopted(ctx, c, *lcfg.Adopt, started)
		}()
		lcfg.OnRun = func() { close(started) }
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
		deadline := time.Now().Add(backoff)
		for time.Now().Before(deadline) {
			c.lastProgress.Store(int64(s.now()))
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(s.progressEvery(), time.Until(deadline))):
			}
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	// Closed before done is: no code acts through it once stop returned.
	defer func() {
		if err := closeCli(); err != nil {
			c.log.Debug("close etcd client", "error", err)
		}
	}()
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
func (s *Supervisor) Stop() {
	s.mu.Lock()
	cs := s.clusters
	s.clusters = map[string]*cluster{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(c) }()
	}
	wg.Wait()
	s.wg.Wait()
}

// Handoff stops every cluster like Stop, except that a holder that is
// Healthy hands its lease over (no fence, no revoke) instead: a planned
// restart. It returns the leases handed over; the other clusters fenced.
func (s *Supervisor) Handoff() []lease.HandedLease {
	s.mu.Lock()
	cs := s.clusters
	s.clusters = map[string]*cluster{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		if h := c.holder.Load(); h != nil {
			h.PrepareHandoff()
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(c) }()
	}
	wg.Wait()
	s.wg.Wait()
	var out []lease.HandedLease
	for _, c := range cs {
		if hl := c.handed.Load(); hl != nil {
			out = append(out, *hl)
		}
	}
	return out
}

// guardAdopted fences the cluster at the adopted deadline unless the
// holder started first (it enforces the deadline from then on).
func (s *Supervisor) guardAdopted(ctx context.Context, c *cluster, a lease.HandedLease, started <-chan struct{}) {
	clock := lease.SystemClock() // the clock the deadline is on
	timer, err := clock.NewTimer()
	if err != nil {
		c.log.Error("cannot arm the adopted deadline; fencing now", "error", err)
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
			if clock.Now() < a.Deadline {
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

// RewriteTracks puts every instance's current value back where the file
// says otherwise: keepalived overwrites its track files when it starts
// (init_file 1 overwrite). Files that are right are not touched (I8).
func (s *Supervisor) RewriteTracks(ctx context.Context) {
	s.mu.Lock()
	cs := make([]*cluster, 0, len(s.clusters))
	for _, c := range s.clusters {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		if err := c.act.Reassert(c.members, c.fenced); err != nil {
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
	return fence.Instance{Name: in.Name, Dev: in.Dev, VIPs: slices.Clone(in.VIPs), Own: in.Own, TrackFile: in.TrackFile}
}

func memberMap(ms []fence.Instance) map[string]fence.Instance {
	m := map[string]fence.Instance{}
	for _, in := range ms {
		m[in.Name] = in
	}
	return m
}

func names(ins []fence.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.Name
	}
	sort.Strings(out)
	return out
}
