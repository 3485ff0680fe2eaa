// Package report renders a lab timeline for people: a short text
// timeline, a summary table of failover metrics, and an SVG with one lane
// per node (keepalived state, VIP, local route), the router's neighbour
// entry, announcements on the switch and the client's probes.
package report

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// View selects what a report shows.
type View struct {
	Title    string
	TL       *observe.Timeline
	From, To time.Duration // window of lab time
	Origin   time.Duration // printed as t=0 (the fault)
	Nodes    []string      // keepalived hosts, in lane order
	Instance string        // keepalived instance, VI_1 when empty
	VIPs     []netip.Addr  // the floating addresses
	Router   string        // "router" when empty
	Client   string        // "client" when empty
	// Outages shade the client lane (e.g. Failover.FirstLost to
	// FirstNewAnswer).
	Outages []observe.Span
	// Brief keeps the text timeline to what a reader needs to follow the
	// story: no local-route changes, ARP replies, solicited NAs, lease
	// renewals or process starts, VRRP adverts only at priority 0.
	Brief bool
}

func (v *View) defaults() {
	if v.Instance == "" {
		v.Instance = "VI_1"
	}
	if v.Router == "" {
		v.Router = "router"
	}
	if v.Client == "" {
		v.Client = "client"
	}
	if v.To == 0 {
		v.To = v.TL.Now()
	}
}

func (v *View) rel(at time.Duration) string {
	return fmt.Sprintf("%+9.1fms", float64(at-v.Origin)/float64(time.Millisecond))
}

// line is one row of the text timeline.
type line struct {
	at   time.Duration
	host string
	text string
}

// WriteText prints the significant events of the window, one per line,
// relative to the origin: faults, processes, state changes, VIP address
// and local-route changes, router neighbour MAC changes, announcement
// bursts for the VIPs, VRRP priority changes, and the client's probe
// transitions (answering host changes, losses).
func WriteText(w io.Writer, v View) error {
	v.defaults()
	isVIP := func(a netip.Addr) bool { return slices.Contains(v.VIPs, a) }
	var lines []line
	add := func(at time.Duration, host, format string, args ...any) {
		lines = append(lines, line{at, host, fmt.Sprintf(format, args...)})
	}
	lastMAC := map[netip.Addr]string{}
	lastPrio := map[string]int{}
	type burst struct {
		key   string
		at    time.Duration
		last  time.Duration
		count int
		idx   int
	}
	bursts := map[string]*burst{}
	type probeState struct {
		owner    string // "" = losing
		lostFrom int
		lost     int
	}
	probes := map[netip.Addr]*probeState{}

	for _, e := range v.TL.Events(nil) {
		// State before the window still matters for "changes".
		before := e.At < v.From
		if e.At > v.To {
			break
		}
		switch e.Kind {
		case observe.KindFault, observe.KindProcess, observe.KindNote, observe.KindLease:
			if v.Brief && (e.Kind == observe.KindProcess && strings.Contains(e.Text, " started") ||
				e.Kind == observe.KindLease && e.Text != "delete" || e.Kind == observe.KindNote) {
				continue
			}
			if !before {
				tag := strings.ToUpper(e.Kind.String())
				if e.Kind == observe.KindFault {
					// Marks are what the lab did: faults, but also a planned
					// handover or a reload.
					tag = "EVENT"
				}
				text := e.Text
				if e.Kind == observe.KindLease {
					text = fmt.Sprintf("%s %s lease %x", e.Text, e.Key, e.Lease)
				}
				add(e.At, e.Host, "%s %s", tag, text)
			}
		case observe.KindTrack:
			if !before {
				text := e.Text
				if text == "" {
					text = "(empty)"
				}
				add(e.At, e.Host, "track file %s = %s", e.Key, text)
			}
		case observe.KindConn:
			if !before {
				served := ""
				if e.Owner != "" {
					served = " by " + e.Owner
				}
				add(e.At, e.Host, "tcp client %s -> %s: %s%s", e.Src, e.IP, e.Text, served)
			}
		case observe.KindState:
			if !before && e.Instance == v.Instance {
				prio := ""
				if e.Priority >= 0 {
					prio = fmt.Sprintf(" (prio %d)", e.Priority)
				}
				add(e.At, e.Host, "%s %s%s", e.Instance, e.State, prio)
			}
		case observe.KindAddr:
			if !before && isVIP(e.IP) {
				add(e.At, e.Host, "address %s %s", sign(e.Present), e.Prefix)
			}
		case observe.KindRoute:
			if !before && isVIP(e.IP) && !v.Brief {
				src := ""
				if e.Src.IsValid() {
					src = " src " + e.Src.String()
				}
				add(e.At, e.Host, "local route %s %s%s proto %d", sign(e.Present), e.IP, src, e.Proto)
			}
		case observe.KindNeigh:
			if e.Host != v.Router || !isVIP(e.IP) || lastMAC[e.IP] == e.MAC {
				continue
			}
			lastMAC[e.IP] = e.MAC
			if before {
				continue
			}
			if e.MAC == "" {
				add(e.At, e.Host, "neighbour %s unresolved (%s)", e.IP, e.NeighState)
			} else {
				add(e.At, e.Host, "neighbour %s -> %s (%s)", e.IP, e.MAC, owner(e.Owner))
			}
		case observe.KindFrame:
			if e.Op == observe.OpVRRP {
				old, seen := lastPrio[e.MAC]
				lastPrio[e.MAC] = e.Priority
				if !before && (!seen || old != e.Priority) && (!v.Brief || e.Priority == 0) {
					add(e.At, e.Host, "VRRP advert from %s prio %d", owner(e.Owner), e.Priority)
				}
				continue
			}
			ip := e.IP
			if e.Op == observe.OpNA {
				ip = e.Target
			}
			if before || !isVIP(ip) || !announcement(e) {
				continue
			}
			if v.Brief && (e.Op == observe.OpARPReply || e.Op == observe.OpNA && e.Solicited) {
				continue
			}
			key := e.Op + "|" + e.MAC + "|" + ip.String()
			if b := bursts[key]; b != nil && e.At-b.last < 50*time.Millisecond {
				b.count++
				b.last = e.At
				lines[b.idx].text = fmt.Sprintf("%s for %s from %s ×%d", describe(e), ip, owner(e.Owner), b.count)
				continue
			}
			add(e.At, e.Host, "%s for %s from %s", describe(e), ip, owner(e.Owner))
			bursts[key] = &burst{key: key, at: e.At, last: e.At, count: 1, idx: len(lines) - 1}
		case observe.KindProbe:
			if e.Host != v.Client {
				continue
			}
			ps := probes[e.IP]
			if ps == nil {
				ps = &probeState{owner: "?"}
				probes[e.IP] = ps
			}
			switch {
			case !e.OK:
				if ps.owner != "" {
					ps.owner, ps.lostFrom, ps.lost = "", e.Seqno, 0
					if !before {
						add(e.At, e.Host, "probes to %s lost from #%d", e.IP, e.Seqno)
					}
				}
				ps.lost++
			case e.Owner != ps.owner:
				if !before {
					if ps.owner == "" {
						add(e.At, e.Host, "probes to %s answered by %s from #%d (%d lost)", e.IP, e.Owner, e.Seqno, ps.lost)
					} else {
						add(e.At, e.Host, "probes to %s answered by %s from #%d", e.IP, e.Owner, e.Seqno)
					}
				}
				ps.owner = e.Owner
			}
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return int(a.at - b.at) })
	if v.Title != "" {
		fmt.Fprintf(w, "== %s\n", v.Title)
	}
	fmt.Fprintf(w, "   t=0 is lab time %s; window %s .. %s\n", observe.FormatAt(v.Origin), v.rel(v.From), v.rel(v.To))
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%s  %-7s %s\n", v.rel(l.at), l.host, l.text); err != nil {
			return err
		}
	}
	return nil
}

func sign(present bool) string {
	if present {
		return "+"
	}
	return "-"
}

func owner(o string) string {
	if o == "" {
		return "unknown host"
	}
	return o
}

func announcement(e observe.Event) bool {
	switch e.Op {
	case observe.OpARPReply, observe.OpNA:
		return true
	case observe.OpARPRequest:
		return e.Gratuitous
	}
	return false
}

func describe(e observe.Event) string {
	switch e.Op {
	case observe.OpARPReply:
		return "ARP reply"
	case observe.OpARPRequest:
		return "gratuitous ARP"
	case observe.OpNA:
		if e.Solicited {
			return "solicited NA"
		}
		if e.Override {
			return "unsolicited NA (override)"
		}
		return "unsolicited NA"
	}
	return e.Op
}

// Column is one set of failover metrics in the summary table.
type Column struct {
	Name string
	F    observe.Failover
}

// WriteSummary prints the failover metrics side by side, one column per
// failover (e.g. IPv4, IPv6), plus extra rows (name, value) at the end.
func WriteSummary(w io.Writer, cols []Column, extra [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	row := func(name string, f func(observe.Failover) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, c := range cols {
			fmt.Fprintf(tw, " %s\t", f(c.F))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "metric\t")
	for _, c := range cols {
		fmt.Fprintf(tw, " %s\t", c.Name)
	}
	fmt.Fprintln(tw)
	d := observe.FormatDur
	row("moved", func(f observe.Failover) string { return fmt.Sprintf("%s -> %s", f.From, orDash(f.To)) })
	row("takeover", func(f observe.Failover) string { return d(f.Takeover) })
	row("client outage", func(f observe.Failover) string { return d(f.Outage) })
	row("client switch", func(f observe.Failover) string { return d(f.ClientSwitch) })
	row("lost probes", func(f observe.Failover) string { return fmt.Sprint(f.LostProbes) })
	row("answers from old owner", func(f observe.Failover) string { return fmt.Sprint(f.OldAnswers) })
	row("router convergence", func(f observe.Failover) string { return d(f.RouterConvergence) })
	row("dual-owner time", func(f observe.Failover) string { return d(f.DualOwner) })
	hosts := map[string]bool{}
	for _, c := range cols {
		for h := range c.F.Orphan {
			hosts[h] = true
		}
	}
	for _, h := range sortedKeys(hosts) {
		row("orphan route "+h, func(f observe.Failover) string {
			if v, ok := f.Orphan[h]; ok {
				return d(v)
			}
			return "-"
		})
	}
	row("foreign announcements", func(f observe.Failover) string { return fmt.Sprint(f.ForeignAnnounce) })
	for _, x := range extra {
		fmt.Fprintf(tw, "%s\t %s\t\n", x[0], x[1])
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
