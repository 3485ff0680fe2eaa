package supervisor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipkit/vipkit/pkg/lease"
)

// Metrics exports fenced's state to Prometheus. Gauges and counters are
// read from the snapshot at scrape time, so they can never disagree with
// fenced status; the route-guard window is a histogram fed as it happens.
type Metrics struct {
	sup         *Supervisor
	GuardWindow prometheus.Histogram
	// Fed as things happen: a fence pass, an acknowledged renewal, a route
	// the guard removed, an announcement of the defender.
	FenceDuration *prometheus.HistogramVec
	RenewLatency  *prometheus.HistogramVec
	// RenewMargin is each renewal's latency over the cluster's margin: the
	// share of the margin a renewal ate, whatever the margin is.
	RenewMargin   *prometheus.HistogramVec
	GuardRemovals prometheus.Counter
	Defended      prometheus.Counter
	// ScrapeErrors counts sources a scrape could not read (exporter.Seen).
	ScrapeErrors *prometheus.CounterVec
	// HeartbeatAge, when set, is the time since the last heartbeat.
	HeartbeatAge func() time.Duration

	info         *prometheus.Desc
	heartbeatAge *prometheus.Desc
	margin       *prometheus.Desc
	ttl          *prometheus.Desc

	instanceFenced *prometheus.Desc
	clusterState   *prometheus.Desc
	fences         *prometheus.Desc
	renewals       *prometheus.Desc
	renewLatency   *prometheus.Desc
	validity       *prometheus.Desc
	fenceLead      *prometheus.Desc
	fenceDuration  *prometheus.Desc
	etcdServer     *prometheus.Desc
	etcdLeaseBugs  *prometheus.Desc
}

// NewMetrics registers fenced's metrics in reg.
func NewMetrics(sup *Supervisor, reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sup: sup,
		GuardWindow: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vipkit_fenced_route_guard_window_seconds",
			Help:    "Time from an address deletion event to its orphaned hint route being gone.",
			Buckets: []float64{0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1},
		}),
		FenceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipkit_fenced_fence_duration_seconds",
			Help:    "How long each fence of all a cluster's instances took (VIPs released, track files written).",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"cluster"}),
		RenewLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipkit_fenced_renew_latency_seconds",
			Help:    "Round trip of each acknowledged lease renewal.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"cluster"}),
		RenewMargin: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipkit_fenced_renew_latency_margin_ratio",
			Help:    "Round trip of each acknowledged lease renewal over the cluster's margin (above 0.5: the renewal ate more than half the margin).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2},
		}, []string{"cluster"}),
		GuardRemovals:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vipkit_fenced_route_guard_removals_total", Help: "Orphaned local routes (a VIP's route left after its address went) the route guard removed (I1)."}),
		Defended:       prometheus.NewCounter(prometheus.CounterOpts{Name: "vipkit_fenced_defender_announcements_total", Help: "Announcements the defender sent for a VIP held here after another host claimed it."}),
		ScrapeErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vipkit_fenced_scrape_errors_total", Help: "Sources a scrape could not read (state: vipctl's state file; addresses, routes: the kernel)."}, []string{"source"}),
		info:           prometheus.NewDesc("vipkit_fenced_info", "1, labelled with the node name and fenced's version.", []string{"node", "version"}, nil),
		heartbeatAge:   prometheus.NewDesc("vipkit_fenced_heartbeat_age_seconds", "Time since fenced last wrote its heartbeat; it stops while a lease holder makes no progress (and keepalived's liveness check then fails).", nil, nil),
		margin:         prometheus.NewDesc("vipkit_fenced_margin_seconds", "The cluster's configured margin: how long before the earliest possible server expiry fenced fences.", []string{"cluster"}, nil),
		ttl:            prometheus.NewDesc("vipkit_fenced_lease_ttl_seconds", "The TTL the server granted the cluster's lease (0 before a grant).", []string{"cluster"}, nil),
		instanceFenced: prometheus.NewDesc("vipkit_fenced_instance_fenced", "1 when the instance is fenced (its track file says FAULT).", []string{"vrrp_instance", "cluster"}, nil),
		clusterState:   prometheus.NewDesc("vipkit_fenced_cluster_state", "1 for the lease holder's current state.", []string{"cluster", "state"}, nil),
		fences:         prometheus.NewDesc("vipkit_fenced_fences_total", "Fences by reason.", []string{"cluster", "reason"}, nil),
		renewals:       prometheus.NewDesc("vipkit_fenced_renewals_total", "Lease renewals by result.", []string{"cluster", "result"}, nil),
		renewLatency:   prometheus.NewDesc("vipkit_fenced_last_renew_latency_seconds", "Round trip of the last acknowledged renewal.", []string{"cluster"}, nil),
		validity:       prometheus.NewDesc("vipkit_fenced_lease_validity_remaining_seconds", "Local lease validity left (send time of the last acknowledged renewal + TTL - margin - now).", []string{"cluster"}, nil),
		fenceLead:      prometheus.NewDesc("vipkit_fenced_last_fence_lead_seconds", "Earliest possible server expiry minus the time the last fence completed; positive means the fence came first (I4).", []string{"cluster"}, nil),
		fenceDuration:  prometheus.NewDesc("vipkit_fenced_last_fence_duration_seconds", "How long the last fence of all the cluster's instances took (VIPs released, track files written); the margin must cover it with room to spare.", []string{"cluster"}, nil),
		etcdServer:     prometheus.NewDesc("vipkit_fenced_etcd_server_info", "1 for each etcd member and the release it reported when the lease holder started.", []string{"cluster", "endpoint", "version"}, nil),
		etcdLeaseBugs:  prometheus.NewDesc("vipkit_fenced_etcd_server_lease_bugs", "Known lease bugs of the member's release (etcd#15247, etcd#20615); above 0, an acknowledged renewal does not prove the lease alive.", []string{"cluster", "endpoint"}, nil),
	}
	for _, l := range []string{"state", "addresses", "routes"} {
		m.ScrapeErrors.WithLabelValues(l) // present at 0 from the start
	}
	reg.MustRegister(m, m.GuardWindow, m.FenceDuration, m.RenewLatency, m.RenewMargin, m.GuardRemovals, m.Defended, m.ScrapeErrors)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.info, m.heartbeatAge, m.margin, m.ttl, m.instanceFenced, m.clusterState, m.fences, m.renewals, m.renewLatency, m.validity, m.fenceLead, m.fenceDuration, m.etcdServer, m.etcdLeaseBugs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	snap := m.sup.Snapshot()
	ch <- prometheus.MustNewConstMetric(m.info, prometheus.GaugeValue, 1, snap.Node, snap.Version)
	if m.HeartbeatAge != nil {
		ch <- prometheus.MustNewConstMetric(m.heartbeatAge, prometheus.GaugeValue, m.HeartbeatAge().Seconds())
	}
	for _, in := range snap.Instances {
		v := 0.0
		if in.Fenced {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.instanceFenced, prometheus.GaugeValue, v, in.Name, in.Cluster)
	}
	for _, c := range snap.Clusters {
		st := c.Lease
		ch <- prometheus.MustNewConstMetric(m.margin, prometheus.GaugeValue, c.Margin.Seconds(), c.Name)
		ch <- prometheus.MustNewConstMetric(m.ttl, prometheus.GaugeValue, st.TTL.Seconds(), c.Name)
		for _, s := range []lease.State{lease.Starting, lease.Healthy, lease.Fenced} {
			v := 0.0
			if st.State == s.String() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.clusterState, prometheus.GaugeValue, v, c.Name, s.String())
		}
		// Every reason from the start, at 0: a counter that appears at 1
		// hides its first increase from increase() and rate().
		for _, r := range fenceReasons {
			if _, ok := st.Fences[string(r)]; !ok {
				ch <- prometheus.MustNewConstMetric(m.fences, prometheus.CounterValue, 0, c.Name, string(r))
			}
		}
		for reason, n := range st.Fences {
			ch <- prometheus.MustNewConstMetric(m.fences, prometheus.CounterValue, float64(n), c.Name, reason)
		}
		ch <- prometheus.MustNewConstMetric(m.renewals, prometheus.CounterValue, float64(st.RenewalsOK), c.Name, "ok")
		ch <- prometheus.MustNewConstMetric(m.renewals, prometheus.CounterValue, float64(st.RenewalsFailed), c.Name, "failed")
		ch <- prometheus.MustNewConstMetric(m.renewLatency, prometheus.GaugeValue, st.LastRenewLatency.Seconds(), c.Name)
		ch <- prometheus.MustNewConstMetric(m.validity, prometheus.GaugeValue, max(st.ValidFor, 0).Seconds(), c.Name)
		if st.LastFenceReason != "" {
			ch <- prometheus.MustNewConstMetric(m.fenceLead, prometheus.GaugeValue, st.LastFenceLead.Seconds(), c.Name)
		}
		if c.FenceDuration > 0 {
			ch <- prometheus.MustNewConstMetric(m.fenceDuration, prometheus.GaugeValue, c.FenceDuration.Seconds(), c.Name)
		}
		for _, srv := range c.Servers {
			if srv.Version == "" {
				continue
			}
			ch <- prometheus.MustNewConstMetric(m.etcdServer, prometheus.GaugeValue, 1, c.Name, srv.Endpoint, srv.Version)
			ch <- prometheus.MustNewConstMetric(m.etcdLeaseBugs, prometheus.GaugeValue, float64(len(srv.LeaseBugs)), c.Name, srv.Endpoint)
		}
	}
}

// fenceReasons are the lease holder's fence reasons (lease.Reason).
var fenceReasons = []lease.Reason{lease.ReasonDeadline, lease.ReasonLeaseNotFound, lease.ReasonKeyDeleted, lease.ReasonClientClosed, lease.ReasonStopped}

// ObserveGuard records one route removed by the guard and, when known, the
// window from the address deletion to the route gone.
func (m *Metrics) ObserveGuard(d time.Duration) {
	m.GuardRemovals.Inc()
	if d > 0 {
		m.GuardWindow.Observe(d.Seconds())
	}
}

// ObserveFence records one fence pass of a cluster.
func (m *Metrics) ObserveFence(cluster string, d time.Duration) {
	m.FenceDuration.WithLabelValues(cluster).Observe(d.Seconds())
}

// ObserveRenew records one acknowledged renewal of a cluster with margin.
func (m *Metrics) ObserveRenew(cluster string, d, margin time.Duration) {
	m.RenewLatency.WithLabelValues(cluster).Observe(d.Seconds())
	if margin > 0 {
		m.RenewMargin.WithLabelValues(cluster).Observe(d.Seconds() / margin.Seconds())
	}
}
