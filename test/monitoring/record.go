// Package monitoring proves vipkit's alert rules (contrib/prometheus) and
// dashboard (contrib/grafana) against what fenced really exports: a
// Recorder scrapes every lab node's fenced as Prometheus would while a
// scenario runs, and Replay turns the recording into a promtool rule test
// that evaluates the shipped rules on it.
package monitoring

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Job is the job name the rules expect fenced to be scraped as.
const Job = "vipkit"

// Target is one scrape target: a node's fenced.
type Target struct {
	Name   string // the instance label, as a target's address would be
	Scrape func(ctx context.Context) ([]byte, error)
}

// Recording is what the scrapes saw, one step per interval.
type Recording struct {
	Interval time.Duration
	// Steps holds, per step, every series (Key) with its value; a target
	// whose scrape failed contributes only up 0, as in Prometheus.
	Steps []map[string]float64
	// Families names every metric family a scrape returned, with its type.
	Families map[string]dto.MetricType
	marks    map[string]int
}

// Mark is the step a named moment fell in (Recorder.Mark).
func (r *Recording) Mark(name string) (int, bool) {
	s, ok := r.marks[name]
	return s, ok
}

// Recorder scrapes targets every interval until stopped.
type Recorder struct {
	Targets  []Target
	Interval time.Duration
	// Timeout bounds one scrape (Prometheus's scrape_timeout).
	Timeout time.Duration

	mu     sync.Mutex
	rec    *Recording
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start begins scraping; Stop ends it and returns the recording.
func (r *Recorder) Start(ctx context.Context) {
	r.rec = &Recording{Interval: r.Interval, Families: map[string]dto.MetricType{}, marks: map[string]int{}}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.Interval)
		defer t.Stop()
		for {
			r.step(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Mark names the step now being recorded (the next one to start).
func (r *Recorder) Mark(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.marks[name] = len(r.rec.Steps)
}

// Stop ends the recording.
func (r *Recorder) Stop() (*Recording, error) {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec, r.err
}

// step scrapes every target once, all at the same moment as far as the
// recording goes (one step).
func (r *Recorder) step(ctx context.Context) {
	series := map[string]float64{}
	types := map[string]dto.MetricType{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range r.Targets {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, r.Timeout)
			body, err := t.Scrape(sctx)
			cancel()
			up := 1.0
			var got map[string]float64
			var fams map[string]dto.MetricType
			if err == nil {
				got, fams, err = Flatten(body, map[string]string{"job": Job, "instance": t.Name})
			}
			if err != nil {
				up, got = 0, nil
			}
			mu.Lock()
			defer mu.Unlock()
			series[Key("up", map[string]string{"job": Job, "instance": t.Name})] = up
			for k, v := range got {
				series[k] = v
			}
			for k, v := range fams {
				types[k] = v
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // cut short by Stop: not a step
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.Steps = append(r.rec.Steps, series)
	for k, v := range types {
		r.rec.Families[k] = v
	}
}

// Flatten parses an exposition into series keys and values, with the
// target's labels attached the way Prometheus attaches them
// (honor_labels: false: a label of the target's wins, the exported one is
// kept as exported_<name>). Histograms become their _bucket, _sum and
// _count series.
func Flatten(body []byte, target map[string]string) (map[string]float64, map[string]dto.MetricType, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	types := map[string]dto.MetricType{}
	for name, mf := range fams {
		types[name] = mf.GetType()
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				n := l.GetName()
				if _, clash := target[n]; clash {
					n = "exported_" + n
				}
				labels[n] = l.GetValue()
			}
			for k, v := range target {
				labels[k] = v
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[Key(name, labels)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[Key(name, labels)] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[Key(name, labels)] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					le := b.GetUpperBound()
					inf = inf || math.IsInf(le, 1)
					out[Key(name+"_bucket", with(labels, "le", formatLe(le)))] = float64(b.GetCumulativeCount())
				}
				if !inf {
					out[Key(name+"_bucket", with(labels, "le", "+Inf"))] = float64(h.GetSampleCount())
				}
				out[Key(name+"_sum", labels)] = h.GetSampleSum()
				out[Key(name+"_count", labels)] = float64(h.GetSampleCount())
			default:
				return nil, nil, fmt.Errorf("parse metrics: %s is a %s, which fenced does not export", name, mf.GetType())
			}
		}
	}
	return out, types, nil
}

func formatLe(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func with(labels map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for a, b := range labels {
		out[a] = b
	}
	out[k] = v
	return out
}

// Key is a series as PromQL writes it: name{a="x",b="y"}, labels sorted.
func Key(name string, labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%s", n, strconv.Quote(labels[n]))
	}
	b.WriteByte('}')
	return b.String()
}
