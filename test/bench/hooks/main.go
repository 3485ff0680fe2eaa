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

func main() {
	vipctl := flag.String("vipctl", "bin/vipctl", "vipctl binary to measure")
	rounds := flag.Int("rounds", 300, "measurements per variant")
	flag.Parse()
	if err := run(*vipctl, *rounds); err != nil {
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

func run(vipctl string, rounds int) error {
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
	for _, c := range [][]string{
		{"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "eth0", "netns", peer},
		{"ip", "-n", ns, "link", "set", "eth0", "up"}, {"ip", "-n", peer, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "addr", "add", "192.0.2.11/24", "dev", "eth0"},
		{"ip", "-n", ns, "addr", "add", "192.0.2.100/32", "dev", "eth0"}, // keepalived's VIP
	} {
		if err := sh(c...); err != nil {
			return err
		}
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
	exe := func(args ...string) func() error {
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
	samples := make([][]time.Duration, len(variants))
	for r := 0; r < rounds; r++ {
		// Interleaved, so that machine noise hits every variant alike.
		for i, v := range variants {
			if v.before != nil {
				if err := v.before(); err != nil {
					return err
				}
			}
			start := time.Now()
			if err := v.fn(); err != nil {
				return err
			}
			samples[i] = append(samples[i], time.Since(start))
		}
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
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
