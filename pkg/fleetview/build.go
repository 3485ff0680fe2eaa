package fleetview

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
)

// Problems an instance can have.
const (
	DualOwner = "dual-owner" // two or more nodes hold its VIPs
	NoOwner   = "no-owner"   // no node holds any of its VIPs
)

// StaleAfter is how long a view may go without a write before it is no
// longer trusted: two of the publisher's refreshes plus room for one late
// sample.
func StaleAfter(refresh time.Duration) time.Duration {
	if refresh <= 0 {
		refresh = 10 * time.Second
	}
	return 2*refresh + refresh/2
}

// Stale reports whether a recorded view is too old to be trusted at now
// (CLOCK_BOOTTIME of the recording node).
func Stale(v fencedstate.Seen, now time.Duration) bool {
	return now-v.ReceivedBoot > StaleAfter(v.RefreshEvery)
}

// Report is the fleet as one node's fenced recorded it.
type Report struct {
	// Node is the node whose fenced recorded the views.
	Node string `json:"node"`
	// Stale says why the whole record is not to be trusted (fenced on the
	// recording node is down, or its state file is old); empty when fresh.
	Stale string `json:"stale,omitempty"`
	// Recorded is the recording fenced's last heartbeat.
	Recorded  time.Time        `json:"recorded,omitzero"`
	Instances []InstanceReport `json:"instances"`
	// Problems counts the instances flagged (fresh views only).
	Problems int `json:"problems"`
}

// InstanceReport is one instance across the fleet.
type InstanceReport struct {
	Name string `json:"name"`
	// Owners are the nodes whose fresh view holds one of its VIPs.
	Owners []string `json:"owners"`
	// Problem is DualOwner, NoOwner or empty. Since is when it began as
	// the views tell it: the latest of the owners' holding times for a
	// dual owner, the latest departure for no owner; SinceFrom is the node
	// whose view says so.
	Problem   string    `json:"problem,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	SinceFrom string    `json:"since_from,omitempty"`
	Nodes     []Cell    `json:"nodes"`
}

// Cell is one node's view of one instance.
type Cell struct {
	Node string `json:"node"`
	fencedstate.InstanceView
	Lease  string `json:"lease"`
	Fenced bool   `json:"fenced"`
	// Age is how long ago the view was last written, on the recording
	// node's clock; Stale when that is longer than StaleAfter (the view
	// does not count as owner, and is shown as such).
	Age   time.Duration `json:"age"`
	Stale bool          `json:"stale,omitempty"`
	Self  bool          `json:"self,omitempty"`
}

// Holds reports whether the view says the node holds the instance.
func (c Cell) Holds() bool { return len(c.Held) > 0 }

// Build merges the views in snap as of now (CLOCK_BOOTTIME on the node
// that recorded them). down, when set, says why the recording fenced is
// not to be trusted; every view is then stale and nothing is flagged from
// them.
func Build(snap fencedstate.Snapshot, now time.Duration, down string) Report {
	r := Report{Node: snap.Node, Stale: down, Recorded: snap.Heartbeat, Instances: []InstanceReport{}}
	byName := map[string]*InstanceReport{}
	seen := map[[2]string]int{} // node, instance -> index in its report's Nodes
	for _, v := range snap.Fleet {
		age := now - v.ReceivedBoot
		stale := down != "" || Stale(v, now)
		for _, iv := range v.Instances {
			ir := byName[iv.Name]
			if ir == nil {
				ir = &InstanceReport{Name: iv.Name, Owners: []string{}}
				byName[iv.Name] = ir
			}
			c := Cell{Node: v.Node, InstanceView: iv, Lease: v.Lease, Fenced: v.Fenced, Age: max(age, 0), Stale: stale, Self: v.Self}
			k := [2]string{v.Node, iv.Name}
			if i, ok := seen[k]; ok {
				// The same node seen through two clusters of one etcd:
				// the fresher record wins.
				if ir.Nodes[i].Stale && !c.Stale || c.Age < ir.Nodes[i].Age {
					ir.Nodes[i] = c
				}
				continue
			}
			seen[k] = len(ir.Nodes)
			ir.Nodes = append(ir.Nodes, c)
		}
	}
	for _, ir := range byName {
		sort.Slice(ir.Nodes, func(i, j int) bool { return ir.Nodes[i].Node < ir.Nodes[j].Node })
		flag(ir)
		if ir.Problem != "" {
			r.Problems++
		}
		r.Instances = append(r.Instances, *ir)
	}
	sort.Slice(r.Instances, func(i, j int) bool { return r.Instances[i].Name < r.Instances[j].Name })
	return r
}

// flag finds the owners among the fresh views and the problem they make.
// Without one fresh view there is nothing to judge.
func flag(ir *InstanceReport) {
	fresh := 0
	var last Cell
	for _, c := range ir.Nodes {
		if c.Stale {
			continue
		}
		fresh++
		if c.Holds() {
			ir.Owners = append(ir.Owners, c.Node)
			if ir.SinceFrom == "" || c.HeldSince.After(ir.Since) {
				ir.Since, ir.SinceFrom = c.HeldSince, c.Node
			}
		} else if last.Node == "" || c.Since.After(last.Since) {
			last = c
		}
	}
	switch {
	case len(ir.Owners) > 1:
		ir.Problem = DualOwner
	case len(ir.Owners) == 1:
		ir.Since, ir.SinceFrom = time.Time{}, ""
	case fresh > 0:
		ir.Problem = NoOwner
		ir.Since, ir.SinceFrom = last.Since, last.Node
	}
}

// Owners is the number of nodes holding each instance in the fresh views
// (the owner-count metric).
func (r Report) Owners() map[string]int {
	out := make(map[string]int, len(r.Instances))
	for _, ir := range r.Instances {
		out[ir.Name] = len(ir.Owners)
	}
	return out
}

// Describe is a one-line account of an instance's problem.
func (ir InstanceReport) Describe() string {
	switch ir.Problem {
	case DualOwner:
		return fmt.Sprintf("held by %d nodes (%s)%s", len(ir.Owners), strings.Join(ir.Owners, ", "), since(ir))
	case NoOwner:
		return "held by no node" + since(ir)
	}
	return ""
}

func since(ir InstanceReport) string {
	if ir.Since.IsZero() {
		return ""
	}
	return fmt.Sprintf(" since %s (%s's view)", ir.Since.Local().Format("2006-01-02 15:04:05.000"), ir.SinceFrom)
}
