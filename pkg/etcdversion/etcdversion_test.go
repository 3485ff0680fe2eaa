package etcdversion

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		version string
		bugs    []string
		upgrade string // the release Advice names
	}{
		{"3.3.27", []string{"etcd#15247", "etcd#20615"}, "3.4.38"},
		{"3.4.23", []string{"etcd#15247", "etcd#20615"}, "3.4.38"}, // Debian 12's etcd-server
		{"3.4.30", []string{"etcd#15247", "etcd#20615"}, "3.4.38"},
		{"3.4.31", []string{"etcd#20615"}, "3.4.38"},
		{"3.4.37", []string{"etcd#20615"}, "3.4.38"},
		{"3.4.38", nil, ""},
		{"3.5.0", []string{"etcd#15247", "etcd#20615"}, "3.5.23"},
		{"3.5.12", []string{"etcd#15247", "etcd#20615"}, "3.5.23"},
		{"3.5.13", []string{"etcd#20615"}, "3.5.23"},
		{"3.5.22", []string{"etcd#20615"}, "3.5.23"},
		{"3.5.23", nil, ""},
		{"3.6.0", []string{"etcd#20615"}, "3.6.5"},
		{"v3.6.4", []string{"etcd#20615"}, "3.6.5"},
		{"3.6.5-rc.0", []string{"etcd#20615"}, "3.6.5"},
		{"3.6.5", nil, ""},
		{"3.6.16", nil, ""}, // the pinned build
		{"3.7.0", nil, ""},
		{"4.0.0", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			v, err := Parse(tt.version)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range Check(v) {
				got = append(got, b.Issue)
			}
			if strings.Join(got, ",") != strings.Join(tt.bugs, ",") {
				t.Fatalf("Check(%s) = %v, want %v", tt.version, got, tt.bugs)
			}
			adv, up, ok := Advice(v)
			if tt.upgrade == "" {
				if ok || adv != "" {
					t.Fatalf("Advice(%s) = %q, want none", tt.version, adv)
				}
				return
			}
			if !ok || up.String() != tt.upgrade || !strings.HasPrefix(adv, "etcd "+v.String()+" has ") {
				t.Fatalf("Advice(%s) = %q, %s; want it to name the version, and %s", tt.version, adv, up, tt.upgrade)
			}
			for _, b := range tt.bugs {
				if !strings.Contains(adv, b) {
					t.Errorf("Advice(%s) does not name %s: %q", tt.version, b, adv)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"", "3.4", "3.4.x", "three", "3.4.23.1", "-1.2.3", "3.4.-1"} {
		if _, err := Parse(s); err == nil || !strings.Contains(err.Error(), "etcd version") {
			t.Errorf("Parse(%q) = %v, want an error naming the version", s, err)
		}
	}
}
