package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// Layout of the SVG, in pixels.
const (
	svgWidth   = 1200
	labelWidth = 190
	rightPad   = 20
	topPad     = 54
	laneHeight = 18
	laneGap    = 6
)

var nodePalette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

var stateColors = map[string]string{
	"BACKUP": "#c7c7c7", "FAULT": "#d62728", "STOP": "#555555", "DELETED": "#555555", "INIT": "#eeeeee", "DEAD": "#222222",
}

const (
	lostColor    = "#d62728"
	orphanColor  = "#d62728"
	unknownColor = "#7f7f7f"
)

type svgWriter struct {
	w   *bufio.Writer
	v   View
	y   int
	col map[string]string // host → color
}

func (s *svgWriter) x(at time.Duration) float64 {
	span := float64(s.v.To - s.v.From)
	if span <= 0 {
		span = 1
	}
	f := float64(at-s.v.From) / span
	f = math.Max(0, math.Min(1, f))
	return labelWidth + f*float64(svgWidth-labelWidth-rightPad)
}

func (s *svgWriter) printf(format string, args ...any) { fmt.Fprintf(s.w, format, args...) }

func (s *svgWriter) color(host string) string {
	if c, ok := s.col[host]; ok {
		return c
	}
	return unknownColor
}

// bar draws [from, to) in the current lane, in the upper half, lower half
// or full lane.
func (s *svgWriter) bar(from, to time.Duration, fill, part, title string) {
	if to <= s.v.From || from >= s.v.To {
		return
	}
	x0, x1 := s.x(from), s.x(to)
	w := math.Max(x1-x0, 0.6)
	y, h := s.y, laneHeight
	switch part {
	case "top":
		h = laneHeight / 2
	case "bottom":
		y, h = s.y+laneHeight/2, laneHeight/2
	}
	s.printf(`<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s"><title>%s</title></rect>`+"\n", x0, y, w, h, fill, html.EscapeString(title))
}

func (s *svgWriter) lane(label string) {
	s.y += laneHeight + laneGap
	s.printf(`<text x="%d" y="%d" class="lbl">%s</text>`+"\n", labelWidth-8, s.y+laneHeight-5, html.EscapeString(label))
	s.printf(`<rect x="%d" y="%d" width="%d" height="%d" class="lane"/>`+"\n", labelWidth, s.y, svgWidth-labelWidth-rightPad, laneHeight)
}

// WriteSVG draws the window as an SVG timeline: per node its keepalived
// state, its VIP addresses (IPv4 upper half, IPv6 lower half) and local
// routes (orphans in red); the router's neighbour entries for the VIPs,
// coloured by the host they point at; announcements and VRRP adverts on
// the switch; and the client's probes per VIP (coloured by who answered,
// red when lost, with outages shaded). Vertical lines mark faults.
func WriteSVG(w io.Writer, v View) error {
	v.defaults()
	s := &svgWriter{w: bufio.NewWriter(w), v: v, y: topPad - laneHeight - laneGap, col: map[string]string{}}
	for i, n := range v.Nodes {
		s.col[n] = nodePalette[i%len(nodePalette)]
	}
	trackHosts := map[string]bool{}
	type connKey struct {
		host string
		dst  string
	}
	var conns []connKey
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return (e.Kind == observe.KindTrack || e.Kind == observe.KindConn) && e.At <= v.To
	}) {
		if e.Kind == observe.KindTrack {
			trackHosts[e.Host] = true
		} else if k := (connKey{e.Host, e.IP.String()}); !slices.Contains(conns, k) && e.At >= v.From {
			conns = append(conns, k)
		}
	}
	lanes := 3*len(v.Nodes) + 2 + len(v.VIPs) + len(trackHosts) + len(conns)
	height := topPad + lanes*(laneHeight+laneGap) + 82
	s.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, height, svgWidth, height)
	s.printf(`<style>.lbl{text-anchor:end} .lane{fill:#fafafa;stroke:#e0e0e0} .ax{stroke:#999} .fault{stroke:#000;stroke-dasharray:4 3} .small{font-size:9px}</style>` + "\n")
	s.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	if v.Title != "" {
		s.printf(`<text x="10" y="16" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(v.Title))
	}
	end := v.To
	for _, n := range v.Nodes {
		s.lane(n + " " + v.Instance)
		for _, st := range v.TL.StateSpans(n, v.Instance, end) {
			fill := stateColors[st.State]
			if st.State == "MASTER" {
				fill = s.color(n)
			}
			if fill == "" {
				fill = unknownColor
			}
			s.bar(st.From, st.To, fill, "", fmt.Sprintf("%s %s %s..%s", n, st.State, v.rel(st.From), v.rel(st.To)))
		}
		s.lane(n + " VIP address")
		for i, ip := range v.VIPs {
			part := []string{"top", "bottom"}[i%2]
			for _, sp := range v.TL.AddrSpans(n, ip, end) {
				s.bar(sp.From, sp.To, s.color(n), part, fmt.Sprintf("%s holds %s %s..%s", n, ip, v.rel(sp.From), v.rel(sp.To)))
			}
		}
		s.lane(n + " VIP local route")
		for i, ip := range v.VIPs {
			part := []string{"top", "bottom"}[i%2]
			for _, sp := range v.TL.RouteSpans(n, ip, end) {
				s.bar(sp.From, sp.To, s.color(n), part, fmt.Sprintf("%s local route %s", n, ip))
			}
			for _, sp := range v.TL.OrphanSpans(n, ip, end, observe.DefaultTolerance) {
				s.bar(sp.From, sp.To, orphanColor, part, fmt.Sprintf("%s ORPHAN local route %s %s..%s", n, ip, v.rel(sp.From), v.rel(sp.To)))
			}
		}
		if trackHosts[n] {
			s.lane(n + " fence / maint = 1")
			s.trackBars(n, v.Instance+".fence", "top", end)
			s.trackBars(n, v.Instance+".maint", "bottom", end)
		}
	}

	s.lane(v.Router + " neighbour for VIP")
	for i, ip := range v.VIPs {
		part := []string{"top", "bottom"}[i%2]
		ev := v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindNeigh && e.Host == v.Router && e.IP == ip
		})
		for j, e := range ev {
			to := end
			if j+1 < len(ev) {
				to = ev[j+1].At
			}
			if e.MAC == "" || !e.Present {
				continue
			}
			s.bar(e.At, to, s.color(e.Owner), part, fmt.Sprintf("%s -> %s (%s) %s", ip, e.MAC, owner(e.Owner), e.NeighState))
		}
	}

	s.lane("switch: announcements, VRRP")
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindFrame && e.At >= v.From && e.At <= v.To
	}) {
		x := s.x(e.At)
		switch {
		case e.Op == observe.OpVRRP:
			c, h := s.color(e.Owner), 5
			if e.Priority == 0 {
				c, h = "#000", laneHeight
			}
			s.printf(`<line x1="%.2f" x2="%.2f" y1="%d" y2="%d" stroke="%s"><title>VRRP %s prio %d %s</title></line>`+"\n", x, x, s.y+laneHeight, s.y+laneHeight-h, c, owner(e.Owner), e.Priority, v.rel(e.At))
		case announcement(e):
			ip := e.IP
			if e.Op == observe.OpNA {
				ip = e.Target
			}
			if !slices.Contains(v.VIPs, ip) {
				continue
			}
			s.printf(`<line x1="%.2f" x2="%.2f" y1="%d" y2="%d" stroke="%s" stroke-width="1.5"><title>%s %s from %s %s</title></line>`+"\n", x, x, s.y, s.y+laneHeight-6, s.color(e.Owner), describe(e), ip, owner(e.Owner), v.rel(e.At))
		}
	}

	for _, ip := range v.VIPs {
		s.lane(fmt.Sprintf("%s -> %s", v.Client, ip))
		probes := v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindProbe && e.Host == v.Client && e.IP == ip && e.At >= v.From && e.At <= v.To
		})
		for i, e := range probes {
			to := e.At + 10*time.Millisecond
			if i+1 < len(probes) {
				to = probes[i+1].At
			}
			fill, title := lostColor, fmt.Sprintf("#%d lost %s", e.Seqno, v.rel(e.At))
			if e.OK {
				fill, title = s.color(e.Owner), fmt.Sprintf("#%d %s in %s %s", e.Seqno, e.Owner, e.RTT.Round(time.Microsecond), v.rel(e.At))
			}
			s.bar(e.At, to, fill, "", title)
		}
	}
	for _, k := range conns {
		s.lane(fmt.Sprintf("%s tcp -> %s", k.host, k.dst))
		ev := v.TL.Events(func(e observe.Event) bool {
			return e.Kind == observe.KindConn && e.Host == k.host && e.IP.String() == k.dst
		})
		for i, e := range ev {
			to := end
			if i+1 < len(ev) {
				to = ev[i+1].At
			}
			fill := lostColor
			switch {
			case e.Text == "answered":
				fill = s.color(e.Owner)
			case e.Text == "connected":
				fill = stateColors["BACKUP"]
			case e.Text == "stalled":
				fill = lostColor
			default: // error or closed: the connection is over
				fill = stateColors["DEAD"]
			}
			s.bar(e.At, to, fill, "", fmt.Sprintf("%s tcp %s -> %s: %s %s %s", k.host, e.Src, k.dst, e.Text, e.Owner, v.rel(e.At)))
		}
	}
	bottom := s.y + laneHeight
	// Outage shading covers the client probe lanes, above the tcp lanes.
	probeBottom := bottom - len(conns)*(laneHeight+laneGap)
	for _, o := range v.Outages {
		if o.To <= o.From {
			continue
		}
		x0, x1 := s.x(o.From), s.x(o.To)
		s.printf(`<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" fill-opacity="0.18"><title>client outage %s</title></rect>`+"\n",
			x0, probeBottom-len(v.VIPs)*(laneHeight+laneGap)+laneGap, math.Max(x1-x0, 1), len(v.VIPs)*(laneHeight+laneGap)-laneGap, lostColor, observe.FormatDur(o.Len()))
	}

	// Faults: dashed lines through every lane, labels staggered on top.
	faults := v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindFault && e.At >= v.From && e.At <= v.To
	})
	for i, e := range faults {
		x := s.x(e.At)
		s.printf(`<line x1="%.2f" x2="%.2f" y1="%d" y2="%d" class="fault"/>`+"\n", x, x, topPad-14+12*(i%2), bottom)
		s.printf(`<text x="%.2f" y="%d" class="small">%s</text>`+"\n", x+2, topPad-16+12*(i%2), html.EscapeString(e.Host+": "+e.Text))
	}
	s.axis(bottom + 4)
	s.legend(bottom + 56)
	s.printf("</svg>\n")
	return s.w.Flush()
}

// trackBars draws when host's track file name said 1 (FAULT requested).
func (s *svgWriter) trackBars(host, name, part string, end time.Duration) {
	ev := s.v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindTrack && e.Host == host && e.Key == name
	})
	for i, e := range ev {
		if e.Text != "1" {
			continue
		}
		to := end
		if i+1 < len(ev) {
			to = ev[i+1].At
		}
		s.bar(e.At, to, lostColor, part, fmt.Sprintf("%s %s = 1 %s..%s", host, name, s.v.rel(e.At), s.v.rel(to)))
	}
}

// axis draws time ticks relative to the origin.
func (s *svgWriter) axis(y int) {
	s.printf(`<line x1="%d" x2="%d" y1="%d" y2="%d" class="ax"/>`+"\n", labelWidth, svgWidth-rightPad, y, y)
	span := s.v.To - s.v.From
	step := niceStep(span / 10)
	first := s.v.Origin + ((s.v.From-s.v.Origin)/step)*step
	for t := first; t <= s.v.To; t += step {
		if t < s.v.From {
			continue
		}
		x := s.x(t)
		s.printf(`<line x1="%.2f" x2="%.2f" y1="%d" y2="%d" class="ax"/>`+"\n", x, x, y, y+5)
		rel := t - s.v.Origin
		label := fmt.Sprintf("%+gms", float64(rel)/float64(time.Millisecond))
		if step >= time.Second {
			label = fmt.Sprintf("%+gs", rel.Seconds())
		}
		s.printf(`<text x="%.2f" y="%d" text-anchor="middle" class="small">%s</text>`+"\n", x, y+16, label)
	}
	s.printf(`<text x="%d" y="%d" class="small">t = 0 at lab time %s</text>`+"\n", labelWidth, y+30, observe.FormatAt(s.v.Origin))
}

func niceStep(d time.Duration) time.Duration {
	for _, s := range []time.Duration{
		time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
	} {
		if s >= d {
			return s
		}
	}
	return time.Minute
}

func (s *svgWriter) legend(y int) {
	x := labelWidth
	item := func(color, text string) {
		s.printf(`<rect x="%d" y="%d" width="12" height="10" fill="%s"/><text x="%d" y="%d" class="small">%s</text>`+"\n", x, y-9, color, x+16, y, html.EscapeString(text))
		x += 22 + 6*len(text)
	}
	for _, n := range s.v.Nodes {
		item(s.color(n), n+" (MASTER / holds / points at)")
	}
	item(stateColors["BACKUP"], "BACKUP")
	item(stateColors["DEAD"], "STOP / keepalived dead")
	item(stateColors["FAULT"], "FAULT / lost probe / orphan route")
	s.printf(`<text x="%d" y="%d" class="small">address and route lanes: upper half first VIP, lower half second VIP; black VRRP tick = priority 0</text>`+"\n", labelWidth, y+16)
}
