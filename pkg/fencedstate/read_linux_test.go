package fencedstate

import (
	"strings"
	"testing"
	"time"
)

func TestLeasesValid(t *testing.T) {
	s := func(state string, until time.Duration) Snapshot {
		return Snapshot{Clusters: []Cluster{{Name: "ok", Lease: Lease{State: "healthy", ValidUntil: 100 * time.Second}}, {Name: "main", Lease: Lease{State: state, ValidUntil: until}}}}
	}
	const now = 10 * time.Second
	for _, tt := range []struct {
		name string
		snap Snapshot
		bad  bool
	}{
		{"deadline ahead", s("healthy", now+time.Millisecond), false},
		{"deadline passed while healthy: fenced stopped renewing", s("healthy", now-time.Second), true},
		{"deadline reached", s("healthy", now), true},
		{"fenced already: nothing to hold", s("fenced", now-time.Second), false},
		{"no deadline recorded (older fenced)", s("healthy", 0), false},
	} {
		err := LeasesValid(tt.snap, now)
		if (err != nil) != tt.bad {
			t.Errorf("%s: LeasesValid = %v, want error %v", tt.name, err, tt.bad)
		}
		if err != nil && !strings.Contains(err.Error(), "cluster main") {
			t.Errorf("%s: error %q does not name the cluster", tt.name, err)
		}
	}
}
