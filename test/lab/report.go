package lab

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/report"
)

// View is the report view of a scenario result: from shortly before the
// fault to the end of the window, with t=0 at the fault.
func (l *Lab) View(r Result) report.View {
	v := report.View{
		Title:    r.Name,
		TL:       l.TL,
		From:     max(r.Start-200*time.Millisecond, 0),
		To:       r.End,
		Origin:   r.Fault,
		VIPs:     l.VIPs(),
		Instance: Instance,
	}
	for _, n := range l.Nodes {
		v.Nodes = append(v.Nodes, n.Name)
	}
	for _, f := range []observe.Failover{r.V4, r.V6, r.HealV4, r.HealV6} {
		if f.FirstLost != observe.None && f.FirstNewAnswer != observe.None && f.FirstNewAnswer > f.FirstLost {
			v.Outages = append(v.Outages, observe.Span{From: f.FirstLost, To: f.FirstNewAnswer})
		}
	}
	return v
}

// Summary prints the metrics table of a result.
func (l *Lab) Summary(w io.Writer, r Result) error {
	var cols []report.Column
	add := func(name string, f observe.Failover) {
		if f.VIP.IsValid() {
			cols = append(cols, report.Column{Name: name, F: f})
		}
	}
	add("IPv4", r.V4)
	add("IPv6", r.V6)
	if r.Heal != 0 {
		label := r.HealLabel
		if label == "" {
			label = "heal"
		}
		add(label+" IPv4", r.HealV4)
		add(label+" IPv6", r.HealV6)
	}
	extra := append([][2]string{{"dual MASTER (state reports)", observe.FormatDur(r.DualMaster)}}, r.Extra...)
	return report.WriteSummary(w, cols, extra)
}

// Report writes the text timeline and the summary of a result to w, and
// saves them with the SVG timeline in the results directory as
// <slug>.txt and <slug>.svg. It returns the SVG's path.
func (l *Lab) Report(w io.Writer, slug string, r Result) (string, error) {
	var buf bytes.Buffer
	v := l.View(r)
	if err := report.WriteText(&buf, v); err != nil {
		return "", err
	}
	buf.WriteString("\n")
	if err := l.Summary(&buf, r); err != nil {
		return "", err
	}
	if w != nil {
		if _, err := w.Write(buf.Bytes()); err != nil {
			return "", err
		}
	}
	slug = sanitize(strings.ToLower(slug))
	if err := os.WriteFile(filepath.Join(l.Dir, slug+".txt"), buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("save report %s: %w", slug, err)
	}
	svgPath := filepath.Join(l.Dir, slug+".svg")
	f, err := os.Create(svgPath)
	if err != nil {
		return "", fmt.Errorf("save report %s: %w", slug, err)
	}
	defer f.Close()
	if err := report.WriteSVG(f, v); err != nil {
		return "", fmt.Errorf("save report %s: %w", slug, err)
	}
	return svgPath, f.Close()
}
