package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/test/netnstest"
)

// I7: bad input gets a one-line error naming the value, exit 2, and no
// change at all, also for the VIPs of the same command that were fine.
func TestPrivilegedBadInputChangesNothing(t *testing.T) {
	h := newHost(t)
	// A VIP held before, which bad commands must not disturb either.
	h.ok(t, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", "192.0.2.50")
	badConfig := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(badConfig, []byte("[[instance]]\nname = \"VI_1\"\ndev = \"eth0\"\nvips = [\"192.0.2.999\"]\n"), 0o600)
	v6only := "2001:db8::100"
	// eth1 has no IPv6 address at all.
	netnstest.Veth(t, h.ns, "eth1", h.peer, "eth1")
	h.ns.AddAddr(t, "eth1", "198.51.100.11/24")
	h.ns.Exec(t, "sysctl", "-qw", "net.ipv6.conf.eth1.disable_ipv6=1")
	// A secondary an operator added by hand, and eth2 whose only IPv4
	// address is a /32 (as some providers configure hosts).
	h.ns.AddAddr(t, "eth0", "192.0.2.60/24")
	netnstest.Veth(t, h.ns, "eth2", h.peer, "eth2")
	h.ns.AddAddr(t, "eth2", "203.0.113.7/32")
	cfgDir := t.TempDir()
	primaryConfig, maint := filepath.Join(cfgDir, "primary.toml"), filepath.Join(cfgDir, "VI_1.maint")
	os.WriteFile(primaryConfig, []byte("[[instance]]\nname = \"VI_1\"\ndev = \"eth0\"\nown = true\nvips = [\"192.0.2.100\", \"192.0.2.11\"]\nmaintenance_file = \""+maint+"\"\n"), 0o600)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown interface", []string{"up", "--own", "--dev", "eth9", "192.0.2.100"}, `"eth9"`},
		{"invalid address", []string{"up", "--own", "--dev", "eth0", "192.0.2.100", "192.0.2.256"}, `"192.0.2.256"`},
		{"VIP equal to the primary", []string{"up", "--own", "--dev", "eth0", "192.0.2.100", "192.0.2.11"}, "192.0.2.11 is the primary IPv4 address of eth0"},
		{"no primary of the family", []string{"up", "--own", "--dev", "eth1", "198.51.100.100", v6only}, "eth1 has no primary IPv6 address"},
		{"IPv4/IPv6 mismatch", []string{"up", "--own", "--dev", "eth0", "--src", "2001:db8::11", "192.0.2.100"}, "source 2001:db8::11 is not an IPv4 address"},
		{"source not on the interface", []string{"route-src", "add", "--dev", "eth0", "--src", "192.0.2.77", "192.0.2.50"}, "192.0.2.77 is not assigned on eth0"},
		{"unreadable config", []string{"up", "--config", "/nonexistent/vipkit.toml", "--instance", "VI_1"}, "/nonexistent/vipkit.toml"},
		{"invalid config", []string{"down", "--config", badConfig, "--instance", "VI_1"}, badConfig + ":4"},
		{"unknown instance", []string{"down", "--instance", "VI_9"}, `"VI_9"`},
		{"down on unknown interface", []string{"down", "--own", "--dev", "eth9", "192.0.2.50"}, `"eth9"`},
		// The release path validates what it is about to delete (I7).
		{"down --own of the primary", []string{"down", "--own", "--dev", "eth0", "192.0.2.50", "192.0.2.11"}, "192.0.2.11 is the primary IPv4 address of eth0"},
		{"down --own of the primary with its prefix", []string{"down", "--own", "--dev", "eth0", "192.0.2.11/24"}, "192.0.2.11 is the primary IPv4 address of eth0"},
		{"down --own of the only IPv6 address", []string{"down", "--own", "--dev", "eth0", "2001:db8::11"}, "2001:db8::11 (2001:db8::11/64) is the last global IPv6 address of eth0"},
		{"down of the primary", []string{"down", "--dev", "eth0", "192.0.2.11"}, "192.0.2.11 is the primary IPv4 address of eth0"},
		{"route-src del of the primary", []string{"route-src", "del", "--dev", "eth0", "192.0.2.11"}, "192.0.2.11 is the primary IPv4 address of eth0"},
		{"down --own of a secondary vipkit did not add", []string{"down", "--own", "--dev", "eth0", "192.0.2.60"}, "192.0.2.60 on eth0 is a /24 address that vipkit did not add"},
		{"down --own of the last address", []string{"down", "--own", "--dev", "eth2", "203.0.113.7"}, "203.0.113.7 (203.0.113.7/32) is the last global IPv4 address of eth2"},
		{"handover of an instance listing the primary", []string{"handover", "--config", primaryConfig, "VI_1"}, "192.0.2.11 is the primary IPv4 address of eth0"},
		{"check of a config listing the primary", []string{"check", "--keepalived-conf", "", "--config", primaryConfig}, primaryConfig + ":5: instance[0].vips: 192.0.2.11 is the primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, failures := h.snapshot(t), h.hookFailures(t)
			r := h.run(t, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q: want one line naming %q", r.stderr, tt.want)
			}
			if after := h.snapshot(t); after != before {
				t.Errorf("bad input changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// Counted as a failed hook run for fenced to export, unless the
			// configuration (and so the state directory) could not be read;
			// check is no hook.
			want := failures
			if tt.args[0] != "check" && !strings.Contains(tt.name, "config") {
				want++
			}
			if got := h.hookFailures(t); got != want {
				t.Errorf("failed runs counted: %d, want %d", got, want)
			}
		})
	}
	if _, err := os.Stat(maint); err == nil {
		t.Error("a refused handover wrote the maintenance file")
	}
}

// I1: after any sequence of vipctl commands, and after keepalived's own
// order (address deleted, then the down hook), no local route outlives its
// address; down on a still-assigned VIP leaves exactly the kernel's route.
func TestPrivilegedNoOrphanRoute(t *testing.T) {
	for _, vip := range []string{"192.0.2.100", "2001:db8::100"} {
		t.Run(vip, func(t *testing.T) {
			h := newHost(t)
			plen := "/32"
			if strings.Contains(vip, ":") {
				plen = "/128"
			}
			noRoute := func(step string) {
				t.Helper()
				if rs := h.localRoutes(t, vip); len(rs) != 0 {
					t.Fatalf("after %s: local routes for %s: %q", step, vip, rs)
				}
			}
			// vipctl-owned.
			h.ok(t, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", vip)
			h.ok(t, "down", "--own", "--dev", "eth0", vip)
			noRoute("up --own, down --own")

			// keepalived-owned, keepalived's order: it adds, notify_master,
			// it deletes, then notify_backup.
			h.ns.Exec(t, "ip", "addr", "add", vip+plen, "dev", "eth0", "nodad")
			h.ok(t, "up", "--refresh-for", "0s", "--dev", "eth0", vip)
			if rs := h.localRoutes(t, vip); len(rs) != 1 || !strings.Contains(rs[0], "proto 86") {
				t.Fatalf("hint not set: %q", rs)
			}
			h.ns.Exec(t, "ip", "addr", "del", vip+plen, "dev", "eth0")
			if rs := h.localRoutes(t, vip); len(rs) != 1 {
				t.Fatalf("expected the kernel to leave the hint behind when the address goes first, got %q", rs)
			}
			h.ok(t, "down", "--dev", "eth0", vip)
			noRoute("keepalived deletes, then down")

			// route-src alone, then cleanup after an address vanished.
			h.ns.Exec(t, "ip", "addr", "add", vip+plen, "dev", "eth0", "nodad")
			h.ok(t, "route-src", "add", "--dev", "eth0", vip)
			h.ns.Exec(t, "ip", "addr", "del", vip+plen, "dev", "eth0")
			out := h.ok(t, "status")
			if !strings.Contains(out, "ORPHAN") {
				t.Fatalf("status does not flag the orphan:\n%s", out)
			}
			h.ok(t, "cleanup")
			noRoute("cleanup")

			// down while keepalived still holds the address.
			h.ns.Exec(t, "ip", "addr", "add", vip+plen, "dev", "eth0", "nodad")
			h.ok(t, "up", "--refresh-for", "0s", "--dev", "eth0", vip)
			h.ok(t, "down", "--dev", "eth0", vip)
			rs := h.localRoutes(t, vip)
			if len(rs) != 1 || strings.Contains(rs[0], "src 192.0.2.11") || strings.Contains(rs[0], "src 2001:db8::11") {
				t.Fatalf("down on an assigned VIP: routes %q, want exactly one local route without the hint", rs)
			}
			if !strings.Contains(vip, ":") && !strings.Contains(rs[0], "proto kernel") {
				t.Fatalf("IPv4 route %q is not the kernel's own", rs[0])
			}
			h.peer.Exec(t, "ping", "-c1", "-W2", vip) // still reachable
		})
	}
}

// capture records gratuitous ARP / NA frames for one address seen by the
// peer, with kernel timestamps, via tcpdump.
type capture struct {
	cancel context.CancelFunc
	lines  chan string
	done   chan struct{}
}

func startCapture(t *testing.T, ns *netnstest.NS, addr string) *capture {
	t.Helper()
	if _, err := os.Stat("/usr/bin/tcpdump"); err != nil {
		netnstest.Missing(t, "tcpdump not installed (make deps installs it)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "tcpdump", "-i", "eth0", "-nn", "-l", "-tt", "--immediate-mode",
		"arp or (icmp6 and ip6[40] == 136)")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &capture{cancel: cancel, lines: make(chan string, 10000), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), addr) {
				c.lines <- sc.Text()
			}
		}
		close(c.done)
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	time.Sleep(300 * time.Millisecond) // tcpdump attaches
	return c
}

// stop ends the capture and returns the kernel timestamps of every frame.
func (c *capture) stop() []time.Time {
	time.Sleep(100 * time.Millisecond)
	c.cancel()
	<-c.done
	close(c.lines)
	var ts []time.Time
	for l := range c.lines {
		f, err := strconv.ParseFloat(strings.Fields(l)[0], 64)
		if err == nil {
			ts = append(ts, time.Unix(0, int64(f*1e9)))
		}
	}
	return ts
}

// I2: a down with a refresher running returns at once (not after the
// refresher's next round), nothing is announced after it returned, and no
// vipctl process is left. The refresher sends a burst of five 60 ms apart,
// then one a second: down comes between, so a down that waited for the
// refresher's next round would take 0.8 s, far beyond the bound, which
// leaves a loaded machine room (165 ms seen with a 40 ms refresher at load 5).
func TestPrivilegedDownSilencesRefresherAtOnce(t *testing.T) {
	for _, vip := range []string{"192.0.2.100", "2001:db8::100"} {
		t.Run(vip, func(t *testing.T) {
			h := newHost(t)
			cap := startCapture(t, h.peer, vip)
			h.ok(t, "up", "--own", "--count", "5", "--interval", "60ms", "--refresh-every", "1s", "--refresh-for", "1m", "--dev", "eth0", vip)
			time.Sleep(400 * time.Millisecond)
			if len(h.refresherPIDs(t)) != 1 {
				t.Fatalf("refresher processes = %v, want one", h.refresherPIDs(t))
			}
			start := time.Now()
			h.ok(t, "down", "--own", "--dev", "eth0", vip)
			returned := time.Now()
			took := returned.Sub(start)
			time.Sleep(1200 * time.Millisecond) // past the refresher's next round
			frames := cap.stop()
			var before, after int
			for _, ts := range frames {
				if ts.After(returned) {
					after++
				} else {
					before++
				}
			}
			if before < 5 {
				t.Fatalf("only %d announcements seen while holding: the capture is not working", before)
			}
			if after != 0 {
				t.Fatalf("%d announcements for %s after down returned", after, vip)
			}
			if took > 500*time.Millisecond {
				t.Fatalf("down took %s with a refresher running: it waited for the refresher's round", took)
			}
			if pids := h.refresherPIDs(t); len(pids) != 0 {
				t.Fatalf("refresher still running after down: %v", pids)
			}
			t.Logf("down with refresher running returned in %s; %d announcements before, 0 after", took, before)
		})
	}
}

// The refresher stops by itself on SIGTERM and when its address vanishes
// (keepalived deleted it), and announces nothing after the address is gone.
func TestPrivilegedRefresherStops(t *testing.T) {
	t.Run("SIGTERM", func(t *testing.T) {
		h := newHost(t)
		// up ignores SIGTERM while it changes things; a refresher that
		// inherited that would lose a SIGTERM sent before its runtime
		// started (1 in 10 here), so the signal goes out as early as a test
		// can, ten times. TestRefresherStartsWithSIGTERMDefault is the
		// deterministic check.
		for range 10 {
			h.ok(t, "up", "--own", "--refresh-every", "50ms", "--refresh-for", "1m", "--dev", "eth0", "192.0.2.100")
			pids := h.refresherPIDs(t)
			if len(pids) != 1 {
				t.Fatalf("refreshers = %v", pids)
			}
			syscall.Kill(pids[0], syscall.SIGTERM)
			netnstest.WaitFor(t, 2*time.Second, "refresher to exit on SIGTERM", func() bool { return len(h.refresherPIDs(t)) == 0 })
		}
	})
	t.Run("address vanishes", func(t *testing.T) {
		h := newHost(t)
		cap := startCapture(t, h.peer, "192.0.2.100")
		h.ns.Exec(t, "ip", "addr", "add", "192.0.2.100/32", "dev", "eth0")
		h.ok(t, "up", "--refresh-every", "50ms", "--refresh-for", "1m", "--dev", "eth0", "192.0.2.100")
		time.Sleep(200 * time.Millisecond)
		h.ns.Exec(t, "ip", "addr", "del", "192.0.2.100/32", "dev", "eth0")
		deleted := time.Now()
		netnstest.WaitFor(t, 2*time.Second, "refresher to exit when the address vanished", func() bool { return len(h.refresherPIDs(t)) == 0 })
		frames := cap.stop()
		before := 0
		for _, ts := range frames {
			if ts.After(deleted) {
				t.Fatalf("announcement at %s, after the address was deleted at %s", ts.Format(time.StampMicro), deleted.Format(time.StampMicro))
			}
			before++
		}
		// 200 ms at one every 50 ms, after up's own burst: a capture that
		// saw none proves nothing about the silence after the deletion.
		if before < 3 {
			t.Fatalf("only %d announcements seen while the address was held: the capture is not working", before)
		}
	})
}

// I6: keepalived forks hooks without waiting. An `up --own` forked first
// but held, a `down --own` forked later and done, then the held `up` runs:
// the VIP stays released.
func TestPrivilegedLateHookCannotUndo(t *testing.T) {
	h := newHost(t)
	h.ok(t, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", "192.0.2.100")
	// Fork the late hook now but stop it before it runs: sh stops itself,
	// then execs (same PID, same start time) once continued.
	late := h.ns.Command(context.Background(), "sh", "-c", `kill -STOP $$; exec "$0" "$@"`,
		vipctlBin, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", "192.0.2.100")
	late.Env = append(os.Environ(), "VIPKIT_STATE_DIR="+h.state, "VIPKIT_LOG_FILE="+filepath.Join(h.state, "log.json"))
	if err := late.Start(); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitFor(t, 2*time.Second, "late hook to stop itself", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", late.Process.Pid))
		return strings.Contains(string(b), ") T ")
	})
	time.Sleep(20 * time.Millisecond) // a later clock tick for the next fork
	h.ok(t, "down", "--own", "--dev", "eth0", "192.0.2.100")
	late.Process.Signal(syscall.SIGCONT)
	if err := late.Wait(); err != nil {
		t.Fatalf("late hook failed: %v\n%s", err, h.logs())
	}
	if h.assigned(t, "192.0.2.100") || len(h.localRoutes(t, "192.0.2.100")) != 0 {
		t.Fatalf("the late up re-added the VIP after a later down:\n%s", h.logs())
	}
	if !strings.Contains(h.logs(), "a later keepalived transition was already applied") {
		t.Fatalf("the late hook did not report being superseded:\n%s", h.logs())
	}
}

// Concurrent flaps converge to the action of the last process started.
func TestPrivilegedConcurrentFlapsConverge(t *testing.T) {
	h := newHost(t)
	for round := 0; round < 5; round++ {
		const n = 12
		procs := make([]*os.Process, 0, n)
		lastUp := false
		for i := 0; i < n; i++ {
			up := (i+round)%2 == 0
			args := []string{"down", "--own", "--dev", "eth0", "192.0.2.100", "2001:db8::100"}
			if up {
				args = []string{"up", "--own", "--refresh-every", "30ms", "--refresh-for", "10s", "--dev", "eth0", "192.0.2.100", "2001:db8::100"}
			}
			c := h.cmd(args...)
			if err := c.Start(); err != nil { // forks in this order
				t.Fatal(err)
			}
			procs = append(procs, c.Process)
			lastUp = up
		}
		for _, p := range procs {
			st, err := p.Wait()
			if err != nil || !st.Success() {
				t.Fatalf("round %d: a flap failed: %v %v\n%s", round, err, st, h.logs())
			}
		}
		for _, addr := range []string{"192.0.2.100", "2001:db8::100"} {
			if got := h.assigned(t, addr); got != lastUp {
				t.Fatalf("round %d: %s assigned=%v, want %v (the last-started action)", round, addr, got, lastUp)
			}
			if rs := h.localRoutes(t, addr); (len(rs) == 1) != lastUp {
				t.Fatalf("round %d: %s local routes %q with last action up=%v", round, addr, rs, lastUp)
			}
		}
		want := 0
		if lastUp {
			want = 1
		}
		if pids := h.refresherPIDs(t); len(pids) != want {
			t.Fatalf("round %d: %d refreshers running, want %d", round, len(pids), want)
		}
		if e := h.records(t).Entry(mustVIP("192.0.2.100")); e == nil || e.Holding() != lastUp {
			t.Fatalf("round %d: record %+v", round, e)
		}
	}
	h.ok(t, "down", "--own", "--dev", "eth0", "192.0.2.100", "2001:db8::100")
}

// I1, release order, as the kernel saw it: for down --own and for handover
// (vipctl-owned and keepalived-owned), every VIP's hint route is deleted
// before its address, never after. The kernel's own announcements on one
// socket give the order; no timing is involved.
func TestPrivilegedReleaseOrderEvents(t *testing.T) {
	vips := []string{"192.0.2.100", "192.0.2.101", "2001:db8::100", "2001:db8::101"}
	config := func(t *testing.T, own bool) (path, maint string) {
		dir := t.TempDir()
		path, maint = filepath.Join(dir, "vipkit.toml"), filepath.Join(dir, "VI_1.maint")
		body := fmt.Sprintf("[[instance]]\nname = \"VI_1\"\ndev = \"eth0\"\nown = %v\nvips = [%q, %q, %q, %q]\nmaintenance_file = %q\n", own, vips[0], vips[1], vips[2], vips[3], maint)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path, maint
	}
	tests := []struct {
		name string
		own  bool
		run  func(t *testing.T, h *host, cfg string)
	}{
		{"down --own", true, func(t *testing.T, h *host, cfg string) {
			h.ok(t, append([]string{"down", "--own", "--dev", "eth0"}, vips...)...)
		}},
		{"handover, vipctl-owned", true, func(t *testing.T, h *host, cfg string) { h.ok(t, "handover", "--config", cfg, "VI_1") }},
		{"handover, keepalived-owned", false, func(t *testing.T, h *host, cfg string) { h.ok(t, "handover", "--config", cfg, "VI_1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t)
			cfg, maint := config(t, tt.own)
			if !tt.own {
				for _, v := range vips { // keepalived's part
					h.ns.AddAddr(t, "eth0", mustVIP(v).Prefix().String())
				}
			}
			h.ok(t, "up", "--config", cfg, "--instance", "VI_1", "--refresh-for", "0s")
			rec := netnstest.RecordDeletions(t, h.ns)
			tt.run(t, h, cfg)
			dels := rec.Drain(t)
			for _, v := range vips {
				if err := netnstest.RouteBeforeAddress(dels, mustVIP(v).Addr(), hostnet.HintProtocol); err != nil {
					t.Error(err)
				}
				if h.assigned(t, v) || len(h.localRoutes(t, v)) != 0 {
					t.Errorf("%s still assigned or routed after %s: %q", v, tt.name, h.localRoutes(t, v))
				}
			}
			if strings.HasPrefix(tt.name, "handover") {
				b, err := os.ReadFile(maint)
				if err != nil || strings.TrimSpace(string(b)) != "1" {
					t.Errorf("maintenance file after handover = %q, %v; want 1", b, err)
				}
				h.ok(t, "handover", "--undo", "--config", cfg, "VI_1")
				if b, _ := os.ReadFile(maint); strings.TrimSpace(string(b)) != "0" {
					t.Errorf("maintenance file after handover --undo = %q, want 0", b)
				}
			}
		})
	}
}
