package observe

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"time"
)

// None marks a metric that could not be measured (the event never came).
const None time.Duration = math.MinInt64

// FormatDur renders a metric, "-" for None.
func FormatDur(d time.Duration) string {
	if d == None {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// Span is a half-open interval [From, To) of lab time.
type Span struct{ From, To time.Duration }

// Len is the span's duration.
func (s Span) Len() time.Duration { return s.To - s.From }

// Total adds up the lengths of spans.
func Total(spans []Span) time.Duration {
	var d time.Duration
	for _, s := range spans {
		d += s.Len()
	}
	return d
}

// Clip restricts spans to [from, to).
func Clip(spans []Span, from, to time.Duration) []Span {
	var out []Span
	for _, s := range spans {
		s.From, s.To = max(s.From, from), min(s.To, to)
		if s.To > s.From {
			out = append(out, s)
		}
	}
	return out
}

// Intersect returns the times covered by both a and b (each sorted and
// non-overlapping).
func Intersect(a, b []Span) []Span {
	var out []Span
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		from, to := max(a[i].From, b[j].From), min(a[i].To, b[j].To)
		if to > from {
			out = append(out, Span{from, to})
		}
		if a[i].To < b[j].To {
			i++
		} else {
			j++
		}
	}
	return out
}

// Subtract returns the times covered by a but not by b.
func Subtract(a, b []Span) []Span {
	var out []Span
	for _, s := range a {
		cur := []Span{s}
		for _, c := range b {
			var next []Span
			for _, x := range cur {
				if c.To <= x.From || c.From >= x.To {
					next = append(next, x)
					continue
				}
				if c.From > x.From {
					next = append(next, Span{x.From, c.From})
				}
				if c.To < x.To {
					next = append(next, Span{c.To, x.To})
				}
			}
			cur = next
		}
		out = append(out, cur...)
	}
	return out
}

// Union merges spans into sorted, non-overlapping spans.
func Union(spans ...[]Span) []Span {
	var all []Span
	for _, s := range spans {
		all = append(all, s...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].From < all[j].From })
	var out []Span
	for _, s := range all {
		if n := len(out); n > 0 && s.From <= out[n-1].To {
			out[n-1].To = max(out[n-1].To, s.To)
			continue
		}
		out = append(out, s)
	}
	return out
}

// AtLeast returns the times at which at least k of the span sets are
// active.
func AtLeast(k int, sets ...[]Span) []Span {
	type edge struct {
		at time.Duration
		d  int
	}
	var edges []edge
	for _, set := range sets {
		for _, s := range Union(set) {
			edges = append(edges, edge{s.From, 1}, edge{s.To, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].d < edges[j].d
	})
	var out []Span
	n := 0
	var from time.Duration
	for _, e := range edges {
		before := n
		n += e.d
		if before < k && n >= k {
			from = e.at
		} else if before >= k && n < k && e.at > from {
			out = append(out, Span{from, e.at})
		}
	}
	return out
}

// presence turns add/remove events into spans: a key is active from its
// add to its remove; the spans of all keys are merged. Still-active keys
// end at end.
func presence(events []Event, key func(Event) string, end time.Duration) []Span {
	open := map[string]time.Duration{}
	var spans []Span
	for _, e := range events {
		k := key(e)
		from, isOpen := open[k]
		switch {
		case e.Present && !isOpen:
			open[k] = e.At
		case !e.Present && isOpen:
			spans = append(spans, Span{from, e.At})
			delete(open, k)
		}
	}
	for _, from := range open {
		spans = append(spans, Span{from, end})
	}
	return Union(spans)
}

// AddrSpans is when host had ip assigned (any prefix length, any
// interface), up to end.
func (t *Timeline) AddrSpans(host string, ip netip.Addr, end time.Duration) []Span {
	ev := t.Events(func(e Event) bool { return e.Kind == KindAddr && e.Host == host && e.IP == ip })
	return presence(ev, func(e Event) string { return e.Prefix.String() + "@" + e.Dev }, end)
}

// RouteSpans is when host had at least one local-table route to ip.
func (t *Timeline) RouteSpans(host string, ip netip.Addr, end time.Duration) []Span {
	ev := t.Events(func(e Event) bool { return e.Kind == KindRoute && e.Host == host && e.IP == ip })
	return presence(ev, func(e Event) string { return fmt.Sprintf("%s|%d|%s", e.Src, e.Proto, e.Dev) }, end)
}

// OrphanSpans is when host had a local route to ip without holding ip:
// the kernel then still treats ip as local and answers ARP for it. Spans
// shorter than minLen are dropped: the kernel itself notifies a new
// address's local route before the address, and an address's deletion
// before its route's, so every add and delete shows a few microseconds of
// "orphan" that is not one.
func (t *Timeline) OrphanSpans(host string, ip netip.Addr, end, minLen time.Duration) []Span {
	var out []Span
	for _, s := range Subtract(t.RouteSpans(host, ip, end), t.AddrSpans(host, ip, end)) {
		if s.Len() >= minLen {
			out = append(out, s)
		}
	}
	return out
}

// ClaimSpans is when host claimed ip on the wire: it held the address or
// kept a local route for it (which makes it answer ARP/ND for it).
func (t *Timeline) ClaimSpans(host string, ip netip.Addr, end time.Duration) []Span {
	return Union(t.AddrSpans(host, ip, end), t.RouteSpans(host, ip, end))
}

// StateSpan is a span in one keepalived state.
type StateSpan struct {
	Span
	State string
}

// StateSpans is host's instance state over time, from its first reported
// state until end. Events that are not states (MASTER_RX_LOWER_PRI,
// *_PRIORITY) do not end a span.
func (t *Timeline) StateSpans(host, instance string, end time.Duration) []StateSpan {
	ev := t.Events(func(e Event) bool {
		return e.Kind == KindState && e.Host == host && e.Instance == instance && isState(e.State)
	})
	var out []StateSpan
	for i, e := range ev {
		to := end
		if i+1 < len(ev) {
			to = ev[i+1].At
		}
		if n := len(out); n > 0 && out[n-1].State == e.State {
			out[n-1].To = to
			continue
		}
		out = append(out, StateSpan{Span{e.At, to}, e.State})
	}
	return out
}

func isState(s string) bool {
	switch s {
	case "MASTER", "BACKUP", "FAULT", "STOP", "DELETED", "INIT", "DEAD":
		return true
	}
	return false
}

// StateAt is host's instance state at lab time at ("" before the first).
func (t *Timeline) StateAt(host, instance string, at time.Duration) string {
	for _, s := range t.StateSpans(host, instance, at+1) {
		if s.From <= at && at < s.To {
			return s.State
		}
	}
	return ""
}

// NeighAt returns the MAC of host's neighbour entry for ip at lab time
// at ("" when absent or unresolved).
func (t *Timeline) NeighAt(host string, ip netip.Addr, at time.Duration) string {
	mac := ""
	for _, e := range t.Events(func(e Event) bool { return e.Kind == KindNeigh && e.Host == host && e.IP == ip }) {
		if e.At > at {
			break
		}
		mac = e.MAC
	}
	return mac
}

// FailoverSpec says which failover to measure.
type FailoverSpec struct {
	Fault    time.Duration // when the fault was injected
	From     string        // the owner before the fault
	To       string        // the expected new owner; "" = first other host that becomes MASTER
	Instance string        // keepalived instance, VI_1 when empty
	VIP      netip.Addr
	Hosts    []string      // keepalived hosts, for dual-owner and orphan times
	Router   string        // host whose neighbour entry is checked, "router" when empty
	Client   string        // host that probes, "client" when empty
	End      time.Duration // end of the measured window; now when zero
	// Tolerance absorbs the receipt-stamping skew between sources (an
	// address event can reach us after the GARP keepalived sent right after
	// adding the address): an announcement within Tolerance of a claim is
	// not foreign. DefaultTolerance when zero.
	Tolerance time.Duration
}

// DefaultTolerance is the cross-source stamping skew FailoverSpec
// allows by default.
const DefaultTolerance = time.Millisecond

// Failover holds the derived metrics of one failover; absolute times are
// lab times, durations are measured as documented in docs/lab.md. Fields
// that could not be measured are None.
type Failover struct {
	FailoverSpec

	NewMaster     time.Duration // To reported MASTER
	VIPAdded      time.Duration // To got the VIP
	FirstAnnounce time.Duration // first GARP/NA (or ARP reply) for VIP from To
	Takeover      time.Duration // takeover instant − Fault; the instant is the earliest of the three above

	FirstLost      time.Duration // send time of the first unanswered probe after Fault
	FirstNewAnswer time.Duration // arrival of the first answer from To after Fault
	Outage         time.Duration // FirstNewAnswer − FirstLost; 0 when nothing was lost before it
	ClientSwitch   time.Duration // FirstNewAnswer − Fault
	LostProbes     int           // probes lost in the window
	OldAnswers     int           // probes answered by From after Fault

	// RouterConverged is when the router's entry for VIP first pointed at
	// To's MAC: the kernel stamp of the frame that moved it, when it was a
	// gratuitous ARP or an overriding NA from To (a kernel applies those to
	// an existing entry on receipt), else RouterSeen.
	RouterConverged   time.Duration
	RouterSeen        time.Duration // the router's neighbour event that showed it (stamped on receipt)
	RouterConvergence time.Duration // RouterConverged − takeover instant

	DualOwner       time.Duration            // time ≥2 hosts claimed VIP (address or local route)
	Orphan          map[string]time.Duration // per host: local route without the address (spans ≥ Tolerance)
	ForeignAnnounce int                      // ARP/NA for VIP sent by a host not claiming it
}

// Failover derives the metrics of one failover from the timeline.
func (t *Timeline) Failover(spec FailoverSpec) Failover {
	if spec.Instance == "" {
		spec.Instance = "VI_1"
	}
	if spec.Router == "" {
		spec.Router = "router"
	}
	if spec.Client == "" {
		spec.Client = "client"
	}
	if spec.End == 0 {
		spec.End = t.Now()
	}
	if spec.Tolerance == 0 {
		spec.Tolerance = DefaultTolerance
	}
	f := Failover{FailoverSpec: spec, NewMaster: None, VIPAdded: None, FirstAnnounce: None, Takeover: None, FirstLost: None,
		FirstNewAnswer: None, Outage: None, ClientSwitch: None, RouterConverged: None, RouterConvergence: None,
		Orphan: map[string]time.Duration{}}
	inWindow := func(e Event) bool { return e.At >= spec.Fault && e.At <= spec.End }

	for _, e := range t.Events(func(e Event) bool {
		return e.Kind == KindState && e.Instance == spec.Instance && e.State == "MASTER" && e.Host != spec.From && inWindow(e)
	}) {
		if f.To == "" {
			f.To = e.Host
		}
		if e.Host == f.To {
			f.NewMaster = e.At
			break
		}
	}
	if f.To != "" {
		for _, e := range t.Events(func(e Event) bool {
			return e.Kind == KindAddr && e.Host == f.To && e.IP == spec.VIP && e.Present && inWindow(e)
		}) {
			f.VIPAdded = e.At
			break
		}
		for _, e := range t.Events(func(e Event) bool {
			return e.Kind == KindFrame && e.Owner == f.To && announces(e, spec.VIP) && inWindow(e)
		}) {
			f.FirstAnnounce = e.At
			break
		}
	}
	takeover := None
	for _, at := range []time.Duration{f.NewMaster, f.VIPAdded, f.FirstAnnounce} {
		if at != None && (takeover == None || at < takeover) {
			takeover = at
		}
	}
	if takeover != None {
		f.Takeover = takeover - spec.Fault
	}

	for _, e := range t.Events(func(e Event) bool {
		return e.Kind == KindProbe && e.Host == spec.Client && e.IP == spec.VIP && inWindow(e)
	}) {
		switch {
		case !e.OK:
			f.LostProbes++
			if f.FirstLost == None && f.FirstNewAnswer == None {
				f.FirstLost = e.At
			}
		case e.Owner == spec.From && spec.From != f.To:
			f.OldAnswers++
		case e.Owner == f.To && f.To != "":
			if f.FirstNewAnswer == None || e.Answered() < f.FirstNewAnswer {
				f.FirstNewAnswer = e.Answered()
			}
		}
	}
	if f.FirstNewAnswer != None {
		f.ClientSwitch = f.FirstNewAnswer - spec.Fault
		f.Outage = 0
		if f.FirstLost != None && f.FirstLost < f.FirstNewAnswer {
			f.Outage = f.FirstNewAnswer - f.FirstLost
		}
	}

	if mac := t.MACOf(f.To); mac != "" {
		if t.NeighAt(spec.Router, spec.VIP, spec.Fault) == mac {
			f.RouterConverged, f.RouterSeen = spec.Fault, spec.Fault
		} else {
			for _, e := range t.Events(func(e Event) bool {
				return e.Kind == KindNeigh && e.Host == spec.Router && e.IP == spec.VIP && e.MAC == mac && inWindow(e)
			}) {
				f.RouterConverged, f.RouterSeen = e.At, e.At
				break
			}
			// The neighbour event is stamped when the observer read it,
			// late under load; the frame that moved the entry carries the
			// kernel's time. Only while the router had an entry (a GARP or
			// NA does not create one) and only frames it applies at once.
			if f.RouterSeen != None && t.NeighAt(spec.Router, spec.VIP, spec.Fault) != "" {
				for _, e := range t.Events(func(e Event) bool {
					return e.Kind == KindFrame && e.Owner == f.To && e.At >= spec.Fault && e.At <= f.RouterSeen && overrides(e, spec.VIP)
				}) {
					f.RouterConverged = e.At
					break
				}
			}
		}
		if f.RouterConverged != None && takeover != None {
			f.RouterConvergence = f.RouterConverged - takeover
		}
	}

	var claims [][]Span
	claimBy := map[string][]Span{}
	for _, h := range spec.Hosts {
		c := Clip(t.ClaimSpans(h, spec.VIP, spec.End), spec.Fault, spec.End)
		claims = append(claims, c)
		claimBy[h] = t.ClaimSpans(h, spec.VIP, spec.End)
		f.Orphan[h] = Total(Clip(t.OrphanSpans(h, spec.VIP, spec.End, spec.Tolerance), spec.Fault, spec.End))
	}
	f.DualOwner = Total(AtLeast(2, claims...))
	for _, e := range t.Events(func(e Event) bool {
		return e.Kind == KindFrame && inWindow(e) && announces(e, spec.VIP)
	}) {
		spans, known := claimBy[e.Owner]
		if !known {
			continue
		}
		claimed := false
		for _, s := range spans {
			if s.From-spec.Tolerance <= e.At && e.At < s.To+spec.Tolerance {
				claimed = true
			}
		}
		if !claimed {
			f.ForeignAnnounce++
		}
	}
	return f
}

// announces reports whether a captured frame tells the segment that its
// sender owns ip: an ARP reply or gratuitous ARP from ip, or a neighbour
// advertisement for ip.
// overrides reports whether e is a frame a Linux neighbour table applies
// to an existing entry for ip on receipt: a gratuitous ARP (arp_process
// overrides for it) or a neighbour advertisement with the override flag.
func overrides(e Event, ip netip.Addr) bool {
	switch e.Op {
	case OpARPRequest:
		return e.Gratuitous && e.IP == ip
	case OpNA:
		return e.Override && e.Target == ip
	}
	return false
}

func announces(e Event, ip netip.Addr) bool {
	switch e.Op {
	case OpARPReply:
		return e.IP == ip
	case OpARPRequest:
		return e.Gratuitous && e.IP == ip
	case OpNA:
		return e.Target == ip
	}
	return false
}
