package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
)

func TestAfterAnswer(t *testing.T) {
	for _, tt := range []struct {
		outcome string
		step    answerStep
		errHas  string // "" for no error
	}{
		{fencedstate.HandedOver, stepRecord, ""},
		{fencedstate.NotHeld, stepPlain, ""},
		{fencedstate.NoSuccessor, stepRefused, "no other node is a candidate"},
		{fencedstate.Failed, stepRecord, "could not hand the owner key to node-b: etcd: timeout"},
		{"frobbed", stepRefused, `fenced answered "frobbed"`},
	} {
		step, err := afterAnswer("VI_1", fencedstate.Handover{Outcome: tt.outcome, To: "node-b", Error: "etcd: timeout"})
		if step != tt.step {
			t.Errorf("%s: step %d, want %d", tt.outcome, step, tt.step)
		}
		switch {
		case tt.errHas == "" && err != nil:
			t.Errorf("%s: error %v", tt.outcome, err)
		case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "VI_1")):
			t.Errorf("%s: error %v, want one naming VI_1 and %q", tt.outcome, err, tt.errHas)
		}
	}
}

// writeState replaces dir's fenced.json as fenced does (a rename). It
// reports with t.Error: it also runs on other goroutines.
func writeState(t *testing.T, dir string, s fencedstate.Snapshot) {
	t.Helper()
	b, err := json.Marshal(s)
	tmp := filepath.Join(dir, "fenced.json.tmp")
	if err == nil {
		err = os.WriteFile(tmp, b, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, fencedstate.File))
	}
	if err != nil {
		t.Error(err)
	}
}

// vipctl waits for the answer to its own request, not an older one.
func TestWaitAnswer(t *testing.T) {
	dir := t.TempDir()
	writeState(t, dir, fencedstate.Snapshot{Handovers: []fencedstate.Handover{{Instance: "VI_1", ID: "old", Outcome: fencedstate.NoSuccessor}}})
	go func() {
		time.Sleep(30 * time.Millisecond)
		writeState(t, dir, fencedstate.Snapshot{Handovers: []fencedstate.Handover{
			{Instance: "VI_0", ID: "new", Outcome: fencedstate.NotHeld},
			{Instance: "VI_1", ID: "new", Outcome: fencedstate.HandedOver, To: "node-b"},
		}})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := waitAnswer(ctx, dir, "VI_1", "new")
	if err != nil || h.Outcome != fencedstate.HandedOver || h.To != "node-b" {
		t.Fatalf("waitAnswer = %+v, %v; want handed over to node-b", h, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if h, err := waitAnswer(ctx, dir, "VI_1", "never"); err == nil {
		t.Fatalf("waitAnswer for a request never answered = %+v", h)
	}
}

// A witnessed instance (vipctl- or keepalived-owned) is handed over
// through fenced: without a live fenced, vipctl fails with one line naming
// the cause and changes nothing (no maintenance file, no request left
// behind).
func TestHandoverWitnessedNeedsFenced(t *testing.T) {
	type tc struct {
		name  string
		own   bool
		state *fencedstate.Snapshot
		cause string
	}
	var tests []tc
	for _, own := range []bool{true, false} {
		tests = append(tests,
			tc{fmt.Sprintf("own=%v/no state file", own), own, nil, "fenced is not running here"},
			tc{fmt.Sprintf("own=%v/stopped", own), own, &fencedstate.Snapshot{State: "stopped", PID: os.Getpid()}, "fenced stopped"},
			tc{fmt.Sprintf("own=%v/not fenced's process", own), own, &fencedstate.Snapshot{State: "healthy", PID: os.Getpid()}, "is not running"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "vipkit.toml")
			doc := "state_dir = \"" + dir + "\"\n[[cluster]]\nname = \"c\"\nendpoints = [\"http://192.0.2.20:2379\"]\n" +
				"[[instance]]\nname = \"VI_1\"\ndev = \"vkt-none0\"\nvips = [\"192.0.2.100\"]\ncluster = \"c\"\nwitness = true\npriority = 150\n" +
				fmt.Sprintf("own = %v\n", tt.own)
			if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.state != nil {
				writeState(t, dir, *tt.state)
			}
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"vipctl", "handover", "--config", cfg, "--state-dir", dir, "--log-file", filepath.Join(dir, "log"), "VI_1"}, &stderr)
			out := stderr.String()
			if code != exitFail || !strings.Contains(out, tt.cause) || !strings.Contains(out, "VI_1") || !strings.Contains(out, "nothing changed") {
				t.Errorf("exit %d, stderr %q; want exit %d naming VI_1 and %q", code, out, exitFail, tt.cause)
			}
			if n := strings.Count(strings.TrimRight(out, "\n"), "\n"); n > 0 {
				t.Errorf("error is not one line: %q", out)
			}
			for _, f := range []string{"VI_1.maint", "VI_1.maint.handover"} {
				if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
					t.Errorf("%s exists after a refused handover (%v)", f, err)
				}
			}
		})
	}
}
