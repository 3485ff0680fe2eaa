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

	instanceFenced *prometheus.Desc
	clusterState   *prometheus.Desc
	fences         *prometheus.Desc
	renewals       *prometheus.Desc
	renewLatency   *prometheus.Desc
	validity       *prometheus.Desc
	fenceLead      *prometheus.Desc
	fenceDuration  *prometheus.Desc
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
		instanceFenced: prometheus.NewDesc("vipkit_fenced_instance_fenced", "1 when the instance is fenced (its track file says FAULT).", []string{"instance", "cluster"}, nil),
		clusterState:   prometheus.NewDesc("vipkit_fenced_cluster_state", "1 for the lease holder's current state.", []string{"cluster", "state"}, nil),
		fences:         prometheus.NewDesc("vipkit_fenced_fences_total", "Fences by reason.", []string{"cluster", "reason"}, nil),
		renewals:       prometheus.NewDesc("vipkit_fenced_renewals_total", "Lease renewals by result.", []string{"cluster", "result"}, nil),
		renewLatency:   prometheus.NewDesc("vipkit_fenced_last_renew_latency_seconds", "Round trip of the last acknowledged renewal.", []string{"cluster"}, nil),
		validity:       prometheus.NewDesc("vipkit_fenced_lease_validity_remaining_seconds", "Local lease validity left (send time of the last acknowledged renewal + TTL - margin - now).", []string{"cluster"}, nil),
		fenceLead:      prometheus.NewDesc("vipkit_fenced_last_fence_lead_seconds", "Earliest possible server expiry minus the time the last fence completed; positive means the fence came first (I4).", []string{"cluster"}, nil),
		fenceDuration:  prometheus.NewDesc("vipkit_fenced_last_fence_duration_seconds", "How long the last fence of all the cluster's instances took (VIPs released, track files written); the margin must cover it with room to spare.", []string{"cluster"}, nil),
	}
	reg.MustRegister(m, m.GuardWindow)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.instanceFenced, m.clusterState, m.fences, m.renewals, m.renewLatency, m.validity, m.fenceLead, m.fenceDuration} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	snap := m.sup.Snapshot()
	for _, in := range snap.Instances {
		v := 0.0
		if in.Fenced {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.instanceFenced, prometheus.GaugeValue, v, in.Name, in.Cluster)
	}
	for _, c := range snap.Clusters {
		st := c.Lease
		for _, s := range []lease.State{lease.Starting, lease.Healthy, lease.Fenced} {
			v := 0.0
			if st.State == s.String() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.clusterState, prometheus.GaugeValue, v, c.Name, s.String())
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
	}
}

// ObserveGuard records one route-guard window.
func (m *Metrics) ObserveGuard(d time.Duration) { m.GuardWindow.Observe(d.Seconds()) }
