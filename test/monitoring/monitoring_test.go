package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vipkit/vipkit/pkg/exporter"
	"github.com/vipkit/vipkit/pkg/supervisor"
	"github.com/vipkit/vipkit/test/promtool"
	"github.com/vipkit/vipkit/test/repo"
)

func contribFile(t *testing.T, parts ...string) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root, "contrib"}, parts...)...)
}

// The shipped rules are valid, pass their unit tests, and each names a
// runbook section that docs/monitoring.md has.
func TestRulesCheckAndUnitTests(t *testing.T) {
	rules := contribFile(t, "prometheus", "vipkit.rules.yml")
	if out, ok := promtool.Run(t, nil, "check", "rules", rules); !ok {
		t.Fatalf("promtool check rules:\n%s", out)
	}
	if out, ok := promtool.Run(t, nil, "test", "rules", contribFile(t, "prometheus", "vipkit.rules.test.yml")); !ok {
		t.Fatalf("promtool test rules:\n%s", out)
	}
	rs, err := ReadRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := repo.Root()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		want := "docs/monitoring.md#" + strings.ToLower(r.Alert)
		if r.Annotations["runbook"] != want {
			t.Errorf("%s: runbook %q, want %q", r.Alert, r.Annotations["runbook"], want)
		}
		if !strings.Contains(string(doc), "\n### "+r.Alert+"\n") {
			t.Errorf("docs/monitoring.md has no section ### %s", r.Alert)
		}
	}
}

// A replay of a made-up recording: the series and staleness promtool gets,
// and a test that fails when the rule does not fire as claimed.
func TestReplayRendersStalenessAndExpectations(t *testing.T) {
	up := Key("up", map[string]string{"job": Job, "instance": "node-a"})
	rec := &Recording{Interval: 1e9, Steps: []map[string]float64{{up: 1}, {up: 1}}, marks: map[string]int{}}
	for range 14 {
		rec.Steps = append(rec.Steps, map[string]float64{up: 0})
	}
	hb := Key("vipkit_fenced_heartbeat_age_seconds", map[string]string{"job": Job, "instance": "node-a"})
	rec.Steps[0][hb], rec.Steps[1][hb] = 0.5, 0.5
	var series []string
	for _, s := range rec.Series() {
		series = append(series, s["series"]+" "+s["values"])
	}
	if want := hb + " 0.5 0.5 stale _ _ _ _ _ _ _ _ _ _ _ _ _"; !slices.Contains(series, want) {
		t.Fatalf("series %q lack %q", series, want)
	}
	rulesPath := contribFile(t, "prometheus", "vipkit.rules.yml")
	rules, err := ReadRules(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fire := []Firing{{Alert: "VipkitFencedDown", Step: 15, Labels: []map[string]string{{"job": Job, "instance": "node-a"}}}}
	ok := Replay{RuleFile: rulesPath, Rules: rules, Rec: rec, Fire: fire, QuietUntil: 2}
	doc, err := ok.Test()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ok.json")
	os.WriteFile(path, doc, 0o644)
	if out, passed := promtool.Run(t, nil, "test", "rules", path); !passed {
		t.Fatalf("fenced down for 14 s does not fire VipkitFencedDown:\n%s", out)
	}
	// Expecting it 5 s after the scrapes failed (within its for: 10s)
	// must fail: the replay checks, it does not rubber-stamp.
	early := ok
	early.Fire = []Firing{{Alert: "VipkitFencedDown", Step: 7, Labels: fire[0].Labels}}
	doc, _ = early.Test()
	os.WriteFile(path, doc, 0o644)
	if _, passed := promtool.Run(t, nil, "test", "rules", path); passed {
		t.Fatal("a replay expecting an alert before its for: passed")
	}
	// A quiet replay of the same recording fails too.
	quiet := Replay{RuleFile: rulesPath, Rules: rules, Rec: rec, Quiet: true}
	doc, _ = quiet.Test()
	os.WriteFile(path, doc, 0o644)
	if _, passed := promtool.Run(t, nil, "test", "rules", path); passed {
		t.Fatal("a quiet replay of a dead fenced passed")
	}
}

// Flatten attaches the target's labels as Prometheus does: the target's
// instance wins, an exported one is kept as exported_instance.
func TestFlattenAsPrometheusScrapes(t *testing.T) {
	body := []byte(`# HELP vipkit_fenced_instance_fenced x
# TYPE vipkit_fenced_instance_fenced gauge
vipkit_fenced_instance_fenced{cluster="main",instance="VI_1",vrrp_instance="VI_1"} 1
# HELP h x
# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
`)
	got, types, err := Flatten(body, map[string]string{"job": Job, "instance": "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{
		`vipkit_fenced_instance_fenced{cluster="main",exported_instance="VI_1",instance="node-a",job="vipkit",vrrp_instance="VI_1"}`: 1,
		`h_bucket{instance="node-a",job="vipkit",le="0.5"}`:                                                                          1,
		`h_bucket{instance="node-a",job="vipkit",le="+Inf"}`:                                                                         2,
		`h_count{instance="node-a",job="vipkit"}`:                                                                                    2,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if types["h"] != dto.MetricType_HISTOGRAM {
		t.Errorf("type of h: %v", types["h"])
	}
}

// dashboardQueries lists every PromQL query of the shipped dashboard.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(contribFile(t, "grafana", "vipkit.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("contrib/grafana/vipkit.json: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			out = append(out, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		// label_values(METRIC, LABEL): Grafana's, not PromQL; the metric
		// is a query of its own.
		if m := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),\s*[a-zA-Z_]+\)$`).FindStringSubmatch(v.Definition); m != nil {
			out = append(out, m[1])
		} else {
			t.Errorf("template variable query %q is not label_values(METRIC, LABEL)", v.Definition)
		}
	}
	return out
}

// promQL makes a dashboard query plain PromQL: Grafana's variables
// replaced by what they stand for.
func promQL(q string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$node", ".+").Replace(q)
}

var (
	quoted   = regexp.MustCompile(`"(\\.|[^"\\])*"`)
	braces   = regexp.MustCompile(`\{[^{}]*\}`)
	brackets = regexp.MustCompile(`\[[^\]]*\]`)
	grouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// PromQL's functions, aggregations and keywords the dashboard uses.
	notMetric = map[string]bool{"sum": true, "max": true, "min": true, "count": true, "avg": true, "rate": true, "increase": true,
		"histogram_quantile": true, "max_over_time": true, "and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"group_left": true, "group_right": true}
)

// metricNames lists the metric names a PromQL expression selects.
func metricNames(q string) []string {
	q = quoted.ReplaceAllString(promQL(q), `""`)
	q = braces.ReplaceAllString(q, " ")
	q = brackets.ReplaceAllString(q, " ")
	q = grouping.ReplaceAllString(q, " ")
	var out []string
	for _, id := range ident.FindAllString(q, -1) {
		if !notMetric[id] && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// exported is every metric family fenced describes, with the series names
// a histogram adds.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := supervisor.NewMetrics(&supervisor.Supervisor{}, prometheus.NewRegistry())
	ch := make(chan *prometheus.Desc, 200)
	go func() {
		m.Describe(ch)
		for _, c := range []prometheus.Collector{m.GuardWindow, m.FenceDuration, m.RenewLatency, m.RenewMargin, m.GuardRemovals, m.Defended, m.ScrapeErrors} {
			c.Describe(ch)
		}
		exporter.NewSeen(exporter.Seen{}).Describe(ch)
		close(ch)
	}()
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{"up": true} // Prometheus's own, per target
	for d := range ch {
		if n := name.FindStringSubmatch(d.String()); n != nil {
			out[n[1]] = true
		}
	}
	return out
}

// known reports whether name is a series of the families in fams (a
// histogram's _bucket, _sum, _count are its series).
func known(name string, fams map[string]bool, histogram func(string) bool) bool {
	if fams[name] {
		return true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && fams[base] && histogram(base) {
			return true
		}
	}
	return false
}

// Every dashboard query is PromQL that Prometheus parses (promtool checks
// it as a recording rule) and names only metrics fenced describes.
func TestDashboardQueries(t *testing.T) {
	qs := dashboardQueries(t)
	if len(qs) < 10 {
		t.Fatalf("the dashboard has %d queries", len(qs))
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range qs {
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %q\n", i, promQL(q))
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	os.WriteFile(path, []byte(rules.String()), 0o644)
	if out, ok := promtool.Run(t, nil, "check", "rules", path); !ok {
		t.Fatalf("dashboard queries do not parse:\n%s", out)
	}
	fams := exported(t)
	// Histograms, by what fenced describes of them; the lab test checks
	// the types against real scrapes.
	hist := func(n string) bool { return strings.HasSuffix(n, "_seconds") || strings.HasSuffix(n, "_ratio") }
	for _, q := range qs {
		for _, n := range metricNames(q) {
			if !known(n, fams, hist) {
				t.Errorf("dashboard query %q names %s, which fenced does not export", q, n)
			}
		}
	}
	// And the check itself catches a misspelt name.
	if known("vipkit_vip_hold", fams, hist) || !slices.Equal(metricNames(`sum by (le) (rate(vipkit_hook_duration_seconds_bucket{instance=~"$node"}[$__rate_interval])) > 0.5 * up`), []string{"vipkit_hook_duration_seconds_bucket", "up"}) {
		t.Fatal("metricNames/known do not tell names apart")
	}
}

// checkDashboard: every metric a dashboard query names was in a real
// scrape of fenced in the lab, a histogram's series only for a histogram.
func checkDashboard(t *testing.T, families map[string]dto.MetricType) {
	t.Helper()
	fams := map[string]bool{"up": true}
	for f := range families {
		fams[f] = true
	}
	hist := func(n string) bool { return families[n] == dto.MetricType_HISTOGRAM }
	var names []string
	for _, q := range dashboardQueries(t) {
		for _, n := range metricNames(q) {
			if !known(n, fams, hist) {
				t.Errorf("dashboard query %q names %s, which fenced did not export in the lab", q, n)
			}
			names = append(names, n)
		}
	}
	sort.Strings(names)
	t.Logf("dashboard: %d metric names, all exported by fenced in the lab", len(slices.Compact(names)))
}
