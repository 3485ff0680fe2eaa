package supervisor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipkit/vipkit/pkg/fleetview"
)

// FleetMetrics exports the fleet view for alerting, read from the state at
// scrape time as the other gauges are: per instance the number of nodes
// whose fresh view holds it (2 or more: a split brain; 0: nobody serves
// it), and the number of views not trusted because they are old.
type FleetMetrics struct {
	sup    *Supervisor
	owners *prometheus.Desc
	stale  *prometheus.Desc
}

// NewFleetMetrics registers the fleet view's metrics in reg.
func NewFleetMetrics(sup *Supervisor, reg prometheus.Registerer) *FleetMetrics {
	m := &FleetMetrics{
		sup:    sup,
		owners: prometheus.NewDesc("vipkit_fleet_instance_owners", "Nodes whose fleet view holds one of the instance's VIPs (fresh views only): 1 is normal, 2 or more a split brain, 0 an instance nobody serves.", []string{"vrrp_instance"}, nil),
		stale:  prometheus.NewDesc("vipkit_fleet_stale_views", "Node views in the fleet view that are too old to be trusted (not counted as owners).", nil, nil),
	}
	reg.MustRegister(m)
	return m
}

// Describe implements prometheus.Collector.
func (m *FleetMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.owners
	ch <- m.stale
}

// Collect implements prometheus.Collector.
func (m *FleetMetrics) Collect(ch chan<- prometheus.Metric) {
	snap := m.sup.Snapshot()
	now := m.sup.now()
	r := fleetview.Build(snap, now, "")
	for _, ir := range r.Instances {
		ch <- prometheus.MustNewConstMetric(m.owners, prometheus.GaugeValue, float64(len(ir.Owners)), ir.Name)
	}
	stale := 0
	for _, v := range snap.Fleet {
		if fleetview.Stale(v, now) {
			stale++
		}
	}
	ch <- prometheus.MustNewConstMetric(m.stale, prometheus.GaugeValue, float64(stale))
}
