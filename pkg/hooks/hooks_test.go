package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/keepalived"
)

const doc = `
[[instance]]
name = "VI_1"
group = "VG_1"
dev = "eth0"
vips = ["192.0.2.100"]

[[instance]]
name = "VI_2"
group = "VG_1"
dev = "eth0"
vips = ["192.0.2.101"]
own = true
`

func TestPlan(t *testing.T) {
	cfg, err := config.Parse("vipkit.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ev    keepalived.Event
		verb  Verb
		names []string
	}{
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_1", State: keepalived.StateMaster}, Up, []string{"VI_1"}},
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_2", State: keepalived.StateBackup}, Down, []string{"VI_2"}},
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_1", State: keepalived.StateFault}, Down, []string{"VI_1"}},
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_1", State: keepalived.StateStop}, Down, []string{"VI_1"}},
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_1", State: keepalived.StateDeleted}, Down, []string{"VI_1"}},
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_1", State: keepalived.StateMasterRxLowerPri}, Announce, []string{"VI_1"}},
		{keepalived.Event{Kind: keepalived.KindGroup, Name: "VG_1", State: keepalived.StateMaster}, Up, []string{"VI_1", "VI_2"}},
		{keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_1", State: keepalived.StateMasterPriority}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.ev.String(), func(t *testing.T) {
			acts, err := Plan(cfg, tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range acts {
				if a.Verb != tt.verb {
					t.Errorf("verb = %s, want %s", a.Verb, tt.verb)
				}
				names = append(names, a.Instance.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.names, ",") {
				t.Errorf("instances = %v, want %v", names, tt.names)
			}
		})
	}
	_, err = Plan(cfg, keepalived.Event{Kind: keepalived.KindInstance, Name: "VI_9", State: keepalived.StateMaster})
	if !errors.Is(err, ErrUnknownInstance) || !strings.Contains(err.Error(), `"VI_9"`) {
		t.Fatalf("unknown instance error = %v", err)
	}
}

type recorder struct {
	mu    sync.Mutex
	lines []string
	gate  chan struct{} // when set, applying waits until it is closed
}

func (r *recorder) apply(_ context.Context, l string) {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.lines = append(r.lines, l)
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// A stuck applier must never make the writer block: keepalived drops lines
// when the pipe is full.
func TestFIFODrainsWhileApplyingInOrder(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// Applying is stuck until every line is written.
	rec := &recorder{gate: make(chan struct{})}
	f := &FIFO{Apply: rec.apply, Drain: time.Second, Quiet: 100 * time.Millisecond}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background(), pr, stop) }()

	// 3000 lines are ~80 KiB: more than a pipe holds (64 KiB).
	const n = 3000
	wrote := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, err := fmt.Fprintf(pw, "INSTANCE \"VI_1\" MASTER %d padding-padding\n", i); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("writer blocked: the reader does not drain while lines are applied")
	}
	close(rec.gate)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rec.got()
	if len(got) != n {
		t.Fatalf("applied %d lines, want %d", len(got), n)
	}
	for i, l := range got {
		if !strings.Contains(l, fmt.Sprintf("MASTER %d ", i)) {
			t.Fatalf("line %d out of order: %q", i, l)
		}
	}
}

// keepalived signals its FIFO script before it writes the STOP lines: they
// must still be applied.
func TestFIFOAppliesLinesWrittenAfterStop(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	rec := &recorder{}
	f := &FIFO{Apply: rec.apply, Drain: 2 * time.Second, Quiet: 300 * time.Millisecond}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background(), pr, stop) }()
	close(stop)
	time.Sleep(50 * time.Millisecond)
	fmt.Fprintln(pw, `INSTANCE "VI_1" STOP 100`)
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 1 || got[0] != `INSTANCE "VI_1" STOP 100` {
		t.Fatalf("applied %q, want the STOP line", got)
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("drain did not end on quiet: %s", time.Since(start))
	}
}
