// Package lab builds the DESIGN §7 topology with real keepalived and etcd
// processes, observes it on one clock, injects faults and reports what
// happened (text and SVG timelines, failover metrics).
//
// A Lab owns everything it creates: namespaces named with a per-run
// prefix, the processes it started, the observer's sockets. Close removes
// all of it, and so does Ctrl-C (SIGINT/SIGTERM) while a lab is open;
// CleanupStale removes what a crashed run left behind. See docs/lab.md.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/topo"
	"github.com/vipkit/vipkit/test/lab/watch"
	"github.com/vipkit/vipkit/test/repo"
)

// The lab's floating addresses (the placeholders of the shipped configs).
var (
	VIP4 = topo.VIP4
	VIP6 = topo.VIP6
)

// Instance is the keepalived instance name the shipped configs and the
// control config use.
const Instance = "VI_1"

// Options configure a lab; the zero value is a two-node lab with probes.
type Options struct {
	// Name labels the run's results directory (e.g. the test name).
	Name string
	// Prefix of every namespace name; a fresh unique one when empty.
	Prefix string
	// ResultsDir receives per-node files, process logs and reports;
	// results/lab/<name>-<prefix> under the repository root when empty.
	ResultsDir string
	// Nodes is the number of keepalived nodes (2 when zero).
	Nodes  int
	Logger *slog.Logger

	ProbeInterval time.Duration // client probe interval, 10 ms when zero
	ProbeTimeout  time.Duration // a probe is lost after this, 200 ms when zero
	NeighPoll     time.Duration // router neighbour polling, 20 ms when zero; <0 disables
	NoProbes      bool          // no client probes, no responders
	// AdvertInt, when set, overrides advert_int in every rendered config
	// (e.g. "0.1" to keep scenarios short); a fractional value also sets
	// vrrp_version 3, which keepalived needs for sub-second adverts (VRRPv2
	// rounds up to whole seconds). keepalived 2.2.7 drops an instance
	// without VIPs under VRRPv3, so vipctl-owned configs need "1" or more.
	AdvertInt string
	NoCapture bool // no frame capture on the switch
	// NoSignalHandler leaves SIGINT/SIGTERM alone (the caller tears down).
	NoSignalHandler bool
	// StatesFromLog observes keepalived states from its log ("Entering
	// MASTER STATE") instead of the lab's notify FIFO, and adds no
	// notify_fifo to the configs. Log lines carry no priority.
	StatesFromLog bool
	// Keepalived is the keepalived binary every node runs; repo.Keepalived()
	// ($VIPKIT_KEEPALIVED, else Debian's 2.2.7) when empty.
	Keepalived string
	// EtcdMembers is the size of the lab's etcd cluster StartEtcd starts
	// (1 when zero; at most 3). Every member runs on the etcd host, on an
	// address of its own (EtcdMemberAddrs).
	EtcdMembers int
}

// Node is one keepalived host of the lab with its own files: both nodes
// share this machine's file system, so each gets its own state dir,
// vipkit config path and notify FIFO under the results directory.
type Node struct {
	Name       string
	Host       *topo.Host
	Priority   int    // keepalived priority Render gives this node
	Dir        string // results/.../node-a
	StateDir   string // Dir/run: replaces /run/vipkit
	ConfigPath string // Dir/vipkit.toml: replaces /etc/vipkit/vipkit.toml
	FIFO       string // Dir/notify.fifo: the lab's generic notify_fifo
	// Env is extra environment (KEY=value) for the processes the lab
	// starts on the node: keepalived (and so its hooks and scripts) and
	// Start. Set it before starting them.
	Env []string

	mu         sync.Mutex
	keepalived *proc.Proc
	fifoRead   bool // the observer reads FIFO already (keepalived restarts reuse it)
}

// Keepalived is the node's running keepalived, nil before StartKeepalived.
func (n *Node) Keepalived() *proc.Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.keepalived
}

// MAC is the node's eth0 hardware address.
func (n *Node) MAC() string { return n.Host.MAC.String() }

// Lab is a running lab.
type Lab struct {
	Prefix string
	Dir    string
	Topo   *topo.Topology
	TL     *observe.Timeline
	Obs    *watch.Observer
	Nodes  []*Node
	// Keepalived is the binary the nodes run, KeepalivedVersion its release.
	Keepalived        string
	KeepalivedVersion keepalived.Version

	log       *slog.Logger
	advertInt string
	fromLog   bool
	noProbes  bool
	mu        sync.Mutex
	inUse     map[netip.Addr]bool // VIPs the running configs mention
	procs     []*proc.Proc
	etcdSize  int
	etcd      []*etcdMember // the lab's cluster (StartEtcd)
	etcdDirs  []string      // data dirs of the etcd servers, removed by Close
	etcdProcs []*proc.Proc  // the etcd servers, stopped last by Close
	closeOnce sync.Once
	closeErr  error
}

// New builds the topology, starts the observer (address, route and
// neighbour watchers, switch capture, probe responders and the client
// prober) and returns the lab. Nothing keepalived-related runs yet.
func New(ctx context.Context, opts Options) (l *Lab, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Prefix == "" {
		opts.Prefix = topo.NewPrefix()
	}
	dir := opts.ResultsDir
	if dir == "" {
		root, rerr := repo.Root()
		if rerr != nil {
			return nil, fmt.Errorf("create lab: %w", rerr)
		}
		name := opts.Prefix
		if opts.Name != "" {
			name = sanitize(opts.Name) + "-" + opts.Prefix
		}
		dir = filepath.Join(root, "results", "lab", name)
	}
	if opts.Keepalived == "" {
		opts.Keepalived = repo.Keepalived()
	}
	if opts.EtcdMembers == 0 {
		opts.EtcdMembers = 1
	}
	if opts.EtcdMembers < 1 || opts.EtcdMembers > len(EtcdMemberAddrs) {
		return nil, fmt.Errorf("create lab: etcd member count %d out of range 1..%d", opts.EtcdMembers, len(EtcdMemberAddrs))
	}
	kaVersion, err := repo.KeepalivedVersion(opts.Keepalived)
	if err != nil {
		return nil, fmt.Errorf("create lab: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lab results dir %s: %w", dir, err)
	}
	l = &Lab{Prefix: opts.Prefix, Dir: dir, TL: observe.NewTimeline(), log: log, advertInt: opts.AdvertInt, fromLog: opts.StatesFromLog, noProbes: opts.NoProbes, etcdSize: opts.EtcdMembers,
		Keepalived: opts.Keepalived, KeepalivedVersion: kaVersion}
	if !opts.NoSignalHandler {
		register(l)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create lab: %w", err)
	}
	// Namespaces of crashed runs (owner gone) would only pile up.
	if stale, err := topo.CleanupStale(topo.PrefixBase); err != nil {
		log.Warn("clean up stale lab namespaces", "err", err)
	} else if len(stale) > 0 {
		log.Info("removed stale lab namespaces", "names", stale)
	}
	l.Topo, err = topo.Build(topo.Config{Prefix: opts.Prefix, Nodes: opts.Nodes, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("create lab: %w", err)
	}
	for _, h := range l.Topo.Hosts() {
		l.TL.SetMAC(h.MAC.String(), h.Name)
	}
	if wan, err := l.Topo.Router.NS.Link(topo.RouterWAN); err == nil {
		l.TL.SetMAC(wan.Attrs().HardwareAddr.String(), "router")
	}
	for i, h := range l.Topo.Nodes {
		nd := filepath.Join(dir, h.Name)
		n := &Node{Name: h.Name, Host: h, Priority: 150 - 50*i, Dir: nd, StateDir: filepath.Join(nd, "run"),
			ConfigPath: filepath.Join(nd, "vipkit.toml"), FIFO: filepath.Join(nd, "notify.fifo")}
		if n.Priority < 1 {
			n.Priority = 1
		}
		if err := os.MkdirAll(n.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("create lab node dir %s: %w", n.StateDir, err)
		}
		l.Nodes = append(l.Nodes, n)
	}

	l.Obs = watch.NewObserver(l.TL, log)
	vips := []netip.Addr{VIP4, VIP6}
	for _, n := range l.Nodes {
		if err := l.Obs.WatchAddrs(n.Name, n.Host.NS); err != nil {
			return nil, err
		}
		if err := l.Obs.WatchLocalRoutes(n.Name, n.Host.NS, vips); err != nil {
			return nil, err
		}
		if err := l.Obs.WatchTrackFiles(n.Name, n.StateDir, ".fence", ".maint"); err != nil {
			return nil, err
		}
	}
	poll := opts.NeighPoll
	if poll == 0 {
		poll = 20 * time.Millisecond
	}
	if err := l.Obs.WatchNeighbours("router", l.Topo.Router.NS, vips, poll); err != nil {
		return nil, err
	}
	if !opts.NoCapture {
		if err := l.Obs.Capture("switch", l.Topo.Switch, topo.BridgeName); err != nil {
			return nil, err
		}
	}
	if !opts.NoProbes {
		for _, n := range l.Nodes {
			if err := l.Obs.Respond(n.Name, n.Host.NS, vips); err != nil {
				return nil, err
			}
			if err := l.Obs.EchoTCP(n.Name, n.Host.NS, vips, watch.EchoPort); err != nil {
				return nil, err
			}
		}
		if err := l.Obs.Probe("client", l.Topo.Client.NS, vips, watch.ProbeConfig{Interval: opts.ProbeInterval, Timeout: opts.ProbeTimeout}); err != nil {
			return nil, err
		}
	}
	log.Info("lab up", "prefix", l.Prefix, "dir", l.Dir)
	return l, nil
}

// Close stops every process the lab started (SIGTERM, then SIGKILL),
// stops the observer and deletes every namespace. It is idempotent.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		unregister(l)
		var errs []error
		// The nodes' processes first, then the observer, etcd last: fenced
		// revokes its lease on the way out, which needs a server.
		l.mu.Lock()
		var first, last []*proc.Proc
		for _, p := range l.procs {
			if slices.Contains(l.etcdProcs, p) {
				last = append(last, p)
			} else {
				first = append(first, p)
			}
		}
		l.mu.Unlock()
		var errMu sync.Mutex
		for i, procs := range [][]*proc.Proc{first, last} {
			if i == 1 && l.Obs != nil {
				// etcd shuts down gracefully only once the observer's watch
				// stream is gone.
				l.Obs.Close()
			}
			var wg sync.WaitGroup
			for _, p := range procs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := p.Stop(3 * time.Second); err != nil {
						errMu.Lock()
						errs = append(errs, err)
						errMu.Unlock()
					}
				}()
			}
			wg.Wait()
		}
		if l.Obs != nil {
			l.Obs.Close()
		}
		// etcd preallocates a 64 MB WAL: a finished run does not need it.
		l.mu.Lock()
		dirs := append([]string{}, l.etcdDirs...)
		l.mu.Unlock()
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, fmt.Errorf("remove etcd data: %w", err))
			}
		}
		if err := l.Topo.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := l.writeEvents(); err != nil {
			errs = append(errs, err)
		}
		l.closeErr = errors.Join(errs...)
		l.log.Info("lab down", "prefix", l.Prefix)
	})
	return l.closeErr
}

// Node returns the node called name (node-a, node-b, ...) or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Peer returns the first other node.
func (l *Lab) Peer(n *Node) *Node {
	for _, o := range l.Nodes {
		if o != n {
			return o
		}
	}
	return nil
}

// Vars are the values Render substitutes for node n: its addresses (and,
// with two nodes, the peer's placeholder address swapped for the real
// peer), priority, the vipkit binaries from bin/, and its own config
// path, state dir and notify FIFO.
func (l *Lab) Vars(n *Node) proc.NodeVars {
	v := proc.NodeVars{
		Addr4:      n.Host.Addr4.String(),
		Addr6:      n.Host.Addr6.String(),
		ConfigPath: n.ConfigPath,
		StateDir:   n.StateDir,
		Priority:   n.Priority,
		RouterID:   n.Name,
		Extra:      map[string]string{},
	}
	if !l.fromLog {
		v.NotifyFIFO = n.FIFO
	}
	if l.advertInt != "" {
		v.AdvertInt = l.advertInt
		if strings.Contains(l.advertInt, ".") {
			v.Global = map[string]string{"vrrp_version": "3"}
		}
	}
	if p, err := proc.FindBinary("vipctl"); err == nil {
		v.Vipctl = p
	}
	if p, err := proc.FindBinary("fenced"); err == nil {
		v.Fenced = p
	}
	// The shipped configs are written from node-a's point of view
	// (192.0.2.11, peer 192.0.2.12): give other nodes a consistent view.
	if n.Host.Addr4.String() != proc.PlaceholderAddr4 {
		if p := l.Node("node-a"); p != nil {
			v.Extra[n.Host.Addr4.String()] = p.Host.Addr4.String()
			v.Extra[n.Host.Addr6.String()] = p.Host.Addr6.String()
		}
	}
	return v
}

// Render substitutes node n's values into a config text (see Vars).
func (l *Lab) Render(n *Node, text string) (string, error) {
	out, err := proc.Render(text, l.Vars(n))
	if err != nil {
		return "", fmt.Errorf("render config for %s: %w", n.Name, err)
	}
	return out, nil
}

// StartKeepalived renders conf (a contrib config or proc.ControlConfig)
// for node n and starts keepalived with it. States are observed through
// the lab's notify FIFO when the config leaves notify_fifo to the lab,
// otherwise (or with Options.StatesFromLog) from keepalived's log.
func (l *Lab) StartKeepalived(n *Node, conf string) error {
	rendered, err := l.Render(n, conf)
	if err != nil {
		return err
	}
	viaFIFO := !l.fromLog && !proc.HasGenericFIFO(conf)
	n.mu.Lock()
	readFIFO := viaFIFO && !n.fifoRead
	n.fifoRead = n.fifoRead || viaFIFO
	n.mu.Unlock()
	if readFIFO {
		if err := l.Obs.ReadFIFO(n.Name, n.FIFO); err != nil {
			return err
		}
	}
	p, err := proc.StartKeepalived(proc.Keepalived{
		Name:   "keepalived@" + n.Name,
		NS:     n.Host.NS.Name,
		Binary: l.Keepalived,
		Dir:    n.Dir,
		Config: rendered,
		Env:    n.Env,
		OnLine: l.Obs.KeepalivedLog(n.Name, !viaFIFO),
		Clock:  l.TL.Now,
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.keepalived = p
	n.mu.Unlock()
	l.mu.Lock()
	if l.inUse == nil {
		l.inUse = map[netip.Addr]bool{}
	}
	for _, vip := range []netip.Addr{VIP4, VIP6} {
		if strings.Contains(rendered, vip.String()) {
			l.inUse[vip] = true
		}
	}
	l.mu.Unlock()
	l.track(n.Name, p)
	// A dead keepalived reports nothing: end its instances' state spans
	// with a lab-made DEAD state, so a killed MASTER does not look like
	// one forever.
	instances := instanceRE.FindAllStringSubmatch(rendered, -1)
	go func() {
		<-p.Done()
		for _, m := range instances {
			l.TL.Add(observe.Event{Kind: observe.KindState, Host: n.Name, Source: "lab", Instance: m[1], State: "DEAD", Priority: -1})
		}
	}()
	return nil
}

var instanceRE = regexp.MustCompile(`(?m)^\s*vrrp_instance\s+(\S+)`)

// VIPs are the floating addresses the scenario uses: those that appear in
// the keepalived configs started so far (both before any).
func (l *Lab) VIPs() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []netip.Addr
	for _, vip := range []netip.Addr{VIP4, VIP6} {
		if l.inUse == nil || l.inUse[vip] {
			out = append(out, vip)
		}
	}
	return out
}

// StartKeepalivedAll starts keepalived with conf on every node.
func (l *Lab) StartKeepalivedAll(conf string) error {
	for _, n := range l.Nodes {
		if err := l.StartKeepalived(n, conf); err != nil {
			return err
		}
	}
	return nil
}

// Start runs any long-lived program inside host's namespace (fenced, a
// helper), with its output in <results>/<host>/<name>.log. Close stops
// it; Stop or Signal on the returned Proc act earlier.
func (l *Lab) Start(host, name, path string, args ...string) (*proc.Proc, error) {
	h, err := l.Topo.Host(host)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.Dir, host)
	var env []string
	if n := l.Node(host); n != nil {
		env = n.Env
	}
	p, err := proc.Start(proc.Spec{
		Name:    name + "@" + host,
		NS:      h.NS.Name,
		Path:    path,
		Args:    args,
		Env:     env,
		Dir:     dir,
		LogPath: filepath.Join(dir, name+".log"),
		Clock:   l.TL.Now,
	})
	if err != nil {
		return nil, err
	}
	l.track(host, p)
	return p, nil
}

// track records a process's start and exit on the timeline and has Close
// stop it.
func (l *Lab) track(host string, p *proc.Proc) {
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	l.TL.Add(observe.Event{Kind: observe.KindProcess, Host: host, Source: "lab", Text: fmt.Sprintf("%s started (pid %d)", p.Name, p.PID)})
	go func() {
		<-p.Done()
		text := p.Name + " exited"
		if err := p.Err(); err != nil {
			text += ": " + err.Error()
		}
		l.TL.Add(observe.Event{Kind: observe.KindProcess, Host: host, Source: "lab", Text: text})
	}()
}

// EtcdMemberAddrs are the addresses (IPv4, IPv6) of the members of the
// lab's etcd cluster on the etcd host: the first is the host's own.
// 192.0.2.21 is StartEtcdServer's.
var EtcdMemberAddrs = [][2]netip.Addr{
	{topo.Etcd4, topo.Etcd6},
	{netip.MustParseAddr("192.0.2.22"), netip.MustParseAddr("2001:db8::22")},
	{netip.MustParseAddr("192.0.2.23"), netip.MustParseAddr("2001:db8::23")},
}

// etcdMember is one member of the lab's etcd cluster.
type etcdMember struct {
	spec   proc.Etcd
	p      *proc.Proc
	paused bool // SIGSTOPped by the lab, not yet SIGCONTed
}

// StartEtcd starts the lab's etcd cluster in the etcd namespace
// (Options.EtcdMembers members: "etcd" on the host's own addresses, then
// "etcd-2", "etcd-3") and waits until every member reports healthy.
func (l *Lab) StartEtcd(ctx context.Context) error {
	var specs []proc.Etcd
	var cluster []string
	for i := range l.etcdSize {
		a := EtcdMemberAddrs[i]
		e := proc.Etcd{Name: "etcd", NS: l.Topo.Etcd.NS.Name, Dir: filepath.Join(l.Dir, "etcd"), Addr4: a[0], Addr6: a[1], Clock: l.TL.Now}
		if i > 0 {
			e.Name = fmt.Sprintf("etcd-%d", i+1)
			e.Dir = filepath.Join(l.Dir, e.Name)
			if err := l.Topo.AddEtcdAddrs(a[0], a[1]); err != nil {
				return fmt.Errorf("start %s: %w", e.Name, err)
			}
		}
		specs = append(specs, e)
		cluster = append(cluster, e.Name+"="+e.PeerURL())
	}
	for _, e := range specs {
		if len(specs) > 1 {
			e.Cluster = strings.Join(cluster, ",")
		}
		p, err := l.launchEtcd(e)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.etcd = append(l.etcd, &etcdMember{spec: e, p: p})
		l.mu.Unlock()
	}
	// A member is healthy once the cluster has a leader: all of them run
	// before the first can be.
	for _, m := range l.etcdMembers() {
		if err := l.waitEtcdHealthy(ctx, m.spec, m.p); err != nil {
			return err
		}
	}
	return nil
}

// StartEtcdServer starts another, independent single-member etcd cluster
// (e.g. the second cluster of a fleet) on the etcd host: addr4 is added
// to the host's interface and the server listens there on the standard
// ports, with its files in <results>/<name>. It returns the client URLs.
func (l *Lab) StartEtcdServer(ctx context.Context, name string, addr4 netip.Addr) ([]string, error) {
	if !topo.ServerNet4.Contains(addr4) || addr4 == l.Topo.Etcd.Addr4 {
		return nil, fmt.Errorf("start etcd server %s: address %s is not a free address of %s", name, addr4, topo.ServerNet4)
	}
	if err := l.Topo.AddAddr("etcd", netip.PrefixFrom(addr4, topo.ServerNet4.Bits())); err != nil {
		return nil, fmt.Errorf("start etcd server %s: %w", name, err)
	}
	e := proc.Etcd{Name: name, NS: l.Topo.Etcd.NS.Name, Dir: filepath.Join(l.Dir, name), Addr4: addr4, Clock: l.TL.Now}
	if _, err := l.startEtcd(ctx, e); err != nil {
		return nil, err
	}
	return e.ClientURLs(), nil
}

// startEtcd starts an etcd server and waits until it reports healthy.
func (l *Lab) startEtcd(ctx context.Context, e proc.Etcd) (*proc.Proc, error) {
	p, err := l.launchEtcd(e)
	if err != nil {
		return nil, err
	}
	return p, l.waitEtcdHealthy(ctx, e, p)
}

// launchEtcd starts an etcd server: Close stops it, last, and removes its
// data.
func (l *Lab) launchEtcd(e proc.Etcd) (*proc.Proc, error) {
	p, err := proc.StartEtcd(e)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if !slices.Contains(l.etcdDirs, filepath.Join(e.Dir, "data")) {
		l.etcdDirs = append(l.etcdDirs, filepath.Join(e.Dir, "data"))
	}
	l.etcdProcs = append(l.etcdProcs, p)
	l.mu.Unlock()
	l.track("etcd", p)
	return p, nil
}

// waitEtcdHealthy polls the server's /health from the etcd host until it
// says true (for a member: the cluster has a leader and this member hears
// it), for up to 30 s.
func (l *Lab) waitEtcdHealthy(ctx context.Context, e proc.Etcd, p *proc.Proc) error {
	client := &http.Client{Transport: &http.Transport{DialContext: l.Topo.Etcd.NS.DialContext}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	url := e.ClientURLs()[0] + "/health"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`) {
				l.TL.Mark(observe.KindProcess, "etcd", p.Name+" healthy")
				return nil
			}
			err = fmt.Errorf("status %s: %s", resp.Status, body)
		}
		if !p.Running() {
			return fmt.Errorf("start %s: exited before healthy: %v (see %s)", p.Name, p.Err(), filepath.Join(e.Dir, "etcd.log"))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("start %s: not healthy at %s: %w", p.Name, url, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WatchEtcd records changes under an etcd key prefix (e.g. fenced's lease
// keys) on the timeline as KindLease events, from the etcd host's own
// namespace so cutting nodes does not blind the observer.
func (l *Lab) WatchEtcd(prefix string) error {
	dial, err := l.EtcdDialer("etcd")
	if err != nil {
		return err
	}
	return l.Obs.WatchEtcd("etcd", l.EtcdEndpoints(), prefix, dial)
}

// WatchEtcdAt records changes under prefix of another etcd cluster (see
// StartEtcdServer); its events carry label as their host.
func (l *Lab) WatchEtcdAt(label string, endpoints []string, prefix string) error {
	dial, err := l.EtcdDialer("etcd")
	if err != nil {
		return err
	}
	return l.Obs.WatchEtcd(label, endpoints, prefix, dial)
}

// Etcd is the process of the lab's (first) etcd member, nil before
// StartEtcd.
func (l *Lab) Etcd() *proc.Proc {
	if ms := l.etcdMembers(); len(ms) > 0 {
		return ms[0].p
	}
	return nil
}

func (l *Lab) etcdMembers() []*etcdMember {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.etcd)
}

// EtcdEndpoints are the client URLs of the lab's etcd: every member's
// IPv4 URL, then the first member's IPv6 one.
func (l *Lab) EtcdEndpoints() []string {
	urls := l.EtcdEndpoints4()
	return append(urls, proc.Etcd{Addr4: l.Topo.Etcd.Addr4, Addr6: l.Topo.Etcd.Addr6}.ClientURLs()[1])
}

// EtcdEndpoints4 are the IPv4 client URLs of every member of the lab's
// etcd (Options.EtcdMembers of them), what fenced is configured with.
func (l *Lab) EtcdEndpoints4() []string {
	var urls []string
	for i := range l.etcdSize {
		urls = append(urls, proc.Etcd{Addr4: EtcdMemberAddrs[i][0]}.ClientURLs()[0])
	}
	return urls
}

// EtcdDialer dials from inside host's namespace, for an etcd client (or
// anything else) that must see the network as that host does, e.g. one
// cut from etcd.
func (l *Lab) EtcdDialer(host string) (func(ctx context.Context, addr string) (net.Conn, error), error) {
	h, err := l.Topo.Host(host)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, addr string) (net.Conn, error) { return h.NS.DialContext(ctx, "tcp", addr) }, nil
}

// etcdStatus is one member's answer to etcd's maintenance Status.
func etcdStatus(ctx context.Context, url string, dial func(ctx context.Context, addr string) (net.Conn, error)) (*clientv3.StatusResponse, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{url},
		DialTimeout: time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd status of %s: %w", url, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("etcd status of %s: %w", url, err)
	}
	return st, nil
}

// WaitFor waits for an event on the lab's timeline (see
// observe.Timeline.WaitFor).
func (l *Lab) WaitFor(ctx context.Context, pred func(observe.Event) bool, within time.Duration) (observe.Event, error) {
	return l.TL.WaitFor(ctx, pred, within)
}

// WaitElected waits until node want is MASTER (a state report at or
// after since), holds the IPv4 VIP, and no other node is MASTER: the
// election has settled on it. Starting keepalived on several nodes can
// make a lower-priority node MASTER for a moment first.
//
// It returns the lab time of want's MASTER report.
func (l *Lab) WaitElected(ctx context.Context, want *Node, since, within time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(within)
	me, err := l.TL.WaitState(ctx, want.Name, Instance, "MASTER", since, within)
	if err != nil {
		return 0, err
	}
	if _, err := l.TL.WaitFor(ctx, func(a observe.Event) bool {
		return a.Kind == observe.KindAddr && a.Host == want.Name && a.IP == VIP4 && a.Present && a.At >= since
	}, time.Until(deadline)); err != nil {
		return 0, fmt.Errorf("wait for master %s to hold %s: %w", want.Name, VIP4, err)
	}
	for _, n := range l.Nodes {
		if n == want || n.Keepalived() == nil {
			continue
		}
		if l.TL.StateAt(n.Name, Instance, l.TL.Now()) != "MASTER" {
			continue
		}
		if _, err := l.TL.WaitFor(ctx, func(e observe.Event) bool {
			return e.Kind == observe.KindState && e.Host == n.Name && e.Instance == Instance && e.State != "MASTER" && e.At >= since &&
				l.TL.StateAt(n.Name, Instance, l.TL.Now()) != "MASTER"
		}, time.Until(deadline)); err != nil {
			return 0, fmt.Errorf("wait for %s to leave MASTER to %s: %w", n.Name, want.Name, err)
		}
	}
	return me.At, nil
}

// writeEvents dumps the whole timeline as JSON lines to events.jsonl.
func (l *Lab) writeEvents() error {
	f, err := os.Create(filepath.Join(l.Dir, "events.jsonl"))
	if err != nil {
		return fmt.Errorf("write lab events: %w", err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, e := range l.TL.Events(nil) {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("write lab events: %w", err)
		}
	}
	return nil
}

// CleanupStale deletes namespaces left by crashed lab runs (see
// topo.CleanupStale); an empty prefix means every lab run.
func CleanupStale(prefix string) ([]string, error) { return topo.CleanupStale(prefix) }

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// Open labs, torn down on SIGINT/SIGTERM.
var (
	regMu   sync.Mutex
	openLab = map[*Lab]bool{}
	sigOnce sync.Once
)

func register(l *Lab) {
	regMu.Lock()
	openLab[l] = true
	regMu.Unlock()
	sigOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			regMu.Lock()
			labs := make([]*Lab, 0, len(openLab))
			for l := range openLab {
				labs = append(labs, l)
			}
			regMu.Unlock()
			for _, l := range labs {
				fmt.Fprintf(os.Stderr, "lab %s: %s, tearing down\n", l.Prefix, sig)
				_ = l.Close()
			}
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		}()
	})
}

func unregister(l *Lab) {
	regMu.Lock()
	delete(openLab, l)
	regMu.Unlock()
}

// DialTCP connects a long-lived TCP client from host (e.g. the master
// itself: DESIGN F1's local client) to the echo server on vip, exercised
// every 10 ms; its changes are KindConn events on the timeline (see
// watch.Observer.DialTCP). Close stops it, and so does the lab's Close.
func (l *Lab) DialTCP(ctx context.Context, host string, vip netip.Addr) (*watch.TCPClient, error) {
	if l.noProbes {
		return nil, errors.New("dial tcp: the lab runs no echo servers (Options.NoProbes)")
	}
	h, err := l.Topo.Host(host)
	if err != nil {
		return nil, err
	}
	return l.Obs.DialTCP(ctx, host, h.NS, netip.AddrPortFrom(vip, watch.EchoPort), watch.ProbeConfig{Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond})
}
