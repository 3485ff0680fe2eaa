package keepalived_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// The behaviours of keepalived that vipkit depends on, run on every
// keepalived build there is (Debian's 2.2.7, the 2.3.3 make builds):
// where they differ between releases, each test says which release does
// what. docs/keepalived-versions.md lists them.

// kaRun is one keepalived started in a namespace, its log lines as they come.
type kaRun struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every new line
	done  chan struct{}
}

// startKeepalived runs bin in ns on conf (VRRP only, console log) until
// the test ends; the log is in lines.
func startKeepalived(t *testing.T, ns *netnstest.NS, bin, conf, dir string) *kaRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, bin, "-n", "-l", "-D", "-P", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	r := &kaRun{t: t, more: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, logDate.ReplaceAllString(sc.Text(), ""))
			close(r.more)
			r.more = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		_ = cmd.Wait()
	})
	return r
}

// waitFor waits until a log line matches re and returns it.
func (r *kaRun) waitFor(re string, within time.Duration) string {
	r.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(within)
	seen := 0
	for {
		r.mu.Lock()
		lines, more := r.lines, r.more
		r.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if rx.MatchString(lines[seen]) {
				return lines[seen]
			}
		}
		select {
		case <-more:
		case <-r.done:
			r.t.Fatalf("keepalived exited before logging %q:\n%s", re, strings.Join(lines, "\n"))
		case <-deadline:
			r.t.Fatalf("keepalived did not log %q within %s:\n%s", re, within, strings.Join(lines, "\n"))
		}
	}
}

// versionLab is a namespace with eth0 (192.0.2.11/24) wired to a silent
// peer, and a root-owned directory for configs and scripts.
func versionLab(t *testing.T) (*netnstest.NS, string) {
	t.Helper()
	netnstest.Require(t)
	ns := contribNS(t)
	dir, err := os.MkdirTemp("/var/tmp", "vipkit-versions-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return ns, dir
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// eachBuild runs f on every keepalived build, as a subtest named by release.
func eachBuild(t *testing.T, f func(t *testing.T, b repo.KeepalivedBuild)) {
	t.Helper()
	for _, b := range keepalivedBuilds(t) {
		t.Run(b.String(), func(t *testing.T) { f(t, b) })
	}
}

// masterConf is one VRRPv3 instance that becomes MASTER alone at once;
// blocks (track files, scripts) come before it, as keepalived needs.
func masterConf(global, blocks, instance string) string {
	return "global_defs {\n    script_user root\n    vrrp_version 3\n" + global + "}\n\n" + blocks +
		"vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    advert_int 0.1\n" + instance + "}\n"
}

// TestPrivilegedVersionsNoVirtualIPAddress: an instance without VIPs runs
// VRRPv3 (sub-second adverts) and becomes MASTER where keepalived knows
// no_virtual_ipaddress (2.2.8 and later); 2.2.7 does not know the keyword
// and drops the instance. This is what makes the vipctl-owned mode as quick
// as the keepalived-owned one. Strict mode clears the keyword (2.3.3's
// vrrp.c says so) and the instance is dropped again.
func TestPrivilegedVersionsNoVirtualIPAddress(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			eachBuild(t, func(t *testing.T, b repo.KeepalivedBuild) {
				ns, dir := versionLab(t)
				conf := filepath.Join(dir, "k.conf")
				global := ""
				if strict {
					global = "    vrrp_strict\n"
				}
				writeFile(t, conf, masterConf(global, "", "    no_virtual_ipaddress\n"), 0o644)
				r := startKeepalived(t, ns, b.Path, conf, dir)
				switch {
				case b.Version.Less(keepalived.NoVIPv3):
					r.waitFor(`Unknown keyword 'no_virtual_ipaddress'`, 10*time.Second)
				case strict:
					r.waitFor(`\(VI_1\) no_virtual_ipaddress and strict mode incompatible`, 10*time.Second)
				default:
					r.waitFor(`^\(VI_1\) Entering MASTER STATE$`, 10*time.Second)
					return
				}
				r.waitFor(`\(VI_1\) No VIP specified; at least one is required`, 10*time.Second)
			})
		})
	}
}

// TestPrivilegedVersionsTypedRouteWithoutPrepend: a typed virtual_routes
// entry (the local route's source hint) without `prepend` is installed by
// keepalived 2.3.2 and later, and silently not by 2.2.7 (NLM_F_EXCL, the
// kernel answers EEXIST, keepalived takes that as success). With
// `prepend` both install it. vipctl check warns only before 2.3.2.
func TestPrivilegedVersionsTypedRouteWithoutPrepend(t *testing.T) {
	for _, prepend := range []bool{false, true} {
		t.Run(fmt.Sprintf("prepend=%v", prepend), func(t *testing.T) {
			eachBuild(t, func(t *testing.T, b repo.KeepalivedBuild) {
				ns, dir := versionLab(t)
				route := "        local 192.0.2.100/32 dev eth0 src 192.0.2.11 table local scope host"
				if prepend {
					route += " prepend"
				}
				conf := filepath.Join(dir, "k.conf")
				writeFile(t, conf, masterConf("", "", "    virtual_ipaddress {\n        192.0.2.100/32\n    }\n    virtual_routes {\n"+route+"\n    }\n"), 0o644)
				r := startKeepalived(t, ns, b.Path, conf, dir)
				r.waitFor(`^\(VI_1\) Entering MASTER STATE$`, 10*time.Second)
				// keepalived adds the route right after the VIP, before it
				// logs the first GARP.
				r.waitFor(`Sending gratuitous ARP on eth0 for 192.0.2.100`, 10*time.Second)
				out := ns.Exec(t, "ip", "-4", "route", "show", "table", "local", "192.0.2.100")
				installed := strings.Contains(out, "proto keepalived") && strings.Contains(out, "src 192.0.2.11")
				want := prepend || b.Version.AtLeast(keepalived.TypedRoutesFixed)
				if installed != want {
					t.Errorf("keepalived %s, prepend %v: hint route installed %v, want %v:\n%s", b, prepend, installed, want, out)
				}
			})
		})
	}
}

// hookScript records, for each hook, its arguments and whether the VIP
// was on eth0 when it ran.
const hookScript = `#!/bin/sh
if ip -4 -o addr show dev eth0 | grep -q ' 192.0.2.100/'; then vip=1; else vip=0; fi
echo "$* vip=$vip" >>"$(dirname "$0")/hooks.log"
`

// fifoScript copies the notify FIFO (its path is the last argument).
const fifoScript = `#!/bin/sh
for last; do :; done
exec cat "$last" >>"$(dirname "$0")/fifo.log"
`

// TestPrivilegedVersionsHookOrderAndFIFO: what vipkit builds on is the same
// on every release: notify_master runs after keepalived added the VIP, the
// generic notify gets INSTANCE NAME STATE PRIORITY, notify_fault and
// notify_stop run after it deleted it, and the FIFO carries
// `INSTANCE "VI_1" STATE PRIO` lines in transition order.
func TestPrivilegedVersionsHookOrderAndFIFO(t *testing.T) {
	eachBuild(t, func(t *testing.T, b repo.KeepalivedBuild) {
		ns, dir := versionLab(t)
		hook, fifo := filepath.Join(dir, "hook.sh"), filepath.Join(dir, "fifo.sh")
		writeFile(t, hook, hookScript, 0o755)
		writeFile(t, fifo, fifoScript, 0o755)
		writeFile(t, filepath.Join(dir, "fault"), "0\n", 0o644)
		conf := filepath.Join(dir, "k.conf")
		writeFile(t, conf, masterConf(
			"    enable_script_security\n    vrrp_notify_fifo "+filepath.Join(dir, "notify.fifo")+"\n    vrrp_notify_fifo_script "+fifo+"\n",
			"track_file fault {\n    file "+filepath.Join(dir, "fault")+"\n}\n\n",
			"    virtual_ipaddress {\n        192.0.2.100/32\n    }\n    track_file {\n        fault weight 0\n    }\n"+
				"    notify_master \""+hook+" master\"\n    notify_fault \""+hook+" fault\"\n    notify_stop \""+hook+" stop\"\n    notify \""+hook+" generic\"\n"), 0o644)
		r := startKeepalived(t, ns, b.Path, conf, dir)
		r.waitFor(`^\(VI_1\) Entering MASTER STATE$`, 10*time.Second)
		waitLog(t, filepath.Join(dir, "hooks.log"), "master vip=1")
		writeFile(t, filepath.Join(dir, "fault"), "1\n", 0o644)
		r.waitFor(`^\(VI_1\) Entering FAULT STATE$`, 10*time.Second)
		waitLog(t, filepath.Join(dir, "hooks.log"), "fault vip=0")
		for _, want := range []string{"generic INSTANCE VI_1 MASTER 150 vip=", "generic INSTANCE VI_1 FAULT 150 vip=0"} {
			waitLog(t, filepath.Join(dir, "hooks.log"), want)
		}
		// FIFO lines, in order (a BACKUP or FAULT at start-up may precede).
		got := waitLog(t, filepath.Join(dir, "fifo.log"), `INSTANCE "VI_1" FAULT 150`)
		if i, j := strings.Index(got, `INSTANCE "VI_1" MASTER 150`+"\n"), strings.Index(got, `INSTANCE "VI_1" FAULT 150`+"\n"); i < 0 || j < i {
			t.Errorf("FIFO lines out of order or malformed:\n%s", got)
		}
	})
}

// waitLog waits until the file contains want and returns its content.
func waitLog(t *testing.T, path, want string) string {
	t.Helper()
	var text string
	netnstest.WaitFor(t, 10*time.Second, fmt.Sprintf("%q in %s", want, filepath.Base(path)), func() bool {
		b, _ := os.ReadFile(path)
		text = string(b)
		return strings.Contains(text, want)
	})
	return text
}

// slowScript is a track script that takes 2.5 s while keepalived asks every
// second: it logs how many runs are in progress when it starts.
const slowScript = `#!/bin/sh
d="$(dirname "$0")"
mkdir -p "$d/running"
touch "$d/running/$$"
echo "start $(ls "$d/running" | wc -l)" >>"$d/runs.log"
sleep 2.5
rm -f "$d/running/$$"
exit 0
`

// TestPrivilegedVersionsSlowTrackScript: a track script slower than its
// interval (fenced_alive asking a hung fenced) runs overlapping copies on
// keepalived before 2.3.3 (it logs "expect idle - skipping run" and starts
// one anyway, fixed by keepalived commit 94d40e3b); 2.3.3 waits for the
// running one.
func TestPrivilegedVersionsSlowTrackScript(t *testing.T) {
	eachBuild(t, func(t *testing.T, b repo.KeepalivedBuild) {
		ns, dir := versionLab(t)
		slow := filepath.Join(dir, "slow.sh")
		writeFile(t, slow, slowScript, 0o755)
		conf := filepath.Join(dir, "k.conf")
		writeFile(t, conf, masterConf("    enable_script_security\n",
			"vrrp_script slow {\n    script "+slow+"\n    interval 1\n    timeout 5\n}\n\n",
			"    virtual_ipaddress {\n        192.0.2.100/32\n    }\n    track_script {\n        slow\n    }\n"), 0o644)
		startKeepalived(t, ns, b.Path, conf, dir)
		time.Sleep(6 * time.Second)
		b2, err := os.ReadFile(filepath.Join(dir, "runs.log"))
		if err != nil {
			t.Fatal(err)
		}
		most := 0
		for _, l := range strings.Split(strings.TrimSpace(string(b2)), "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "start %d", &n); err == nil && n > most {
				most = n
			}
		}
		overlaps := most > 1
		want := b.Version.Less(keepalived.Version{Major: 2, Minor: 3, Patch: 3})
		if overlaps != want {
			t.Errorf("keepalived %s: overlapping runs of a slow track script %v (at most %d at once), want %v:\n%s", b, overlaps, most, want, b2)
		}
	})
}

// TestPrivilegedVersionsTrackFile: what fenced relies on is the same on
// every release: weight 0 and a non-zero value is FAULT at once; an empty
// or deleted file counts as 0 (fail open, so fenced never deletes it);
// init_file without overwrite keeps an existing value at start-up (the
// maintenance file survives a restart), with overwrite replaces it.
func TestPrivilegedVersionsTrackFile(t *testing.T) {
	eachBuild(t, func(t *testing.T, b repo.KeepalivedBuild) {
		ns, dir := versionLab(t)
		keep, over := filepath.Join(dir, "keep"), filepath.Join(dir, "over")
		writeFile(t, keep, "1\n", 0o644)
		writeFile(t, over, "0\n", 0o644)
		conf := filepath.Join(dir, "k.conf")
		writeFile(t, conf, masterConf("",
			"track_file keep {\n    file "+keep+"\n    weight 0\n    init_file 0\n}\n\n"+
				"track_file over {\n    file "+over+"\n    weight 0\n    init_file 1 overwrite\n}\n\n",
			"    virtual_ipaddress {\n        192.0.2.100/32\n    }\n    track_file {\n        keep\n        over\n    }\n"), 0o644)
		r := startKeepalived(t, ns, b.Path, conf, dir)
		// At start-up keepalived says "entering FAULT state (tracked file
		// keep has status -254)", lower case.
		r.waitFor(`^\(VI_1\): entering FAULT state \(tracked file keep has status`, 10*time.Second)
		for path, want := range map[string]string{keep: "1", over: "1"} {
			if got, _ := os.ReadFile(path); strings.TrimSpace(string(got)) != want {
				t.Errorf("%s after start-up = %q, want %s", filepath.Base(path), got, want)
			}
		}
		writeFile(t, over, "0\n", 0o644)
		writeFile(t, keep, "", 0o644) // empty: fails open
		r.waitFor(`^\(VI_1\) Entering MASTER STATE$`, 10*time.Second)
		writeFile(t, over, "1\n", 0o644)
		r.waitFor(`tracked file over now FAULT state`, 10*time.Second)
		if err := os.Remove(over); err != nil {
			t.Fatal(err)
		}
		r.waitFor(`tracked file over leaving FAULT state`, 10*time.Second)
	})
}
