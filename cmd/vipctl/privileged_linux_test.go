package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
	"github.com/vipkit/vipkit/test/netnstest"
)

// vipctlBin is this package's command, built once for the privileged tests.
var vipctlBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "vipctl-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		vipctlBin = filepath.Join(dir, "vipctl")
		out, err := exec.Command("go", "build", "-o", vipctlBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build vipctl: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// host is a node namespace (eth0: 192.0.2.11/24, 2001:db8::11/64) wired to
// a peer (192.0.2.12/24, 2001:db8::12/64), with its own vipctl state dir.
type host struct {
	ns, peer *netnstest.NS
	state    string
}

func newHost(t *testing.T) *host {
	t.Helper()
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "eth0", peer, "eth0")
	ns.AddAddr(t, "eth0", "192.0.2.11/24")
	ns.AddAddr(t, "eth0", "2001:db8::11/64")
	peer.AddAddr(t, "eth0", "192.0.2.12/24")
	peer.AddAddr(t, "eth0", "2001:db8::12/64")
	h := &host{ns: ns, peer: peer, state: t.TempDir()}
	t.Cleanup(func() { h.killRefreshers(t) })
	return h
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *host) cmd(args ...string) *exec.Cmd {
	c := h.ns.Command(context.Background(), vipctlBin, args...)
	c.Env = append(os.Environ(), "VIPKIT_STATE_DIR="+h.state, "VIPKIT_CONFIG=", "VIPKIT_LOG_FILE="+filepath.Join(h.state, "log.json"))
	return c
}

func (h *host) run(t *testing.T, args ...string) result {
	t.Helper()
	c := h.cmd(args...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run vipctl %v: %v", args, err)
	}
	return result{code, o.String(), e.String()}
}

func (h *host) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := h.run(t, args...)
	if r.code != 0 {
		t.Fatalf("vipctl %s: exit %d\n%s%s\nlog:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr, h.logs())
	}
	return r.stdout
}

func (h *host) logs() string {
	b, _ := os.ReadFile(filepath.Join(h.state, "log.json"))
	return string(b)
}

// snapshot is everything bad input must leave alone.
func (h *host) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	// Global addresses only: the kernel finishes duplicate address
	// detection of the link-local one on its own schedule.
	b.WriteString(h.ns.Exec(t, "ip", "-o", "addr", "show", "dev", "eth0", "scope", "global"))
	b.WriteString(h.ns.Exec(t, "ip", "-4", "route", "show", "table", "local"))
	b.WriteString(h.ns.Exec(t, "ip", "-6", "route", "show", "table", "local"))
	st, _ := os.ReadFile(filepath.Join(h.state, runstate.StateFile))
	// Without the hook statistics: they count the commands themselves (a
	// refused one too), they are not the host's hold on anything.
	for _, line := range strings.SplitAfter(string(st), "\n") {
		if !strings.HasPrefix(line, "#hook ") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// hookFailures is the number of failed runs the state file counts, over
// every command.
func (h *host) hookFailures(t *testing.T) uint64 {
	t.Helper()
	st, err := runstate.New(h.state).Read()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, s := range st.Hooks {
		n += s.Failed
	}
	return n
}

// localRoutes lists the local-table routes for addr.
func (h *host) localRoutes(t *testing.T, addr string) []string {
	t.Helper()
	fam := "-4"
	if strings.Contains(addr, ":") {
		fam = "-6"
	}
	out := strings.TrimSpace(h.ns.Exec(t, "ip", fam, "route", "show", "table", "local", addr))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func (h *host) assigned(t *testing.T, addr string) bool {
	t.Helper()
	return strings.Contains(h.ns.Exec(t, "ip", "-o", "addr", "show", "dev", "eth0"), " "+addr+"/")
}

func (h *host) records(t *testing.T) *runstate.State {
	t.Helper()
	st, err := runstate.New(h.state).Read()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// refresherPIDs lists live refresher processes of this host's state dir.
func (h *host) refresherPIDs(t *testing.T) []int {
	t.Helper()
	var pids []int
	entries, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range entries {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 3 && args[1] == "refresh" && bytes.Contains(b, []byte(h.state)) {
			var pid int
			fmt.Sscanf(f, "/proc/%d/cmdline", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

func (h *host) killRefreshers(t *testing.T) {
	for _, pid := range h.refresherPIDs(t) {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
}

func mustVIP(s string) vip.VIP { return vip.MustParse(s) }
