package lease_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/lease/leasetest"
	"github.com/vipkit/vipkit/test/etcdtest"
)

// Integration tests run the holder against a real etcd (test/etcdtest) with
// the default timings: TTL 5s, margin 1.5s, renewal every TTL/3.

var boottime = lease.SystemClock()

type liveHolder struct {
	h      *lease.Holder
	fencer *leasetest.Fencer
	cli    *clientv3.Client
	stop   func()
}

func defaultCluster(endpoints []string) config.Cluster {
	return config.Cluster{Name: "it", Endpoints: endpoints, Prefix: "/vipkit-it", TTL: config.DefaultTTL, Margin: config.DefaultMargin, HoldDown: 500 * time.Millisecond}
}

// startLive runs a holder with its own client (cfg) until stop or cleanup.
func startLive(t *testing.T, cfg clientv3.Config, cl config.Cluster, node string, edit func(*lease.Config)) *liveHolder {
	t.Helper()
	cfg.Logger = zap.NewNop()
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Errorf("etcd client for %v: %v", cfg.Endpoints, err)
		return nil
	}
	f := leasetest.NewFencer(boottime)
	lc := lease.Config{
		Cluster: cl,
		Node:    node,
		Version: "integration",
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if edit != nil {
		edit(&lc)
	}
	h, err := lease.New(cli, f, lc)
	if err != nil {
		cli.Close()
		t.Errorf("new holder: %v", err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("holder %s: Run: %v", node, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("holder %s: Run did not return after cancel", node)
			}
			cli.Close()
		})
	}
	t.Cleanup(stop)
	return &liveHolder{h: h, fencer: f, cli: cli, stop: stop}
}

// waitState polls until the holder is in state; false (and an error) after
// timeout.
func (l *liveHolder) waitState(t *testing.T, s lease.State, timeout time.Duration) bool {
	t.Helper()
	return l.waitFor(t, s.String(), timeout, func(st lease.Status) bool { return st.State == s })
}

func (l *liveHolder) waitFor(t *testing.T, what string, timeout time.Duration, cond func(lease.Status) bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(l.h.Status()) {
		if time.Now().After(deadline) {
			t.Errorf("holder not %s within %s: %+v", what, timeout, l.h.Status())
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// nextFence waits for the next Fence (not Unfence) call.
func (l *liveHolder) nextFence(t *testing.T, timeout time.Duration) (leasetest.FenceCall, bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case c := <-l.fencer.Calls:
			if !c.Unfence {
				return c, true
			}
		case <-deadline:
			t.Errorf("no fence within %s: %+v", timeout, l.h.Status())
			return leasetest.FenceCall{}, false
		}
	}
}

// fenceRecorded waits for the holder to record the fence whose call was
// seen: it measures the lead after Fence returns.
func (l *liveHolder) fenceRecorded(t *testing.T) bool {
	t.Helper()
	return l.waitFor(t, "done fencing", 5*time.Second, func(s lease.Status) bool { return s.LastFenceAt != 0 })
}

func (l *liveHolder) fences() int {
	n := 0
	for _, c := range l.fencer.Log() {
		if !c.Unfence {
			n++
		}
	}
	return n
}

// deletion watches key from a direct client and reports, on CLOCK_BOOTTIME,
// when the server deleted it.
func deletion(t *testing.T, cli *clientv3.Client, key string) <-chan time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
	defer gcancel()
	g, err := cli.Get(gctx, key)
	if err != nil || len(g.Kvs) != 1 {
		t.Errorf("get %s: %v %v", key, g, err)
		return nil
	}
	out := make(chan time.Duration, 1)
	wch := cli.Watch(ctx, key, clientv3.WithRev(g.Kvs[0].ModRevision+1))
	go func() { // ends with the watch: at the deletion or in cleanup
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					out <- boottime.Now()
					cancel()
					return
				}
			}
		}
	}()
	return out
}

func wait[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) (T, bool) {
	t.Helper()
	select {
	case v := <-ch:
		return v, true
	case <-time.After(timeout):
		t.Errorf("no %s within %s", what, timeout)
		var zero T
		return zero, false
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type trial struct {
	ok          bool
	lead        time.Duration // earliest possible server expiry - Fence returned
	serverAfter time.Duration // observed deletion - Fence returned
}

// TestIntegrationFenceBeforeServerExpiry is I4 over many partitions: the
// holder's proxy black-holes at a random phase of the renewal cycle; Fence
// must return strictly before the earliest time the server could expire the
// lease (send time of the last acknowledged renewal + TTL), and the server's
// deletion, seen by a direct client, must come after Fence.
func TestIntegrationFenceBeforeServerExpiry(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := srv.Client(t)
	const trials, parallel = 24, 8
	results := make([]trial, trials)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range trials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = fenceTrial(t, srv, direct, i)
		}()
	}
	wg.Wait()

	var leads, after []time.Duration
	for _, r := range results {
		if r.ok {
			leads = append(leads, r.lead)
			after = append(after, r.serverAfter)
		}
	}
	if len(leads) < trials {
		t.Errorf("%d of %d trials completed", len(leads), trials)
	}
	if len(leads) == 0 {
		return
	}
	t.Logf("fence-lead-ms min=%.1f median=%.1f max=%.1f n=%d (ttl %s, margin %s)",
		ms(slices.Min(leads)), ms(median(leads)), ms(slices.Max(leads)), len(leads), config.DefaultTTL, config.DefaultMargin)
	t.Logf("server-delete-after-fence-ms min=%.1f median=%.1f max=%.1f n=%d",
		ms(slices.Min(after)), ms(median(after)), ms(slices.Max(after)), len(after))
}

func fenceTrial(t *testing.T, srv *etcdtest.Server, direct *clientv3.Client, i int) trial {
	p := etcdtest.NewProxy(t, srv.Endpoints()...)
	defer p.Close()
	l := startLive(t, clientv3.Config{Endpoints: p.Endpoints(), DialTimeout: 5 * time.Second}, defaultCluster(p.Endpoints()), fmt.Sprintf("i4-%02d", i), nil)
	if l == nil || !l.waitState(t, lease.Healthy, 20*time.Second) {
		return trial{}
	}
	defer l.stop()
	deleted := deletion(t, direct, l.h.Key())
	// A random phase of the renewal cycle: after a renewal, within RenewEvery.
	n := l.h.Status().RenewalsOK
	if !l.waitFor(t, "renewed", 10*time.Second, func(s lease.Status) bool { return s.RenewalsOK > n }) {
		return trial{}
	}
	time.Sleep(rand.N(config.DefaultTTL / 3))
	p.Blackhole()
	cut := boottime.Now()

	fc, ok := l.nextFence(t, config.DefaultTTL+5*time.Second)
	if !ok || !l.fenceRecorded(t) {
		return trial{}
	}
	st := l.h.Status()
	expiry := st.LastFenceAt + st.LastFenceLead // last acked send + TTL, as the holder computed it
	gone, ok := wait(t, deleted, config.DefaultTTL+10*time.Second, "server deletion of "+l.h.Key())
	if !ok {
		return trial{}
	}
	if st.LastFenceReason != lease.ReasonDeadline {
		t.Errorf("trial %d: fence reason %q, want %q", i, st.LastFenceReason, lease.ReasonDeadline)
	}
	if fc.At >= expiry || st.LastFenceLead <= 0 {
		t.Errorf("trial %d: I4 violated: Fence returned at %s, earliest server expiry %s (lead %s)", i, fc.At, expiry, st.LastFenceLead)
	}
	if fc.At >= gone {
		t.Errorf("trial %d: I4 violated: the server deleted the key at %s, before Fence returned at %s", i, gone, fc.At)
	}
	if gone < expiry {
		t.Errorf("trial %d: the server deleted the key at %s, before the bound %s the holder relies on", i, gone, expiry)
	}
	t.Logf("trial %d: black hole at +0, fence at +%.0fms, bound at +%.0fms, server deletion at +%.0fms", i, ms(fc.At-cut), ms(expiry-cut), ms(gone-cut))
	return trial{ok: true, lead: expiry - fc.At, serverAfter: gone - fc.At}
}

// etcd down at start: the holder stays Starting and fenced without
// crashing, and unfences once etcd is up.
func TestIntegrationEtcdDownAtStart(t *testing.T) {
	srv := etcdtest.Start(t)
	m := srv.Member(0)
	m.Stop(t)
	l := startLive(t, clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 2 * time.Second}, defaultCluster(srv.Endpoints()), "down", nil)
	if l == nil {
		return
	}
	time.Sleep(3 * time.Second) // a few grant attempts
	if s := l.h.Status(); s.State != lease.Starting || s.LeaseID != 0 || len(l.fencer.Log()) != 0 {
		t.Fatalf("with etcd down: status %+v, fencer calls %+v; want starting, no lease, no calls", s, l.fencer.Log())
	}
	m.Restart(t)
	up := boottime.Now()
	if !l.waitState(t, lease.Healthy, 60*time.Second) {
		return
	}
	if log := l.fencer.Log(); len(log) != 1 || !log[0].Unfence {
		t.Fatalf("fencer calls %+v, want one Unfence", log)
	}
	t.Logf("etcd-down-at-start: healthy %.0fms after etcd restarted", ms(boottime.Now()-up))
}

// A lease revoked by someone else fences at once through the member-key
// watch (or a renewal answered "not found"), not at the local deadline.
func TestIntegrationRevokedElsewhere(t *testing.T) {
	srv := etcdtest.Start(t)
	l := startLive(t, clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 2 * time.Second}, defaultCluster(srv.Endpoints()), "revoked", nil)
	if l == nil || !l.waitState(t, lease.Healthy, 20*time.Second) {
		return
	}
	id := l.h.Status().LeaseID
	other := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	revoked := boottime.Now()
	if _, err := other.Revoke(ctx, id); err != nil {
		t.Fatalf("revoke %x: %v", id, err)
	}
	fc, ok := l.nextFence(t, config.DefaultTTL)
	if !ok || !l.fenceRecorded(t) {
		return
	}
	st := l.h.Status()
	if st.LastFenceReason != lease.ReasonKeyDeleted && st.LastFenceReason != lease.ReasonLeaseNotFound {
		t.Fatalf("fence reason %q, want key-deleted or lease-not-found", st.LastFenceReason)
	}
	t.Logf("revoke-to-fence-ms=%.1f reason=%s", ms(fc.At-revoked), st.LastFenceReason)
	// A new lease, a new hold-down, healthy again.
	if l.waitState(t, lease.Healthy, 20*time.Second) && l.h.Status().LeaseID == id {
		t.Fatalf("healthy again with the revoked lease %x", id)
	}
}

// A 3-member cluster loses its leader: renewals go on through the others
// within the margin, and the holder does not fence.
func TestIntegrationLeaderLoss(t *testing.T) {
	srv := etcdtest.StartCluster(t, 3)
	l := startLive(t, clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 2 * time.Second}, defaultCluster(srv.Endpoints()), "leaderloss", nil)
	if l == nil || !l.waitState(t, lease.Healthy, 20*time.Second) {
		return
	}
	leader := srv.Leader(t)
	// Kill half-way through a renewal cycle: the next renewal falls into the
	// election (1-2s with etcd's defaults), which still ends within the
	// 3.5s of validity a renewal buys. Killed just before a renewal, a 2s
	// election would outlast it and the fence would be right.
	n := l.h.Status().RenewalsOK
	if !l.waitFor(t, "renewed", 10*time.Second, func(s lease.Status) bool { return s.RenewalsOK > n }) {
		return
	}
	time.Sleep(config.DefaultTTL / 3 / 2)
	srv.Member(leader).Kill(t)
	killed := boottime.Now()
	before := l.h.Status().RenewalsOK
	minValid := config.DefaultTTL
	for boottime.Now()-killed < 2*config.DefaultTTL {
		s := l.h.Status()
		if s.State != lease.Healthy {
			t.Fatalf("false fence after the leader was killed: %+v", s)
		}
		minValid = min(minValid, s.ValidFor)
		time.Sleep(20 * time.Millisecond)
	}
	s := l.h.Status()
	if n := l.fences(); n != 0 || s.RenewalsOK < before+3 {
		t.Fatalf("after killing leader m%d: %d fences, %d renewals (before %d); want none, at least 3 more", leader, n, s.RenewalsOK, before)
	}
	t.Logf("leader-loss: killed m%d, %d renewals in %s, %d failed, least validity left %.0fms, new leader m%d",
		leader, s.RenewalsOK-before, 2*config.DefaultTTL, s.RenewalsFailed, ms(minValid), srv.Leader(t))
}

// A slow etcd: round trips close to but below the margin cause no fence;
// above it (and above the request timeout) the holder fences before expiry.
func TestIntegrationSlowEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := srv.Client(t)
	t.Run("below margin", func(t *testing.T) {
		p := etcdtest.NewProxy(t, srv.Endpoints()...)
		l := startLive(t, clientv3.Config{Endpoints: p.Endpoints(), DialTimeout: 2 * time.Second}, defaultCluster(p.Endpoints()), "slow-ok", nil)
		if l == nil || !l.waitState(t, lease.Healthy, 20*time.Second) {
			return
		}
		p.Delay(600*time.Millisecond, 600*time.Millisecond) // round trip 1.2s, margin 1.5s
		before := l.h.Status().RenewalsOK
		var lat []time.Duration
		for end := boottime.Now() + 2*config.DefaultTTL; boottime.Now() < end; time.Sleep(20 * time.Millisecond) {
			s := l.h.Status()
			if s.State != lease.Healthy {
				t.Fatalf("fenced with a round trip below the margin: %+v", s)
			}
			if s.RenewalsOK > before+uint64(len(lat)) {
				lat = append(lat, s.LastRenewLatency)
			}
		}
		if len(lat) < 3 {
			t.Fatalf("%d renewals in %s, want at least 3", len(lat), 2*config.DefaultTTL)
		}
		t.Logf("slow-etcd below margin: renew latency median %.0fms over %d renewals, no fence", ms(median(lat)), len(lat))
	})
	t.Run("above margin", func(t *testing.T) {
		p := etcdtest.NewProxy(t, srv.Endpoints()...)
		l := startLive(t, clientv3.Config{Endpoints: p.Endpoints(), DialTimeout: 2 * time.Second}, defaultCluster(p.Endpoints()), "slow-fence", nil)
		if l == nil || !l.waitState(t, lease.Healthy, 20*time.Second) {
			return
		}
		deleted := deletion(t, direct, l.h.Key())
		p.Delay(time.Second, time.Second) // round trip 2s: beyond margin and request timeout
		fc, ok := l.nextFence(t, 2*config.DefaultTTL)
		if !ok || !l.fenceRecorded(t) {
			return
		}
		st := l.h.Status()
		if st.LastFenceLead <= 0 {
			t.Fatalf("fence lead %s: not before the earliest server expiry", st.LastFenceLead)
		}
		if gone, ok := wait(t, deleted, 3*config.DefaultTTL, "server deletion"); ok && gone <= fc.At {
			t.Fatalf("server deleted the key at %s, before Fence returned at %s", gone, fc.At)
		}
		t.Logf("slow-etcd above margin: fenced (%s) with lead %.0fms", st.LastFenceReason, ms(st.LastFenceLead))
	})
}

// checkHolds: the holder becomes healthy, renews, and on stop revokes, so
// the key disappears at once.
func checkHolds(t *testing.T, srv *etcdtest.Server, cfg clientv3.Config, node string) {
	t.Helper()
	l := startLive(t, cfg, defaultCluster(srv.Endpoints()), node, func(c *lease.Config) { c.RevokeOnStop = true })
	if l == nil || !l.waitState(t, lease.Healthy, 20*time.Second) {
		return
	}
	deleted := deletion(t, srv.Client(t), l.h.Key())
	n := l.h.Status().RenewalsOK
	if !l.waitFor(t, "renewed twice", 10*time.Second, func(s lease.Status) bool { return s.RenewalsOK >= n+2 }) {
		return
	}
	l.stop()
	if c, ok := l.nextFence(t, time.Second); ok && !strings.HasPrefix(c.Reason, "stopped:") {
		t.Errorf("fence on stop: %q", c.Reason)
	}
	wait(t, deleted, config.DefaultTTL-config.DefaultMargin, "deletion of the revoked member key")
}

func TestIntegrationTLSClientCert(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.WithTLS())
	checkHolds(t, srv, srv.ClientConfig(), "tls")
}

func TestIntegrationAuth(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.WithAuth())
	cfg := srv.ClientConfig()
	cfg.Username, cfg.Password = srv.User()
	checkHolds(t, srv, cfg, "auth")
}

// timedClient measures each renewal round trip.
type timedClient struct {
	*clientv3.Client
	mu  sync.Mutex
	lat []time.Duration
}

func (c *timedClient) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	start := boottime.Now()
	r, err := c.Client.KeepAliveOnce(ctx, id)
	if err == nil {
		c.mu.Lock()
		c.lat = append(c.lat, boottime.Now()-start)
		c.mu.Unlock()
	}
	return r, err
}

// At rest, a holder costs one renewal per RenewEvery; measured, not asserted.
func TestIntegrationAtRest(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	tc := &timedClient{Client: cli}
	f := leasetest.NewFencer(boottime)
	h, err := lease.New(tc, f, lease.Config{Cluster: defaultCluster(srv.Endpoints()), Node: "rest"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	l := &liveHolder{h: h, fencer: f}
	if !l.waitState(t, lease.Healthy, 20*time.Second) {
		return
	}
	const window = 10 * time.Second
	before := srv.RPCsStarted(t)
	start := boottime.Now()
	time.Sleep(window)
	after := srv.RPCsStarted(t)
	secs := (boottime.Now() - start).Seconds()
	var total float64
	var parts []string
	for m, v := range after {
		if d := v - before[m]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%.2f", m, d/secs))
		}
	}
	slices.Sort(parts)
	t.Logf("etcd-req-per-sec holder=1 total=%.2f %s (window %.1fs, renew every %s)", total/secs, strings.Join(parts, " "), secs, config.DefaultTTL/3)
	tc.mu.Lock()
	lat := slices.Clone(tc.lat)
	tc.mu.Unlock()
	if len(lat) > 0 {
		t.Logf("renew-latency-ms min=%.2f median=%.2f max=%.2f n=%d", ms(slices.Min(lat)), ms(median(lat)), ms(slices.Max(lat)), len(lat))
	}
	if n := len(f.Log()); n != 1 {
		t.Errorf("fencer calls %+v at rest, want the one Unfence", f.Log())
	}
}
