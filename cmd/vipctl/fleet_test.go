package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/fleetview"
)

func fleetSnap(now time.Duration, at time.Time) fencedstate.Snapshot {
	view := func(node string, recv time.Duration, state string, since time.Time, held ...string) fencedstate.Seen {
		iv := fencedstate.InstanceView{Name: "VI_1", State: state, StateFrom: "hooks", Since: since, Dev: "eth0",
			MAC: "02:00:00:00:00:0" + node[len(node)-1:], VIPs: []string{"192.0.2.100", "2001:db8::100"}, Held: held}
		if len(held) > 0 {
			iv.HeldSince = since
		}
		return fencedstate.Seen{NodeView: fencedstate.NodeView{Node: node, Cluster: "main", Lease: "healthy", RefreshEvery: 10 * time.Second,
			Instances: []fencedstate.InstanceView{iv}}, Via: "main", Self: node == "node-a", ReceivedBoot: recv}
	}
	return fencedstate.Snapshot{Node: "node-a", Heartbeat: at, HeartbeatBoot: now, Fleet: []fencedstate.Seen{
		view("node-a", now, "MASTER", at.Add(-10*time.Second), "192.0.2.100", "2001:db8::100"),
		view("node-b", now-300*time.Millisecond, "MASTER", at.Add(-2*time.Second), "192.0.2.100"),
		view("node-c", now-time.Minute, "MASTER", at.Add(-time.Hour), "192.0.2.100", "2001:db8::100"),
	}}
}

func TestPrintFleet(t *testing.T) {
	at := time.Date(2026, 12, 1, 2, 30, 0, 0, time.Local)
	now := 500 * time.Second
	var b bytes.Buffer
	printFleet(&b, fleetview.Build(fleetSnap(now, at), now, ""), at)
	out := b.String()
	for _, want := range []string{
		"fleet view recorded by node-a (fenced heartbeat 02:30:00.000)",
		"INSTANCE  NODE    KEEPALIVED      SINCE         HOLDS                      MAC                VIEW",
		"VI_1      node-a  MASTER (hooks)  02:29:50.000  192.0.2.100,2001:db8::100  02:00:00:00:00:0a  self",
		"          node-b  MASTER (hooks)  02:29:58.000  192.0.2.100 (1 of 2)       02:00:00:00:00:0b  300ms old",
		"          node-c  MASTER (hooks)  01:30:00.000  192.0.2.100,2001:db8::100  02:00:00:00:00:0c  1m0s old STALE",
		"DUAL-OWNER: VI_1: held by 2 nodes (node-a, node-b) since 2026-12-01 02:29:58.000 (node-b's view)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "exactly one") {
		t.Errorf("a dual owner reported as fine:\n%s", out)
	}

	b.Reset()
	printFleet(&b, fleetview.Build(fleetSnap(now, at), now, "fenced stopped"), at)
	out = b.String()
	for _, want := range []string{"STALE: fenced stopped; the views below are not trusted", "not judged: the record is stale"} {
		if !strings.Contains(out, want) {
			t.Errorf("stale record: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DUAL-OWNER") {
		t.Errorf("a stale record flagged a dual owner:\n%s", out)
	}
}

// vipctl fleet reads fenced.json: a record whose fenced is not running is
// stale and judges nothing; no state file is a one-line failure.
func TestFleetCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VIPKIT_STATE_DIR", dir)
	t.Setenv("VIPKIT_CONFIG", "")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"vipctl", "fleet", "--config", ""}, &stderr); code != exitFail {
		t.Fatalf("no state file: exit %d, want %d; stderr %q", code, exitFail, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, filepath.Join(dir, fencedstate.File)) || strings.Count(strings.TrimSpace(msg), "\n") > 0 {
		t.Fatalf("no state file: stderr %q, want one line naming the file", msg)
	}

	snap := fleetSnap(time.Second, time.Now())
	snap.PID = os.Getpid() // alive, but not fenced
	b, _ := json.Marshal(snap)
	if err := os.WriteFile(filepath.Join(dir, fencedstate.File), b, 0o644); err != nil {
		t.Fatal(err)
	}
	app := newApp(&stderr)
	var out bytes.Buffer
	app.Writer = &out
	if err := app.RunContext(context.Background(), []string{"vipctl", "fleet", "--config", "", "--json"}); err != nil {
		t.Fatal(err)
	}
	var r fleetview.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out.String())
	}
	if !strings.Contains(r.Stale, "is not running") || r.Problems != 0 || len(r.Instances) != 1 || len(r.Instances[0].Nodes) != 3 {
		t.Fatalf("report %+v, want a stale record of three nodes, nothing flagged", r)
	}
}
