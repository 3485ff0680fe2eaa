package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Rule is one alerting rule of a rule file.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ReadRules reads the alerting rules of a Prometheus rule file.
func ReadRules(path string) ([]Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	var f struct {
		Groups []struct {
			Rules []Rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read rules %s: %w", path, err)
	}
	var out []Rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// Firing is an alert expected to fire at a step, with the labels its
// expression gives it (the rule's own labels are added).
type Firing struct {
	Alert  string
	Step   int
	Labels []map[string]string // one per alert instance
}

// Replay is a promtool rule test of a recording: every alert of rules is
// evaluated at every step; the alerts in fire must fire at their step with
// exactly the labels given, and must not before quietUntil; every other
// step of an alert not in fire must show nothing when quiet is set.
type Replay struct {
	RuleFile string
	Rules    []Rule
	Rec      *Recording
	Fire     []Firing
	// Quiet: no alert fires at any step (a scenario that must fire
	// nothing); otherwise only the alerts in Fire are checked.
	Quiet bool
	// QuietUntil is the step before which the alerts in Fire must not fire.
	QuietUntil int
}

// Series renders the recording as promtool input series: one value per
// step, "stale" where a series that was there is gone (a failed scrape,
// or a series the target stopped exporting: Prometheus writes a staleness
// marker), "_" where it never was.
func (r *Recording) Series() []map[string]string {
	keys := map[string]bool{}
	for _, st := range r.Steps {
		for k := range st {
			keys[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	out := make([]map[string]string, 0, len(sorted))
	for _, k := range sorted {
		vals := make([]string, len(r.Steps))
		was := false
		for i, st := range r.Steps {
			v, ok := st[k]
			switch {
			case ok:
				vals[i] = strconv.FormatFloat(v, 'g', -1, 64)
			case was:
				vals[i] = "stale"
			default:
				vals[i] = "_"
			}
			was = ok
		}
		out = append(out, map[string]string{"series": k, "values": strings.Join(vals, " ")})
	}
	return out
}

var labelRef = regexp.MustCompile(`\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// expand renders an annotation template that refers only to $labels.
func expand(tmpl string, labels map[string]string) (string, error) {
	if strings.Contains(labelRef.ReplaceAllString(tmpl, ""), "{{") {
		return "", fmt.Errorf("annotation %q uses more than $labels", tmpl)
	}
	return labelRef.ReplaceAllStringFunc(tmpl, func(m string) string {
		return labels[labelRef.FindStringSubmatch(m)[1]]
	}), nil
}

// Test renders the promtool test file (JSON, which YAML reads).
func (rp Replay) Test() ([]byte, error) {
	byName := map[string]Rule{}
	for _, r := range rp.Rules {
		byName[r.Alert] = r
	}
	type expAlert struct {
		Labels      map[string]string `json:"exp_labels"`
		Annotations map[string]string `json:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime  string     `json:"eval_time"`
		Alertname string     `json:"alertname"`
		ExpAlerts []expAlert `json:"exp_alerts"`
	}
	at := func(step int) string { return (rp.Rec.Interval * time.Duration(step)).String() }
	var tests []alertTest
	firing := map[string]bool{}
	for _, f := range rp.Fire {
		r, ok := byName[f.Alert]
		if !ok {
			return nil, fmt.Errorf("replay: no rule %s", f.Alert)
		}
		firing[f.Alert] = true
		t := alertTest{EvalTime: at(f.Step), Alertname: f.Alert, ExpAlerts: []expAlert{}}
		for _, ls := range f.Labels {
			all := map[string]string{}
			for k, v := range ls {
				all[k] = v
			}
			for k, v := range r.Labels {
				all[k] = v
			}
			ann := map[string]string{}
			for k, tmpl := range r.Annotations {
				s, err := expand(tmpl, all)
				if err != nil {
					return nil, err
				}
				ann[k] = s
			}
			t.ExpAlerts = append(t.ExpAlerts, expAlert{Labels: all, Annotations: ann})
		}
		tests = append(tests, t)
		for s := 0; s < rp.QuietUntil; s++ {
			tests = append(tests, alertTest{EvalTime: at(s), Alertname: f.Alert, ExpAlerts: []expAlert{}})
		}
	}
	if rp.Quiet {
		for _, r := range rp.Rules {
			if firing[r.Alert] {
				continue
			}
			for s := range rp.Rec.Steps {
				tests = append(tests, alertTest{EvalTime: at(s), Alertname: r.Alert, ExpAlerts: []expAlert{}})
			}
		}
	}
	doc := map[string]any{
		"rule_files":          []string{rp.RuleFile},
		"evaluation_interval": rp.Rec.Interval.String(),
		"tests": []any{map[string]any{
			"interval":        rp.Rec.Interval.String(),
			"input_series":    rp.Rec.Series(),
			"alert_rule_test": tests,
		}},
	}
	return json.MarshalIndent(doc, "", " ")
}
