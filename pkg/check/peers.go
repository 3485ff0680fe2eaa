package check

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vipkit/vipkit/pkg/keepalived"
)

// Node is one node's keepalived.conf, for the checks no single file can
// answer: do the peers of an instance agree?
type Node struct {
	// Name is how findings name the node (its file's path).
	Name string
	Conf *keepalived.Conf
}

// PeerOptions say what a node's file must do for vipkit.
type PeerOptions struct {
	// FenceFile tells whether a track file path is fenced's (the fence
	// file of an instance); nil: a path ending in ".fence".
	FenceFile func(instance, path string) bool
}

// member is one node's copy of an instance.
type member struct {
	node string
	in   *keepalived.Instance
	c    *keepalived.Conf
}

// Peers compares the nodes' keepalived.conf instance by instance (peers
// are the instances of the same name) and reports what would make the
// election go wrong: mismatched VRID, advert_int, authentication or VIPs,
// one VRID used by two instances, nopreempt that keepalived ignores,
// weights with which a failing tracker never moves the master, unicast
// peer lists that do not name each other, and an instance fenced on one
// node only.
func Peers(nodes []Node, opt PeerOptions) []Issue {
	if opt.FenceFile == nil {
		opt.FenceFile = func(_, path string) bool { return strings.HasSuffix(path, ".fence") }
	}
	var issues []Issue
	add := func(sev Severity, subject string, pos keepalived.Pos, fix, format string, args ...any) {
		issues = append(issues, Issue{Severity: sev, Subject: subject, Line: pos.String(), Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	byName := map[string][]member{}
	var names []string
	for _, n := range nodes {
		for _, in := range n.Conf.Instances {
			if _, ok := byName[in.Name]; !ok {
				names = append(names, in.Name)
			}
			byName[in.Name] = append(byName[in.Name], member{n.Name, in, n.Conf})
			if in.Nopreempt && strings.EqualFold(in.State, "MASTER") {
				add(Warning, "vrrp_instance "+in.Name, in.Pos, "set `state BACKUP` on every node when using nopreempt",
					"%s: nopreempt with state MASTER: keepalived ignores nopreempt for an instance that starts as MASTER (its dump says Preempt = enabled), so this node takes the VIP back whenever it returns", n.Name)
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		ms := byName[name]
		subject := "vrrp_instance " + name
		if len(ms) < 2 {
			continue
		}
		first := ms[0]
		for _, m := range ms[1:] {
			if m.in.VirtualRouterID != first.in.VirtualRouterID {
				add(Error, subject, m.in.Pos, "use one virtual_router_id for the instance on every node",
					"virtual_router_id is %d on %s but %d on %s: keepalived drops adverts of another VRID, so both nodes become MASTER", m.in.VirtualRouterID, m.node, first.in.VirtualRouterID, first.node)
			}
			if advert(m.in) != advert(first.in) {
				if version(m) == 3 && version(first) == 3 {
					add(Warning, subject, m.in.Pos, "use one advert_int for the instance on every node",
						"advert_int is %gs on %s but %gs on %s: with VRRPv3 a backup adopts the master's interval, so the configured one applies only while a node is master", advert(m.in), m.node, advert(first.in), first.node)
				} else {
					add(Error, subject, m.in.Pos, "use one advert_int for the instance on every node",
						"advert_int is %gs on %s but %gs on %s: keepalived drops VRRPv2 adverts with another interval (\"advertisement interval mismatch\"), so both nodes become MASTER", advert(m.in), m.node, advert(first.in), first.node)
				}
			}
			if m.in.AuthType != first.in.AuthType || m.in.AuthPass != first.in.AuthPass {
				add(Error, subject, m.in.Pos, "use the same authentication block on every node",
					"authentication differs between %s (%s) and %s (%s; passwords compared, not shown): keepalived drops adverts that fail authentication, so both nodes become MASTER", m.node, authString(m.in), first.node, authString(first.in))
			}
			if a, b := vipSet(m.in), vipSet(first.in); !slices.Equal(a, b) {
				add(Error, subject, m.in.Pos, "list the same VIPs for the instance on every node",
					"VIPs differ: %s has %s, %s has %s: after a failover the new master holds other addresses than the old one", m.node, strings.Join(a, " "), first.node, strings.Join(b, " "))
			}
		}
		peersSymmetric(ms, subject, add)
		fencedEverywhere(ms, subject, opt, add)
		trackersMoveMaster(ms, subject, add)
	}
	sameVRID(nodes, add)
	return issues
}

func version(m member) int {
	if m.in.Version != 0 {
		return m.in.Version
	}
	if m.c.Global.VRRPVersion != 0 {
		return m.c.Global.VRRPVersion
	}
	return 2
}

func advert(in *keepalived.Instance) float64 {
	if in.AdvertInt == 0 {
		return 1
	}
	return in.AdvertInt
}

func authString(in *keepalived.Instance) string {
	if in.AuthType == "" {
		return "none"
	}
	// The password itself stays out of the report.
	return fmt.Sprintf("%s, password of %d characters", in.AuthType, len(in.AuthPass))
}

func vipSet(in *keepalived.Instance) []string {
	var out []string
	for _, v := range in.VIPs {
		out = append(out, v.Prefix.Addr().String())
	}
	for _, v := range in.ExcludedVIPs {
		out = append(out, v.Prefix.Addr().String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

type peerAdd func(sev Severity, subject string, pos keepalived.Pos, fix, format string, args ...any)

// peersSymmetric: with unicast, every node must list every other node's
// source address, or a node never hears (or is never heard by) a peer.
func peersSymmetric(ms []member, subject string, add peerAdd) {
	unicast := slices.ContainsFunc(ms, func(m member) bool { return len(m.in.UnicastPeers) > 0 })
	if !unicast {
		return
	}
	for _, m := range ms {
		if len(m.in.UnicastPeers) == 0 {
			add(Error, subject, m.in.Pos, "give every node a unicast_peer block naming the others",
				"%s uses multicast while its peers use unicast: they never hear each other and both become MASTER", m.node)
			continue
		}
		for _, o := range ms {
			if o.node == m.node {
				continue
			}
			if o.in.UnicastSrcIP == "" {
				add(Warning, subject, o.in.Pos, "set unicast_src_ip on every node, so that peers can be checked against it",
					"%s sets no unicast_src_ip: whether %s's unicast_peer list (%s) names it cannot be checked", o.node, m.node, strings.Join(m.in.UnicastPeers, " "))
				continue
			}
			if !slices.ContainsFunc(m.in.UnicastPeers, func(p string) bool { return sameAddr(p, o.in.UnicastSrcIP) }) {
				add(Error, subject, m.in.Pos, fmt.Sprintf("add %s to unicast_peer on %s", o.in.UnicastSrcIP, m.node),
					"unicast_peer on %s (%s) does not name %s's unicast_src_ip %s: %s never sends its adverts there and drops %s's adverts as from an unknown peer", m.node, strings.Join(m.in.UnicastPeers, " "), o.node, o.in.UnicastSrcIP, m.node, o.node)
			}
		}
	}
}

func sameAddr(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x == y
}

// fencedEverywhere: an instance fenced on one node must be fenced on all;
// an unfenced node can hold the VIP after losing etcd while another is
// granted it.
func fencedEverywhere(ms []member, subject string, opt PeerOptions, add peerAdd) {
	var with, without []string
	var pos keepalived.Pos
	for _, m := range ms {
		fenced := false
		for _, r := range m.in.TrackFiles {
			if tf := m.c.TrackFile(r.Name); tf != nil && opt.FenceFile(m.in.Name, tf.File) {
				fenced = true
			}
		}
		if g := m.c.SyncGroup(m.in.SyncGroup); g != nil {
			for _, r := range g.TrackFiles {
				if tf := m.c.TrackFile(r.Name); tf != nil && opt.FenceFile(m.in.Name, tf.File) {
					fenced = true
				}
			}
		}
		if fenced {
			with = append(with, m.node)
		} else {
			without = append(without, m.node)
			pos = m.in.Pos
		}
	}
	if len(with) > 0 && len(without) > 0 {
		add(Error, subject, pos, "track fenced's file on every node of the instance (contrib/keepalived/*-fenced.conf)",
			"fenced watches the instance on %s but not on %s: there, nothing takes the VIP away when the node loses etcd, while another node is granted it", strings.Join(with, ", "), strings.Join(without, ", "))
	}
}

// trackersMoveMaster: a tracker with a weight changes the priority by
// that weight; if the node with the highest priority, its tracker
// failing, still has at least the priority of the best other node with
// the tracker healthy, the failure never moves the VIP (keepalived issues
// #942, #2108). weight 0 (FAULT) always does.
func trackersMoveMaster(ms []member, subject string, add peerAdd) {
	prio := func(in *keepalived.Instance) int {
		if in.Priority == 0 {
			return 100
		}
		return in.Priority
	}
	best := ms[0]
	for _, m := range ms[1:] {
		if prio(m.in) > prio(best.in) {
			best = m
		}
	}
	backup := -1
	for _, m := range ms {
		if m.node != best.node && prio(m.in) > backup {
			backup = prio(m.in)
		}
	}
	if backup < 0 || prio(best.in) == 255 {
		return // a single node, or an address owner (keepalived ignores weights there)
	}
	type tracker struct {
		kind, name string
		weight     int
		pos        keepalived.Pos
	}
	var ts []tracker
	for _, r := range best.in.TrackScripts {
		w := r.Weight
		if sc := best.c.Script(r.Name); sc != nil && !r.WeightSet {
			w = sc.Weight
		}
		ts = append(ts, tracker{"track_script", r.Name, w, r.Pos})
	}
	for _, r := range best.in.TrackFiles {
		w := r.Weight
		if tf := best.c.TrackFile(r.Name); tf != nil && !r.WeightSet {
			w = tf.Weight
		}
		ts = append(ts, tracker{"track_file", r.Name, w, r.Pos})
	}
	for _, t := range ts {
		if t.weight == 0 {
			continue
		}
		// A negative weight is subtracted on failure; a positive one is
		// added while healthy, so the healthy backup gains it.
		failed, healthy := prio(best.in)+min(t.weight, 0), backup+max(t.weight, 0)
		if failed >= healthy {
			add(Warning, subject, t.pos, fmt.Sprintf("make |weight| larger than the priority gap (%d), or use weight 0 to put the node in FAULT", prio(best.in)-backup),
				"%s %s (weight %d) on %s: when it fails there, %s's priority is %d and the best other node's, with it healthy, %d: the failing node stays MASTER (keepalived issues #942, #2108)",
				t.kind, t.name, t.weight, best.node, best.node, failed, healthy)
		}
	}
}

// sameVRID: two instances with one VRID hear each other's adverts where
// they share a segment; keepalived refuses that in one file, so only
// instances of different names on different nodes are left to check. The
// interface name stands for the segment.
func sameVRID(nodes []Node, add peerAdd) {
	type use struct {
		node string
		in   *keepalived.Instance
	}
	seen := map[string]use{}
	for _, n := range nodes {
		for _, in := range n.Conf.Instances {
			if in.VirtualRouterID == 0 {
				continue
			}
			key := fmt.Sprintf("%s/%d", in.Interface, in.VirtualRouterID)
			if first, ok := seen[key]; ok && first.in.Name != in.Name {
				add(Error, "vrrp_instance "+in.Name, in.Pos, "give each instance of a segment its own virtual_router_id",
					"%s uses VRID %d on %s like vrrp_instance %s on %s: on one segment each takes the other's adverts for its own, and elections mix", n.Name, in.VirtualRouterID, in.Interface, first.in.Name, first.node)
				continue
			}
			if _, ok := seen[key]; !ok {
				seen[key] = use{n.Name, in}
			}
		}
	}
}
