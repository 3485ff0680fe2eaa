// Command hooks measures what a keepalived hook costs, side by side in one
// run inside one network namespace: vipctl against a shell hook calling
// ip(8) for the same steps, and against exec'ing an empty Go binary (the
// floor of starting any Go program). It prints medians and ratios.
//
// Run as root: go run ./test/bench/hooks -vipctl bin/vipctl (make bench).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// shellHook is the classic hand-written route-hint hook (seed 001), step
// for step: bash, the VIP's interface and the interface's primary address
// found with ip(8) and cut/sed, checks, a syslog line, then the route. Its
// del puts the kernel's route back (as vipctl does) instead of deleting it,
// so that rounds can repeat on an assigned VIP.
const shellHook = `#!/usr/bin/env bash
log() { logger -t route-hint "$1" 2>/dev/null; }
fail() { logger -s -t route-hint "$1" 2>/dev/null; exit 1; }
action=$1 vip=$2
[[ $# -eq 2 && -n $action && -n $vip ]] || fail "usage: route-hint add|del VIP"
dev=$(ip route show table local "$vip" 2>/dev/null | cut -d' ' -f4)
[[ -n $dev ]] || fail "$vip is not local: it must be assigned to an interface"
src=$(ip -o -4 addr show dev "$dev" primary | sed -nr '1s/^.*inet ([^/]*).*$/\1/p')
[[ -n $src ]] || fail "no address on $dev"
[[ $src != "$vip" ]] || fail "primary address $src of $dev is the VIP"
case $action in
add) log "setting source $src on the local route of $vip"
     ip route replace table local local "$vip" dev "$dev" src "$src" ;;
del) log "restoring the kernel's local route of $vip"
     ip route replace table local local "$vip" dev "$dev" src "$vip" proto kernel scope host ;;
esac
`

const emptyMain = "package main\n\nfunc main() {}\n"

// baseline is -baseline: an earlier vipctl to compare with, or none.
var baseline string

func main() {
	vipctl := flag.String("vipctl", "bin/vipctl", "vipctl binary to measure")
	rounds := flag.Int("rounds", 300, "measurements per variant")
	scaleRounds := flag.Int("scale-rounds", 7, "measurements per variant of the host-scale part (many VIPs, stale state)")
	flag.StringVar(&baseline, "baseline", "", "another vipctl binary (an earlier build) whose up and down are measured in the same rounds, for a ratio")
	flag.Parse()
	if err := run(*vipctl, *rounds, *scaleRounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func run(vipctl string, rounds, scaleRounds int) error {
	vipctl, err := filepath.Abs(vipctl)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vipkit-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(emptyMain), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module empty\n\ngo 1.26\n"), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", empty, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build empty Go binary: %v: %s", err, out)
	}
	hook := filepath.Join(dir, "route-hint.sh")
	os.WriteFile(hook, []byte(shellHook), 0o755)

	ns := fmt.Sprintf("vkbench%d", os.Getpid())
	if err := sh("ip", "netns", "add", ns); err != nil {
		return err
	}
	defer sh("ip", "netns", "del", ns)
	peer := ns + "p"
	if err := sh("ip", "netns", "add", peer); err != nil {
		return err
	}
	defer sh("ip", "netns", "del", peer)
	// fresh (re)creates the link with the node's own addresses and
	// keepalived's VIP. The host-scale part runs it before every timed
	// IPv6 add: a link that released IPv6 addresses in the last seconds
	// still holds MLDv2 leave records for their solicited-node groups,
	// and every address add walks them (below), so an add right after a
	// release measures the release's history, not the add.
	fresh := func() error {
		sh("ip", "-n", ns, "link", "del", "eth0") // absent on the first call
		for _, c := range [][]string{
			{"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "eth0", "netns", peer},
			{"ip", "-n", ns, "link", "set", "eth0", "up"}, {"ip", "-n", peer, "link", "set", "eth0", "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "addr", "add", "192.0.2.11/24", "dev", "eth0"},
			{"ip", "-n", ns, "addr", "add", "2001:db8::11/64", "dev", "eth0", "nodad"},
			{"ip", "-n", ns, "addr", "add", "192.0.2.100/32", "dev", "eth0"}, // keepalived's VIP
		} {
			if err := sh(c...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fresh(); err != nil {
		return err
	}
	// Children inherit the network namespace of the thread that forks them.
	runtime.LockOSThread()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	if err := netns.Set(h); err != nil {
		return err
	}
	// The state directory is /run/vipkit in production: tmpfs on every
	// systemd host. Use tmpfs here too, not the temporary directory's disk.
	stateDir, err := os.MkdirTemp("/dev/shm", "vipkit-bench-state")
	if err != nil {
		return fmt.Errorf("state directory on tmpfs: %w", err)
	}
	defer os.RemoveAll(stateDir)
	env := append(os.Environ(), "VIPKIT_CONFIG=", "VIPKIT_STATE_DIR="+stateDir)
	// Output goes to /dev/null: capturing it (pipes and copying
	// goroutines) would add ~0.5 ms to every exec, measurement overhead that
	// weighs on a one-process hook more than on a shell script. A failing
	// command is run again with its output captured for the error.
	exe := func(args ...string) func() error { return exeEnv(env, args...) }
	if err := measureHooks(exe, empty, hook, vipctl, rounds); err != nil {
		return err
	}
	return measureScale(vipctl, stateDir, scaleRounds, fresh)
}

// exeEnv runs one command with env, its output discarded.
func exeEnv(env []string, args ...string) func() error {
	return func() error {
		c := exec.Command(args[0], args[1:]...)
		c.Env = env
		if err := c.Run(); err != nil {
			c = exec.Command(args[0], args[1:]...)
			c.Env = env
			out, _ := c.CombinedOutput()
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
}

func measureHooks(exe func(args ...string) func() error, empty, hook, vipctl string, rounds int) error {
	pair := func(a, b func() error) func() error {
		return func() error {
			if err := a(); err != nil {
				return err
			}
			return b()
		}
	}
	// A refresher is stopped when keepalived leaves MASTER, at least one
	// advertisement interval after it started: let it settle, untimed.
	settle := func(f func() error) func() error {
		return func() error {
			time.Sleep(50 * time.Millisecond)
			return f()
		}
	}
	variants := []struct {
		name string
		fn   func() error
		// untimed runs before the timed call
		before func() error
	}{
		{"empty Go binary (exec floor)", exe(empty), nil},
		{"shell hook: route hint add+del", pair(exe(hook, "add", "192.0.2.100"), exe(hook, "del", "192.0.2.100")), nil},
		{"vipctl route-src add+del", pair(exe(vipctl, "route-src", "add", "--dev", "eth0", "192.0.2.100"), exe(vipctl, "route-src", "del", "--dev", "eth0", "192.0.2.100")), nil},
		{"vipctl up --own (no refresher)", exe(vipctl, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", "192.0.2.101"), nil},
		{"vipctl down --own", exe(vipctl, "down", "--own", "--dev", "eth0", "192.0.2.101"), nil},
		{"vipctl up --own (starts refresher)", exe(vipctl, "up", "--own", "--dev", "eth0", "192.0.2.102"), nil},
		{"vipctl down --own (stops refresher)", exe(vipctl, "down", "--own", "--dev", "eth0", "192.0.2.102"), settle(func() error { return nil })},
	}
	if baseline != "" {
		b, err := filepath.Abs(baseline)
		if err != nil {
			return err
		}
		variants = append(variants, []struct {
			name   string
			fn     func() error
			before func() error
		}{
			{"baseline vipctl up --own (no refresher)", exe(b, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", "192.0.2.103"), nil},
			{"baseline vipctl down --own", exe(b, "down", "--own", "--dev", "eth0", "192.0.2.103"), nil},
		}...)
	}
	vs := make([]variant, len(variants))
	for i, v := range variants {
		vs[i] = variant{name: v.name, fn: v.fn, before: v.before}
	}
	samples, err := interleaved(vs, rounds)
	if err != nil {
		return err
	}
	med := make([]time.Duration, len(variants))
	fmt.Printf("%d rounds, interleaved, in one network namespace (%s, %d CPUs); state on tmpfs\n\n", rounds, runtime.Version(), runtime.NumCPU())
	fmt.Printf("%-38s %10s %10s %10s\n", "variant", "median", "p90", "x floor")
	for i, v := range variants {
		s := samples[i]
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		med[i] = s[len(s)/2]
		fmt.Printf("%-38s %10s %10s %10.2f\n", v.name, ms(med[i]), ms(s[len(s)*9/10]), float64(med[i])/float64(med[0]))
	}
	fmt.Printf("\nshell hook / vipctl route-src add+del: %.1fx faster (goal >= 4x)\n", float64(med[1])/float64(med[2]))
	fmt.Printf("vipctl up (no refresher) / exec floor: %.2fx (goal <= 3x, median under 3 ms)\n", float64(med[3])/float64(med[0]))
	fmt.Printf("vipctl down / exec floor:              %.2fx (goal <= 3x, median under 3 ms)\n", float64(med[4])/float64(med[0]))
	if baseline != "" {
		fmt.Printf("vipctl up / baseline up:               %.3fx\n", float64(med[3])/float64(med[7]))
		fmt.Printf("vipctl down / baseline down:           %.3fx\n", float64(med[4])/float64(med[8]))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// measureScale is the host-scale part (DESIGN I10): up and down of many VIPs
// in one command, and a one-VIP hook facing a state that holds 10,000 stale
// entries against the same hook with an empty state, interleaved.
func measureScale(vipctl, stateDir string, rounds int, fresh func() error) error {
	sizes := []int{50, 500, 2000}
	vips := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("2001:db8:1::%x", i+1)
		}
		return out
	}
	env := func(dir string) []string {
		return append(os.Environ(), "VIPKIT_CONFIG=", "VIPKIT_STATE_DIR="+dir)
	}
	staleDir, err := os.MkdirTemp("/dev/shm", "vipkit-bench-stale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staleDir)
	emptyDir, err := os.MkdirTemp("/dev/shm", "vipkit-bench-empty")
	if err != nil {
		return err
	}
	defer os.RemoveAll(emptyDir)
	// 10,000 released VIPs, touched by hooks forked in the first seconds
	// after boot: what a long-lived host accumulates.
	var stale strings.Builder
	stale.WriteString("# vipctl state 1: one VIP per line\n")
	for i := range 10000 {
		fmt.Fprintf(&stale, "vip=2001:db8:f::%x/128 dev=eth0 action=down ticks=%d pid=%d own=1 instance=VI_%d at=1795594797408215427\n", i+1, 100+i/100, 1000+i, i/50)
	}
	seed := func() error {
		return os.WriteFile(filepath.Join(staleDir, "vipctl.state"), []byte(stale.String()), 0o600)
	}
	hookPair := func(dir string) func() error {
		add := exeEnv(env(dir), vipctl, "route-src", "add", "--dev", "eth0", "192.0.2.100")
		del := exeEnv(env(dir), vipctl, "route-src", "del", "--dev", "eth0", "192.0.2.100")
		return func() error {
			if err := add(); err != nil {
				return err
			}
			return del()
		}
	}
	// The kernel's own cost, side by side: ip(8) in batch mode adding and
	// deleting the same addresses (one netlink request each, no hint). The
	// kernel's IPv6 address add and delete grow with the addresses already
	// on the link, so this floor is itself superlinear.
	batch := func(verb string, n int) (string, error) {
		var b strings.Builder
		for _, v := range vips(n) {
			if verb == "add" {
				fmt.Fprintf(&b, "addr add %s/128 dev eth0 nodad preferred_lft 0\n", v)
			} else {
				fmt.Fprintf(&b, "addr del %s/128 dev eth0\n", v)
			}
		}
		f := filepath.Join(staleDir, fmt.Sprintf("ip-%s-%d", verb, n))
		return f, os.WriteFile(f, []byte(b.String()), 0o600)
	}
	var vs []variant
	idx := map[string]int{}
	add := func(key string, v variant) {
		idx[key] = len(vs)
		vs = append(vs, v)
	}
	for _, n := range sizes {
		args := append([]string{vipctl, "up", "--own", "--refresh-for", "0s", "--count", "1", "--dev", "eth0"}, vips(n)...)
		add(fmt.Sprint("up", n), variant{name: fmt.Sprintf("vipctl up --own, %d VIPs", n), before: fresh, fn: exeEnv(env(stateDir), args...)})
		args = append([]string{vipctl, "down", "--own", "--dev", "eth0"}, vips(n)...)
		add(fmt.Sprint("down", n), variant{name: fmt.Sprintf("vipctl down --own, %d VIPs", n), fn: exeEnv(env(stateDir), args...)})
	}
	for _, n := range sizes {
		addB, err := batch("add", n)
		if err != nil {
			return err
		}
		delB, err := batch("del", n)
		if err != nil {
			return err
		}
		add(fmt.Sprint("ipadd", n), variant{name: fmt.Sprintf("kernel floor: ip -b addr add, %d", n), before: fresh, fn: exeEnv(nil, "ip", "-b", addB)})
		add(fmt.Sprint("ipdel", n), variant{name: fmt.Sprintf("kernel floor: ip -b addr del, %d", n), fn: exeEnv(nil, "ip", "-b", delB)})
	}
	// A flap: the same 500 VIPs taken back 0.1 s after they were released,
	// while the link still holds the MLDv2 leave records of their groups.
	up500 := exeEnv(env(stateDir), append([]string{vipctl, "up", "--own", "--refresh-for", "0s", "--count", "1", "--dev", "eth0"}, vips(500)...)...)
	down500 := exeEnv(env(stateDir), append([]string{vipctl, "down", "--own", "--dev", "eth0"}, vips(500)...)...)
	add("flapup", variant{name: "vipctl up, 500 VIPs released 0.1 s ago", before: func() error {
		for _, f := range []func() error{fresh, up500, down500} {
			if err := f(); err != nil {
				return err
			}
		}
		time.Sleep(100 * time.Millisecond)
		return nil
	}, fn: up500})
	add("flapdown", variant{name: "vipctl down of those 500", fn: down500})
	// IPv4 beside it: the documentation ranges hold 508 /32 VIPs.
	vips4 := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s.%d", []string{"198.51.100", "203.0.113"}[i/254], i%254+1)
		}
		return out
	}
	for _, n := range []int{50, 500} {
		args := append([]string{vipctl, "up", "--own", "--refresh-for", "0s", "--count", "1", "--dev", "eth0"}, vips4(n)...)
		add(fmt.Sprint("up4_", n), variant{name: fmt.Sprintf("vipctl up --own, %d IPv4 VIPs", n), fn: exeEnv(env(stateDir), args...)})
		args = append([]string{vipctl, "down", "--own", "--dev", "eth0"}, vips4(n)...)
		add(fmt.Sprint("down4_", n), variant{name: fmt.Sprintf("vipctl down --own, %d IPv4 VIPs", n), fn: exeEnv(env(stateDir), args...)})
	}
	add("empty", variant{name: "route-src add+del, empty state", fn: hookPair(emptyDir)})
	add("pruned", variant{name: "route-src add+del, after 10,000 stale", fn: hookPair(staleDir)})
	add("first", variant{name: "route-src add+del, facing 10,000 stale", before: seed, fn: hookPair(staleDir)})
	if err := seed(); err != nil {
		return err
	}
	samples, err := interleaved(vs, rounds)
	if err != nil {
		return err
	}
	med := make([]time.Duration, len(vs))
	fmt.Printf("\nhost scale: %d rounds, interleaved; IPv6 VIPs added and removed by vipctl (--own), no refresher;\n", rounds)
	fmt.Printf("every IPv6 add but the flap's on a link created just before it\n\n")
	fmt.Printf("%-40s %10s %10s\n", "variant", "median", "max")
	for i, v := range vs {
		s := samples[i]
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		med[i] = s[len(s)/2]
		fmt.Printf("%-40s %10s %10s\n", v.name, ms(med[i]), ms(s[len(s)-1]))
	}
	m := func(key string) time.Duration { return med[idx[key]] }
	ratio := func(a, b string) float64 { return float64(m(a)) / float64(m(b)) }
	fmt.Printf("\nup 500: %s, down 500: %s (goal <= 50 ms each)\n", ms(m("up500")), ms(m("down500")))
	fmt.Printf("up 2000 / up 500: %.2fx, down 2000 / down 500: %.2fx (goal <= 4.5x)\n", ratio("up2000", "up500"), ratio("down2000", "down500"))
	fmt.Printf("kernel floor 2000 / 500: add %.2fx, del %.2fx\n", ratio("ipadd2000", "ipadd500"), ratio("ipdel2000", "ipdel500"))
	for _, n := range sizes {
		fmt.Printf("vipctl - kernel floor at %d: up %s, down %s\n", n,
			ms(m(fmt.Sprint("up", n))-m(fmt.Sprint("ipadd", n))), ms(m(fmt.Sprint("down", n))-m(fmt.Sprint("ipdel", n))))
	}
	fmt.Printf("up 500 released 0.1 s ago / on a fresh link: %.2fx\n", ratio("flapup", "up500"))
	fmt.Printf("IPv4: up 500: %s, down 500: %s (goal <= 50 ms each); 500 / 50: up %.2fx, down %.2fx\n", ms(m("up4_500")), ms(m("down4_500")), ratio("up4_500", "up4_50"), ratio("down4_500", "down4_50"))
	fmt.Printf("one-VIP hook after 10,000 stale entries / empty state: %.2fx (goal <= 1.10x)\n", ratio("pruned", "empty"))
	fmt.Printf("one-VIP hook that prunes 10,000 stale entries / empty state: %.2fx (paid once)\n", ratio("first", "empty"))
	return nil
}

// variant is one measured command; before runs untimed ahead of each call.
type variant struct {
	name   string
	before func() error
	fn     func() error
}

// interleaved runs every variant once per round, in turn, so that machine
// noise hits every variant alike, and returns the timings per variant.
func interleaved(vs []variant, rounds int) ([][]time.Duration, error) {
	samples := make([][]time.Duration, len(vs))
	for range rounds {
		for i, v := range vs {
			if v.before != nil {
				if err := v.before(); err != nil {
					return nil, err
				}
			}
			start := time.Now()
			if err := v.fn(); err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], time.Since(start))
		}
	}
	return samples, nil
}
