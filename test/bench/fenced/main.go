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
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
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
	// The HTTP client dials inside the namespace, where etcd and fenced
	// listen.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := nsDo(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
	epid := etcd.Process.Pid
	fmt.Printf("fenced at rest, %s windows, TTL 5s (renewal every 1.67s)\n\n", window)
	off, err := atRest(ns, bin, dir, "off", client, epid, window, false)
	if err != nil {
		return err
	}
	on, err := atRest(ns, bin, dir, "on", client, epid, window, true)
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %12s %12s\n", "", "metrics off", "metrics on")
	fmt.Printf("%-40s %9.1f MB %9.1f MB   (goal < 30 MB)\n", "resident memory (peak VmRSS)", off.rssMB, on.rssMB)
	fmt.Printf("%-40s %10.3f %% %10.3f %%\n", "CPU, % of one CPU", off.cpuPct, on.cpuPct)
	fmt.Printf("%-40s %12.2f %12.2f\n", "CPU / etcd server's CPU (baseline)", off.cpuVsEtcd, on.cpuVsEtcd)
	fmt.Printf("%-40s %12.3f %12.3f   (one per TTL/3 = 0.600)\n", "etcd LeaseKeepAlive RPCs per second", off.keepalives, on.keepalives)
	fmt.Printf("(metrics on: scraped every second during the window, 5-15x a usual scrape_interval)\n\n")
	fmt.Printf("scrape of /metrics, %d back to back (baseline: the same server answering 404 for another path):\n", scrapes)
	fmt.Printf("  1 instance, 1 VIP:       %s\n", on.scrape)
	big, err := bigHost(ns, bin, dir, client)
	if err != nil {
		return err
	}
	fmt.Printf("  20 instances, 1000 VIPs: %s\n", big)
	return nil
}

// scrapes is how many scrapes are timed.
const scrapes = 300

type rest struct {
	rssMB, cpuPct, cpuVsEtcd, keepalives float64
	scrape                               string
}

// startFenced runs fenced in the namespace with args and waits until its
// state file says healthy.
func startFenced(ns, bin, state string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(bin, "fenced"), "run"}, args...)...)
	cmd.Env = append(os.Environ(), "VIPKIT_CONFIG=")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(state, "fenced.json"))
		if strings.Contains(string(b), `"state": "healthy"`) {
			return cmd, nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("fenced did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stop(cmd *exec.Cmd) { cmd.Process.Kill(); cmd.Wait() }

// atRest measures fenced for one VIP over window; with metrics on, a
// scraper fetches /metrics every second meanwhile, then the scrape is
// timed.
func atRest(ns, bin, dir, name string, client *http.Client, epid int, window time.Duration, metrics bool) (rest, error) {
	var r rest
	state := filepath.Join(dir, "state-"+name)
	args := []string{"--endpoints", "http://127.0.0.1:2379", "--node", "bench-" + name, "--dev", "eth0", "--vip", "192.0.2.100",
		"--state-dir", state, "--vrrp-pid-file", filepath.Join(dir, "none.pid"), "--log-file", filepath.Join(dir, "fenced-"+name+".log")}
	if metrics {
		args = append(args, "--metrics", metricsAddr)
	}
	fenced, err := startFenced(ns, bin, state, args...)
	if err != nil {
		return r, err
	}
	defer stop(fenced)
	fpid := fenced.Process.Pid  // ip netns exec execs in place
	time.Sleep(2 * time.Second) // past start-up
	cpuF0, cpuE0 := cpuTime(fpid), cpuTime(epid)
	ka0, err := keepalives(client)
	if err != nil {
		return r, err
	}
	start := time.Now()
	var peakRSS int
	for time.Since(start) < window {
		time.Sleep(time.Second)
		if metrics {
			if _, err := get(client, "/metrics"); err != nil {
				return r, err
			}
		}
		if v := rss(fpid); v > peakRSS {
			peakRSS = v
		}
	}
	el := time.Since(start)
	cpuF, cpuE := cpuTime(fpid)-cpuF0, cpuTime(epid)-cpuE0
	ka1, err := keepalives(client)
	if err != nil {
		return r, err
	}
	r = rest{rssMB: float64(peakRSS) / 1024, cpuPct: 100 * cpuF.Seconds() / el.Seconds(), cpuVsEtcd: cpuF.Seconds() / cpuE.Seconds(),
		keepalives: (ka1 - ka0) / el.Seconds()}
	if metrics {
		if r.scrape, err = timeScrapes(client); err != nil {
			return r, err
		}
	}
	return r, nil
}

const metricsAddr = "127.0.0.1:9470"

func get(client *http.Client, path string) (int, error) {
	resp, err := client.Get("http://" + metricsAddr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && path == "/metrics" && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("scrape: %s", resp.Status)
	}
	return int(n), err
}

// timeScrapes times scrapes of /metrics against requests the same server
// answers 404 (the HTTP round trip alone), interleaved.
func timeScrapes(client *http.Client) (string, error) {
	var sc, base []time.Duration
	size := 0
	for range scrapes {
		t0 := time.Now()
		n, err := get(client, "/metrics")
		if err != nil {
			return "", err
		}
		sc = append(sc, time.Since(t0))
		size = n
		t0 = time.Now()
		if _, err := get(client, "/none"); err != nil {
			return "", err
		}
		base = append(base, time.Since(t0))
	}
	q := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		return d[int(p*float64(len(d)-1))]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
	return fmt.Sprintf("median %s, p90 %s, p99 %s (%d bytes); 404: median %s; ratio %.1fx",
		ms(q(sc, 0.5)), ms(q(sc, 0.9)), ms(q(sc, 0.99)), size, ms(q(base, 0.5)), float64(q(sc, 0.5))/float64(q(base, 0.5))), nil
}

// bigHost times scrapes of a host with 20 instances of 50 VIPs (1 IPv4,
// 49 IPv6), every VIP assigned and recorded by vipctl as held, with hook
// statistics for every instance and command.
func bigHost(ns, bin, dir string, client *http.Client) (string, error) {
	state := filepath.Join(dir, "state-big")
	var conf strings.Builder
	fmt.Fprintf(&conf, "node = \"bench-big\"\nstate_dir = %q\n\n[fenced]\nmetrics = %q\nvrrp_pid_file = %q\n\n", state, metricsAddr, filepath.Join(dir, "none.pid"))
	conf.WriteString("[[cluster]]\nname = \"main\"\nendpoints = [\"http://127.0.0.1:2379\"]\nttl = \"5s\"\nmargin = \"1.5s\"\n")
	st := &runstate.State{Entries: map[string]*runstate.Entry{}}
	var batch strings.Builder
	tk := runstate.Ticket{Ticks: 1, PID: 1}
	for i := range 20 {
		var vips []string
		for j := range 50 {
			a := fmt.Sprintf("2001:db8::%x:%x", i+1, j+1)
			if j == 0 {
				a = fmt.Sprintf("192.0.2.%d", 101+i)
			}
			vips = append(vips, strconv.Quote(a))
			v, err := vip.Parse(a)
			if err != nil {
				return "", err
			}
			st.Record(runstate.Entry{VIP: v, Dev: "eth0", Instance: fmt.Sprintf("VI_%d", i+1), Action: runstate.ActionUp, Ticket: tk, Announced: time.Now(), At: time.Now()})
			fmt.Fprintf(&batch, "address add %s dev eth0 nodad\n", v.Prefix())
		}
		fmt.Fprintf(&conf, "\n[[instance]]\nname = \"VI_%d\"\ndev = \"eth0\"\nvips = [%s]\ncluster = \"main\"\n", i+1, strings.Join(vips, ", "))
		st.Report(fmt.Sprintf("VI_%d", i+1), "MASTER", tk, time.Now())
	}
	for _, c := range []string{"notify", "up", "down", "announce"} {
		st.Hook(c).Observe(3*time.Millisecond, false, false)
	}
	cfg := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o600); err != nil {
		return "", err
	}
	fenced, err := startFenced(ns, bin, state, "--config", cfg, "--log-file", filepath.Join(dir, "fenced-big.log"))
	if err != nil {
		return "", err
	}
	defer stop(fenced)
	// Assigned after the start: fenced releases every guarded VIP before
	// its first lease, as it must.
	b := exec.Command("ip", "-n", ns, "-batch", "-")
	b.Stdin = strings.NewReader(batch.String())
	if out, err := b.CombinedOutput(); err != nil {
		return "", fmt.Errorf("assign the VIPs: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(state, runstate.StateFile), st.Format(), 0o600); err != nil {
		return "", err
	}
	body, err := getBody(client)
	if err != nil {
		return "", err
	}
	held := 0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "vipkit_vip_held{") && strings.HasSuffix(l, "} 1") {
			held++
		}
	}
	if held != 1000 {
		return "", fmt.Errorf("the big host's scrape shows %d VIPs held, want 1000", held)
	}
	return timeScrapes(client)
}

func getBody(client *http.Client) (string, error) {
	resp, err := client.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
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
