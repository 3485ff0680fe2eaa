// Command fenced measures fenced at rest: resident memory, CPU time and the
// etcd requests it makes, over a window, against a real etcd, in a network
// namespace. Baseline in the same run: the etcd server's own CPU time.
//
// Run as root: go run ./test/bench/fenced -bin bin (make bench).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "directory with fenced and etcd")
	window := flag.Duration("window", 30*time.Second, "measurement window at rest")
	flag.Parse()
	if err := run(*bin, *window); err != nil {
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

func run(bin string, window time.Duration) error {
	bin, _ = filepath.Abs(bin)
	dir, err := os.MkdirTemp("", "vipkit-bench-fenced")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns := fmt.Sprintf("vkfb%d", os.Getpid())
	if err := sh("ip", "netns", "add", ns); err != nil {
		return err
	}
	defer sh("ip", "netns", "del", ns)
	for _, c := range [][]string{
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"}, {"ip", "-n", ns, "link", "set", "peer0", "up"},
		{"ip", "-n", ns, "addr", "add", "192.0.2.11/24", "dev", "eth0"},
		{"ip", "-n", ns, "addr", "add", "192.0.2.100/32", "dev", "eth0"},
	} {
		if err := sh(c...); err != nil {
			return err
		}
	}
	etcd := exec.Command("ip", "netns", "exec", ns, filepath.Join(bin, "etcd"), "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "default=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381", "--log-level", "error")
	if err := etcd.Start(); err != nil {
		return err
	}
	defer func() { etcd.Process.Kill(); etcd.Wait() }()
	state := filepath.Join(dir, "state")
	fenced := exec.Command("ip", "netns", "exec", ns, filepath.Join(bin, "fenced"), "run",
		"--endpoints", "http://127.0.0.1:2379", "--node", "bench", "--dev", "eth0", "--vip", "192.0.2.100",
		"--state-dir", state, "--vrrp-pid-file", filepath.Join(dir, "none.pid"), "--log-file", filepath.Join(dir, "fenced.log"))
	fenced.Env = append(os.Environ(), "VIPKIT_CONFIG=")
	if err := fenced.Start(); err != nil {
		return err
	}
	defer func() { fenced.Process.Kill(); fenced.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(state, "VI_1.fence"))
		if strings.TrimSpace(string(b)) == "0" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fenced did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ip netns exec execs in place: the PIDs are the daemons'.
	fpid, epid := fenced.Process.Pid, etcd.Process.Pid
	// The HTTP client dials inside the namespace, where etcd listens.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := nsDo(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
	metrics := func() (float64, error) { return keepalives(client) }
	time.Sleep(2 * time.Second) // past start-up
	cpuF0, cpuE0 := cpuTime(fpid), cpuTime(epid)
	ka0, err := metrics()
	if err != nil {
		return err
	}
	start := time.Now()
	var peakRSS int
	for time.Since(start) < window {
		time.Sleep(time.Second)
		if r := rss(fpid); r > peakRSS {
			peakRSS = r
		}
	}
	el := time.Since(start)
	cpuF, cpuE := cpuTime(fpid)-cpuF0, cpuTime(epid)-cpuE0
	ka1, err := metrics()
	if err != nil {
		return err
	}
	fmt.Printf("fenced at rest, %s window, TTL 5s (renewal every 1.67s)\n\n", el.Round(time.Second))
	fmt.Printf("fenced resident memory (peak VmRSS):  %.1f MB (goal < 30 MB)\n", float64(peakRSS)/1024)
	fmt.Printf("fenced CPU time:                      %s = %.3f%% of one CPU\n", cpuF, 100*cpuF.Seconds()/el.Seconds())
	fmt.Printf("etcd server CPU time (baseline):      %s = %.3f%% of one CPU (fenced / etcd = %.2f)\n", cpuE, 100*cpuE.Seconds()/el.Seconds(), cpuF.Seconds()/cpuE.Seconds())
	fmt.Printf("etcd LeaseKeepAlive RPCs per second:  %.3f (one per TTL/3 = 0.600)\n", (ka1-ka0)/el.Seconds())
	return nil
}

// cpuTime is a process's user+system time from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rss is VmRSS in kB.
func rss(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// keepalives reads etcd's count of LeaseKeepAlive calls started (KeepAliveOnce opens one stream per renewal).
func keepalives(client *http.Client) (float64, error) {
	resp, err := client.Get("http://127.0.0.1:2381/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var total float64
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "grpc_server_started_total") && strings.Contains(l, `grpc_method="LeaseKeepAlive"`) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			total += v
		}
	}
	return total, sc.Err()
}
