// Package vipkit runs the lab (test/lab) with vipkit in it: per node a
// keepalived config rendered from contrib/keepalived for one mode, the
// node's vipkit.toml, fenced holding a lease in the lab's etcd, and vipctl
// as keepalived's hooks. Its scenario runners (election, planned
// handover, master crash, etcd loss, split brain, local client, fenced
// killed, track-file flaps, reload) start from the steady state, inject
// one event and measure what followed; Reset brings the lab back to the
// steady state, so one lab serves many runs. With Options.Control the
// same runners drive keepalived alone (the lab's control config), where
// the scenario exists without vipkit.
package vipkit

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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/topo"
	"github.com/vipkit/vipkit/test/repo"
)

// Options configure a vipkit lab.
type Options struct {
	// Mode chooses the contrib config (Hooks when empty).
	Mode Mode
	// Control runs keepalived alone (proc.ControlConfig: keepalived-owned,
	// VRRPv3, advert_int 0.1, no hook, no etcd, no fenced): the baseline.
	Control bool
	// Second adds the fleet scenario's parts: VI_2 in keepalived's config
	// (in FAULT until fenced guards it) and a second etcd cluster.
	Second bool
	// Witness makes VI_1 witnessed (docs/witness.md): every node's
	// vipkit.toml says witness = true with the node's keepalived priority;
	// the steady state is node-a MASTER and every other node in FAULT.
	// Lab.Nodes = 3 adds node-c (priority 50) for claims among three, and
	// runs the lab's etcd as a 3-member cluster (unless
	// Lab.EtcdMembers says otherwise), whose members the faults can stop
	// or kill one at a time.
	Witness bool
	// Lab passes options to lab.New (Name, ResultsDir, Logger, ...);
	// AdvertInt defaults to the mode's.
	Lab lab.Options
	// ContribDir holds the keepalived configs; contrib/keepalived in the
	// repository when empty.
	ContribDir string
	// TTL and Margin replace DefaultTTL and DefaultMargin for the main
	// cluster (both or neither); RequestTimeout sets its request_timeout.
	TTL, Margin, RequestTimeout time.Duration
}

// Lab is a running lab with vipkit (or, with Options.Control, without).
type Lab struct {
	*lab.Lab
	Mode    Mode
	Control bool
	// Witness: VI_1 is witnessed (Options.Witness).
	Witness bool
	// Conf is the keepalived config every node renders (placeholders in).
	Conf string
	// Etcd2 are the client URLs of the second etcd cluster (Options.Second).
	Etcd2 []string

	log    *slog.Logger
	vipctl string
	fenced string

	ttl, margin, requestTimeout time.Duration

	mu       sync.Mutex
	procs    map[string]*proc.Proc // fenced per node
	cut      map[string]bool       // nodes cut from etcd
	parted   map[string]bool       // nodes cut from the other nodes
	maint    map[string]bool       // nodes whose maintenance file says 1
	isolated bool
}

// Member key prefix fenced uses (the lab's vipkit.toml sets it).
const keyPrefix = "/vipkit"

// MemberKey is node's member key in etcd, whose deletion is the server's
// expiry of its lease.
func MemberKey(node string) string { return keyPrefix + "/members/" + node }

// Second etcd cluster's address on the etcd host.
var etcd2Addr = netip.MustParseAddr("192.0.2.21")

// New builds the lab and, unless Control, starts etcd with a watch on
// fenced's keys and writes every node's vipkit.toml. Nothing runs on the
// nodes yet: Up does that.
func New(ctx context.Context, opts Options) (v *Lab, err error) {
	if opts.Mode == "" {
		opts.Mode = Hooks
	}
	lo := opts.Lab
	if lo.Keepalived == "" {
		lo.Keepalived = repo.Keepalived()
	}
	ka, err := repo.KeepalivedVersion(lo.Keepalived)
	if err != nil {
		return nil, fmt.Errorf("build vipkit lab: %w", err)
	}
	if opts.Witness && lo.Nodes == 3 && lo.EtcdMembers == 0 {
		lo.EtcdMembers = 3
	}
	if opts.Control {
		lo.AdvertInt = ""
	} else if lo.AdvertInt == "" {
		lo.AdvertInt = opts.Mode.AdvertInt(ka)
	}
	log := lo.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v = &Lab{Mode: opts.Mode, Control: opts.Control, Witness: opts.Witness && !opts.Control, log: log, procs: map[string]*proc.Proc{}, cut: map[string]bool{}, parted: map[string]bool{}, maint: map[string]bool{},
		ttl: opts.TTL, margin: opts.Margin, requestTimeout: opts.RequestTimeout}
	if opts.Control {
		v.Mode = "control"
		v.Conf = proc.ControlConfig
	} else {
		dir := opts.ContribDir
		if dir == "" {
			if dir, err = repo.KeepalivedDir(); err != nil {
				return nil, err
			}
		}
		if v.Conf, err = KeepalivedConfig(dir, opts.Mode, ka, opts.Second); err != nil {
			return nil, err
		}
		if v.vipctl, err = proc.FindBinary("vipctl"); err != nil {
			return nil, err
		}
		if v.fenced, err = proc.FindBinary("fenced"); err != nil {
			return nil, err
		}
	}
	if v.Lab, err = lab.New(ctx, lo); err != nil {
		return nil, err
	}
	// The returns below set v to nil: close the lab they leave behind.
	built := v.Lab
	defer func() {
		if err != nil {
			err = errors.Join(err, built.Close())
			v = nil
		}
	}()
	if opts.Control {
		return v, nil
	}
	for _, n := range v.Nodes {
		// keepalived passes its environment to hooks and scripts: vipctl
		// and `fenced status --alive` find the node's config, state dir
		// and a log file (keepalived gives hooks /dev/null).
		n.Env = []string{"VIPKIT_CONFIG=" + n.ConfigPath, "VIPKIT_STATE_DIR=" + n.StateDir,
			"VIPKIT_LOG_FILE=" + filepath.Join(n.Dir, "vipctl.log")}
		if err := v.WriteTOML(n, false); err != nil {
			return nil, err
		}
	}
	if err := v.StartEtcd(ctx); err != nil {
		return nil, err
	}
	if err := v.WatchEtcd(keyPrefix + "/"); err != nil {
		return nil, err
	}
	if opts.Second {
		if v.Etcd2, err = v.StartEtcdServer(ctx, "etcd2", etcd2Addr); err != nil {
			return nil, err
		}
		if err := v.WatchEtcdAt("etcd2", v.Etcd2, keyPrefix+"/"); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// TOMLFor is node n's vipkit.toml: VI_1 guarded by the lab's etcd; with
// fleet, also VI_2 guarded by the second cluster.
func (v *Lab) TOMLFor(n *lab.Node, fleet bool) TOML {
	vips := func(a ...string) []string { return a }
	t := TOML{
		Node: n.Name, StateDir: n.StateDir, VRRPPIDFile: filepath.Join(n.Dir, "keepalived-vrrp.pid"),
		Clusters: []ClusterConf{{Name: "main", Endpoints: v.EtcdEndpoints4(), TTL: v.ttl, Margin: v.margin, RequestTimeout: v.requestTimeout}},
		Instances: []InstanceConf{{Name: lab.Instance, VIPs: vips(lab.VIP4.String(), lab.VIP6.String()), Own: v.Mode.Own(), Cluster: "main",
			Witness: v.Witness, Priority: n.Priority}},
	}
	if v.ttl != 0 {
		t.Clusters[0].HoldDown = DefaultHoldDown
	}
	if fleet {
		t.Clusters = append(t.Clusters, ClusterConf{Name: "second", Endpoints: v.Etcd2})
		t.Instances = append(t.Instances, InstanceConf{Name: Instance2, VIPs: vips(vip2v4, vip2v6), Own: v.Mode.Own(), Cluster: "second"})
	}
	return t
}

// WriteTOML writes node n's vipkit.toml (mode 0600: fenced refuses a
// config others can read).
func (v *Lab) WriteTOML(n *lab.Node, fleet bool) error {
	if fleet && len(v.Etcd2) == 0 {
		return errors.New("write vipkit.toml: the lab has no second etcd cluster (Options.Second)")
	}
	if err := os.WriteFile(n.ConfigPath, []byte(v.TOMLFor(n, fleet).String()), 0o600); err != nil {
		return fmt.Errorf("write vipkit.toml for %s: %w", n.Name, err)
	}
	return nil
}

// StartFenced starts fenced on node n with the node's vipkit.toml.
func (v *Lab) StartFenced(n *lab.Node) error {
	p, err := v.Lab.Start(n.Name, "fenced", v.fenced, "run", "--config", n.ConfigPath, "--log-file", filepath.Join(n.Dir, "fenced.jsonl"))
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.procs[n.Name] = p
	v.mu.Unlock()
	return nil
}

// Fenced is node n's fenced, nil before StartFenced.
func (v *Lab) Fenced(n *lab.Node) *proc.Proc {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.procs[n.Name]
}

// Up brings up the steady state from nothing: fenced on every node,
// then keepalived, and waits until node-a is elected and every other node
// is a healthy BACKUP (see WaitSteady). It returns the master and the lab
// time at which it started things.
func (v *Lab) Up(ctx context.Context) (*lab.Node, time.Duration, error) {
	at := v.TL.Mark(observe.KindFault, "lab", "fenced and keepalived start on every node")
	if !v.Control {
		for _, n := range v.Nodes {
			if err := v.StartFenced(n); err != nil {
				return nil, at, err
			}
		}
	}
	if err := v.StartKeepalivedAll(v.Conf); err != nil {
		return nil, at, err
	}
	m, err := v.WaitSteady(ctx, at, 30*time.Second)
	return m, at, err
}

// WaitSteady waits for the state every scenario starts from: node-a
// MASTER holding the VIPs, every other node BACKUP holding none, every
// fence track file 0 (fenced healthy), then the client's probes (sent at
// or after since, and after that state) answered by node-a and the router
// pointing at it.
func (v *Lab) WaitSteady(ctx context.Context, since, within time.Duration) (*lab.Node, error) {
	deadline := time.Now().Add(within)
	m := v.Nodes[0]
	err := v.WaitUntil(ctx, func() bool {
		now := v.TL.Now()
		for _, n := range v.Nodes {
			want, track := "BACKUP", "0"
			if v.Witness {
				// Only the owner of the witness key may leave FAULT.
				want, track = "FAULT", "1"
			}
			if n == m {
				want, track = "MASTER", "0"
			}
			if v.TL.StateAt(n.Name, lab.Instance, now) != want {
				return false
			}
			for _, ip := range v.VIPs() {
				if v.Holds(n, ip, now) != (n == m) {
					return false
				}
			}
			if !v.Control && v.TL.TrackAt(n.Name, lab.Instance+".fence", now) != track {
				return false
			}
		}
		return true
	}, within)
	if err != nil {
		return nil, fmt.Errorf("wait for the steady state (node-a MASTER, others BACKUP, fenced healthy): %w: %s", err, v.describe())
	}
	if !v.Control {
		for _, n := range v.Nodes {
			if err := v.waitGuarded(ctx, n, deadline); err != nil {
				return nil, fmt.Errorf("wait for the steady state: %w", err)
			}
		}
	}
	if err := v.Steady(ctx, m, max(since, v.TL.Now()), time.Until(deadline)); err != nil {
		return nil, fmt.Errorf("wait for the steady state: %w", err)
	}
	return m, nil
}

// waitGuarded waits until node n's fenced has found the keepalived VRRP
// process now running (its log says "keepalived VRRP process found" with
// the PID in keepalived's VRRP pid file). fenced looks for keepalived once
// per reconcile interval while it is not running, so a keepalived killed
// within that interval of its start is not guarded yet: a scenario must
// not start in that window. keepalived 2.3.3 reaches MASTER well inside
// it.
func (v *Lab) waitGuarded(ctx context.Context, n *lab.Node, deadline time.Time) error {
	pidFile := filepath.Join(n.Dir, "keepalived-vrrp.pid")
	logFile := filepath.Join(n.Dir, "fenced.jsonl")
	for {
		b, _ := os.ReadFile(pidFile)
		pid := strings.TrimSpace(string(b))
		if pid != "" && guardFound(logFile, pid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fenced on %s has not found keepalived's VRRP process (pid %q in %s; its log is %s)", n.Name, pid, pidFile, logFile)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for fenced on %s to find keepalived: %w", n.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// guardFound reports whether fenced's JSON log (its last 256 KiB) says
// it found keepalived's VRRP process pid.
func guardFound(logFile, pid string) bool {
	f, err := os.Open(logFile)
	if err != nil {
		return false
	}
	defer f.Close()
	const tail = 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		if _, err := f.Seek(fi.Size()-tail, 0); err != nil {
			return false
		}
	}
	b := make([]byte, tail)
	k, _ := io.ReadFull(f, b)
	for _, line := range strings.Split(string(b[:k]), "\n") {
		if !strings.Contains(line, "keepalived VRRP process found") {
			continue
		}
		var e struct {
			PID json.Number `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.PID.String() == pid {
			return true
		}
	}
	return false
}

// Holds reports whether node n had ip assigned at lab time at.
func (v *Lab) Holds(n *lab.Node, ip netip.Addr, at time.Duration) bool {
	for _, s := range v.TL.AddrSpans(n.Name, ip, at+1) {
		if s.From <= at && at < s.To {
			return true
		}
	}
	return false
}

// Holders lists the nodes that held ip at lab time at.
func (v *Lab) Holders(ip netip.Addr, at time.Duration) []string {
	var out []string
	for _, n := range v.Nodes {
		if v.Holds(n, ip, at) {
			out = append(out, n.Name)
		}
	}
	return out
}

// describe says where every node stands, for error messages.
func (v *Lab) describe() string {
	now := v.TL.Now()
	var parts []string
	for _, n := range v.Nodes {
		s := fmt.Sprintf("%s %s", n.Name, orNone(v.TL.StateAt(n.Name, lab.Instance, now)))
		if !v.Control {
			s += fmt.Sprintf(" fence=%s maint=%s", orNone(v.TL.TrackAt(n.Name, lab.Instance+".fence", now)),
				orNone(v.TL.TrackAt(n.Name, lab.Instance+".maint", now)))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// slowKinds are the events that can change what WaitUntil conditions
// look at (probes, frames and neighbour polls are far more frequent).
var slowKinds = map[observe.Kind]bool{
	observe.KindState: true, observe.KindAddr: true, observe.KindRoute: true, observe.KindTrack: true,
	observe.KindLease: true, observe.KindProcess: true, observe.KindFault: true, observe.KindConn: true,
}

// WaitUntil waits until cond holds, checking it now and again whenever
// the timeline records a state, address, route, track-file, lease,
// process, fault or connection event: it never sleeps in place of one.
func (v *Lab) WaitUntil(ctx context.Context, cond func() bool, within time.Duration) error {
	if cond() {
		return nil
	}
	from := v.TL.Len()
	_, err := v.TL.WaitFor(ctx, func(e observe.Event) bool {
		return e.Seq > from && slowKinds[e.Kind] && cond()
	}, within)
	return err
}

// Reset brings the lab back to the steady state after a scenario: the
// nodes hear each other and etcd again, every etcd member runs (thawed,
// or restarted on its data dir) and is healthy, maintenance ends, fenced
// and keepalived run on every node; then it waits for the steady state.
// It returns the master.
func (v *Lab) Reset(ctx context.Context) (*lab.Node, error) {
	since := v.TL.Now()
	v.mu.Lock()
	isolated, cut, parted, maint := v.isolated, v.cut, v.parted, v.maint
	v.isolated, v.cut, v.parted, v.maint = false, map[string]bool{}, map[string]bool{}, map[string]bool{}
	v.mu.Unlock()
	var errs []error
	if isolated {
		if _, err := v.IsolatePeers(false); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range v.Nodes {
		if parted[n.Name] {
			if _, err := v.Lab.CutPeers(n, false); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !v.Control {
		if err := v.RecoverEtcd(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range v.Nodes {
		if cut[n.Name] {
			if _, err := v.RestoreEtcd(n); err != nil {
				errs = append(errs, err)
			}
		}
		if maint[n.Name] {
			if _, err := v.WriteMaint(n, "0"); err != nil {
				errs = append(errs, err)
			}
		}
		if !v.Control {
			if p := v.Fenced(n); p == nil || !p.Running() {
				if err := v.StartFenced(n); err != nil {
					errs = append(errs, err)
				}
			}
		}
		p := n.Keepalived()
		if p != nil && p.Running() && v.TL.StateAt(n.Name, lab.Instance, v.TL.Now()) == "STOP" {
			// Stopping (SIGTERM): keepalived runs its notify_stop hooks
			// and exits within about a second.
			if err := p.Wait(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if p == nil || !p.Running() {
			if err := v.StartKeepalived(n, v.Conf); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reset lab: %w", err)
	}
	m, err := v.WaitSteady(ctx, since, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("reset lab (since %s): %w", observe.FormatAt(since), err)
	}
	return m, nil
}

// CutEtcd cuts node n from etcd silently (topo.CutNeighbour: packets
// vanish, connects time out), as a real partition looks; Reset restores.
func (v *Lab) CutEtcd(n *lab.Node) (time.Duration, error) {
	v.mu.Lock()
	v.cut[n.Name] = true
	v.mu.Unlock()
	return v.Lab.CutEtcd(n, topo.CutNeighbour)
}

// CutPeers cuts node n from the other nodes, both ways; each still
// reaches etcd and the router (lab.Lab.CutPeers). Reset heals it.
func (v *Lab) CutPeers(n *lab.Node) (time.Duration, error) {
	v.mu.Lock()
	v.parted[n.Name] = true
	v.mu.Unlock()
	return v.Lab.CutPeers(n, true)
}

// Isolate splits the nodes from each other (bridge port isolation); Reset
// lifts it.
func (v *Lab) Isolate() (time.Duration, error) {
	v.mu.Lock()
	v.isolated = true
	v.mu.Unlock()
	return v.IsolatePeers(true)
}

// Heal lifts the isolation.
func (v *Lab) Heal() (time.Duration, error) {
	v.mu.Lock()
	v.isolated = false
	v.mu.Unlock()
	return v.IsolatePeers(false)
}

// Isolated reports whether the nodes are split from each other now.
func (v *Lab) Isolated() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.isolated
}

// WriteMaint writes node n's maintenance track file (VI_1.maint, what
// `vipctl handover` writes) atomically, as vipctl does (temp file,
// rename), and marks it on the timeline.
func (v *Lab) WriteMaint(n *lab.Node, value string) (time.Duration, error) {
	v.mu.Lock()
	v.maint[n.Name] = value != "0"
	v.mu.Unlock()
	path := filepath.Join(n.StateDir, lab.Instance+".maint")
	at := v.TL.Mark(observe.KindFault, n.Name, "write "+value+" to "+filepath.Base(path))
	tmp := path + ".lab"
	if err := os.WriteFile(tmp, []byte(value+"\n"), 0o644); err != nil {
		return at, fmt.Errorf("write maintenance file on %s: %w", n.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return at, fmt.Errorf("write maintenance file on %s: %w", n.Name, err)
	}
	return at, nil
}

// Vipctl runs bin/vipctl with args inside node n's namespace, with the
// node's environment (config, state dir, log file), and returns its
// output.
func (v *Lab) Vipctl(ctx context.Context, n *lab.Node, args ...string) (string, error) {
	if v.Control {
		return "", errors.New("run vipctl: the control lab has no vipkit")
	}
	cmd := n.Host.NS.Command(ctx, v.vipctl, args...)
	cmd.Env = append(os.Environ(), n.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vipctl %s on %s: %w: %s", strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// FencedState is fenced's state file (fenced.json, pkg/fencedstate).
type FencedState = fencedstate.Snapshot

// ReadFencedState reads node n's fenced.json.
func (v *Lab) ReadFencedState(n *lab.Node) (FencedState, error) {
	var s FencedState
	b, err := os.ReadFile(filepath.Join(n.StateDir, "fenced.json"))
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return s, fmt.Errorf("read fenced state of %s: %w", n.Name, err)
	}
	return s, nil
}

// Scrape fetches node n's fenced metrics (MetricsAddr) from inside the
// node's namespace as a Prometheus on the node would: bounded by ctx (a
// stopped fenced accepts the connection and never answers).
func (v *Lab) Scrape(ctx context.Context, n *lab.Node) ([]byte, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return n.Host.NS.DialContext(ctx, network, addr)
	}, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+MetricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape fenced on %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	if err != nil {
		return nil, fmt.Errorf("scrape fenced on %s: %w", n.Name, err)
	}
	return b, nil
}

// TTL is the main cluster's lease TTL (Options.TTL, else DefaultTTL).
func (v *Lab) TTL() time.Duration {
	if v.ttl != 0 {
		return v.ttl
	}
	return DefaultTTL
}
