package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/netnstest"
)

func writeConfig(t *testing.T, h *host, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vipkit.toml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("state_dir = %q\n%s", h.state, body)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const hookConfig = `
[announce]
refresh_for = "0s"

[[instance]]
name = "VI_1"
dev = "eth0"
vips = ["192.0.2.100", "2001:db8::100"]
own = true

[[instance]]
name = "VI_2"
group = "VG_1"
dev = "eth0"
vips = ["192.0.2.101"]
own = true
`

// The generic notify hook maps keepalived's four arguments through the
// configuration.
func TestPrivilegedNotifyHook(t *testing.T) {
	h := newHost(t)
	cfg := writeConfig(t, h, hookConfig)
	h.ok(t, "notify", "--config", cfg, "INSTANCE", "VI_1", "MASTER", "150")
	for _, a := range []string{"192.0.2.100", "2001:db8::100"} {
		if !h.assigned(t, a) || len(h.localRoutes(t, a)) != 1 || !strings.Contains(h.localRoutes(t, a)[0], "proto 86") {
			t.Fatalf("MASTER did not hold %s: routes %q", a, h.localRoutes(t, a))
		}
	}
	h.ok(t, "notify", "--config", cfg, "GROUP", "VG_1", "MASTER", "0")
	if !h.assigned(t, "192.0.2.101") {
		t.Fatal("sync group MASTER did not reach its instance")
	}
	h.ok(t, "notify", "--config", cfg, "INSTANCE", "VI_1", "FAULT", "150")
	h.ok(t, "notify", "--config", cfg, "GROUP", "VG_1", "STOP", "0")
	for _, a := range []string{"192.0.2.100", "2001:db8::100", "192.0.2.101"} {
		if h.assigned(t, a) || len(h.localRoutes(t, a)) != 0 {
			t.Fatalf("release left %s behind", a)
		}
	}
	if r := h.run(t, "notify", "--config", cfg, "INSTANCE", "VI_7", "MASTER", "1"); r.code != exitUsage || !strings.Contains(r.stderr, `"VI_7"`) {
		t.Fatalf("unknown instance: exit %d, %q", r.code, r.stderr)
	}
	// What the hooks saw, for fenced: each instance's latest state and its
	// transitions, and the runs of the command with the failed one.
	st, err := runstate.New(h.state).Read()
	if err != nil {
		t.Fatal(err)
	}
	vi1, vi2 := st.Instances["VI_1"], st.Instances["VI_2"]
	if vi1 == nil || vi1.State != "FAULT" || vi1.Transitions["MASTER"] != 1 || vi1.Transitions["FAULT"] != 1 {
		t.Fatalf("VI_1 recorded as %+v, want FAULT after MASTER:1 FAULT:1", vi1)
	}
	if vi2 == nil || vi2.State != "STOP" || vi2.Transitions["MASTER"] != 1 {
		t.Fatalf("VI_2 (through its group) recorded as %+v, want STOP", vi2)
	}
	if len(st.Instances) != 2 {
		t.Fatalf("instances recorded: %v, want only the configured VI_1 and VI_2", st.Instances)
	}
	if n := st.Hooks["notify"]; n == nil || n.Runs != 5 || n.Failed != 1 || n.Late != 0 {
		t.Fatalf("notify runs recorded as %+v, want 5 runs, 1 failed", n)
	}
	// A per-state hook names no instance and no state: the instance is the
	// configured one holding its VIPs, the state only "left MASTER".
	h.ok(t, "up", "--config", cfg, "--dev", "eth0", "192.0.2.100", "2001:db8::100")
	h.ok(t, "down", "--config", cfg, "--dev", "eth0", "192.0.2.100", "2001:db8::100")
	if st, err = runstate.New(h.state).Read(); err != nil {
		t.Fatal(err)
	}
	if vi1 = st.Instances["VI_1"]; vi1.State != runstate.StateReleased || vi1.Transitions["MASTER"] != 2 {
		t.Fatalf("VI_1 after up and down --dev: %+v", vi1)
	}
	if e := st.Entry(vip.MustParse("192.0.2.100")); e == nil || e.Announced.IsZero() {
		t.Fatalf("the burst of up was not recorded: %+v", e)
	}
}

// The FIFO reader applies transitions strictly in order, keeps up with a
// burst, and after SIGTERM still applies the STOP line keepalived writes
// after signalling it.
func TestPrivilegedFIFOReader(t *testing.T) {
	h := newHost(t)
	cfg := writeConfig(t, h, hookConfig)
	fifo := filepath.Join(t.TempDir(), "keepalived.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	reader := h.cmd("fifo", "--config", cfg, fifo)
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Process.Kill(); reader.Wait() })
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A flapping burst written at once, as keepalived would; the last state
	// wins only if every line is applied in order.
	var burst strings.Builder
	for i := 0; i < 40; i++ {
		state := "BACKUP"
		if i%2 == 0 {
			state = "MASTER"
		}
		fmt.Fprintf(&burst, "INSTANCE \"VI_1\" %s 150\n", state)
	}
	burst.WriteString("VS [192.0.2.200]:tcp:80 UP\n") // an LVS line is ignored
	burst.WriteString("INSTANCE \"VI_1\" MASTER 150\n")
	if _, err := w.WriteString(burst.String()); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitFor(t, 5*time.Second, "the burst to end in MASTER", func() bool {
		return h.assigned(t, "192.0.2.100") && strings.Count(h.logs(), "keepalived transition applied") >= 41*1
	})
	applied := strings.Count(h.logs(), `"instance":"VI_1","state":`)
	if applied != 41 {
		t.Fatalf("applied %d transitions, want 41 (every line, in order)\n%s", applied, h.logs())
	}
	// keepalived signals the FIFO script, then writes STOP.
	reader.Process.Signal(syscall.SIGTERM)
	time.Sleep(50 * time.Millisecond)
	if _, err := w.WriteString("INSTANCE \"VI_1\" STOP 150\n"); err != nil {
		t.Fatal(err)
	}
	if err := reader.Wait(); err != nil {
		t.Fatalf("reader exited with %v\n%s", err, h.logs())
	}
	if h.assigned(t, "192.0.2.100") || len(h.localRoutes(t, "192.0.2.100")) != 0 {
		t.Fatalf("STOP written after SIGTERM was not applied\n%s", h.logs())
	}
	// Every line counted for fenced: 42 runs of fifo, the last state STOP.
	st, err := runstate.New(h.state).Read()
	if err != nil {
		t.Fatal(err)
	}
	vi1 := st.Instances["VI_1"]
	if vi1 == nil || vi1.State != "STOP" || vi1.Transitions["MASTER"] != 21 || vi1.Transitions["BACKUP"] != 20 || vi1.Transitions["STOP"] != 1 {
		t.Fatalf("VI_1 recorded as %+v, want STOP after MASTER:21 BACKUP:20 STOP:1", vi1)
	}
	if f := st.Hooks["fifo"]; f == nil || f.Runs != 42 || f.Failed != 0 {
		t.Fatalf("fifo runs recorded as %+v, want 42", f)
	}
}
