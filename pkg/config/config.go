// Package config reads vipkit.toml, the one file vipctl and fenced share.
//
// Parsing is strict: an unknown key, a value of the wrong type or a value out
// of range is an error that names the file, the line and the key, and nothing
// is returned half-validated.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/vipkit/vipkit/pkg/vip"
)

// DefaultPath is where vipctl and fenced look for the file.
const DefaultPath = "/etc/vipkit/vipkit.toml"

// DefaultStateDir holds vipctl's ordering state, fenced's state file and the
// keepalived track files. It must exist before keepalived starts (tmpfiles.d).
const DefaultStateDir = "/run/vipkit"

// ErrInvalid marks every configuration error, so callers can map it to the
// usage exit code.
var ErrInvalid = errors.New("invalid configuration")

// Announcement defaults: a short burst at once, then a refresh for half a
// minute, long enough for switches that ignored or lost the first burst.
const (
	DefaultCount        = 3
	DefaultInterval     = 0
	DefaultRefreshEvery = time.Second
	DefaultRefreshFor   = 30 * time.Second
)

// Lease defaults (DESIGN F4).
const (
	DefaultTTL            = 5 * time.Second
	DefaultMargin         = 1500 * time.Millisecond
	DefaultHoldDown       = 3 * time.Second
	DefaultDialTimeout    = 2 * time.Second
	DefaultReconcileEvery = 5 * time.Second
	// DefaultDefendDelay lets a host that is releasing a VIP finish before
	// it could answer the new owner's announcements.
	DefaultDefendDelay = 100 * time.Millisecond
	DefaultPrefix      = "/vipkit"
	// MinTTL is etcd's smallest lease TTL with default election settings.
	MinTTL = 2 * time.Second
)

// Config is a validated vipkit.toml.
type Config struct {
	Path      string
	Node      string
	StateDir  string
	LogLevel  slog.Level
	Announce  Announce
	Fenced    Fenced
	Clusters  []Cluster
	Instances []Instance

	// vipsAt and devAt locate each instance's vips and dev keys
	// ("vipkit.toml:12: instance[0].vips") for errors found against the
	// host (CheckVIPs, CheckDevs).
	vipsAt, devAt map[string]string
}

// Announce is a GARP / unsolicited NA schedule: Count packets Interval apart
// at once, then one every RefreshEvery for RefreshFor (0 means no refresher).
type Announce struct {
	Count        int
	Interval     time.Duration
	RefreshEvery time.Duration
	RefreshFor   time.Duration
}

// DefaultAnnounce is the schedule used when neither file nor flags set one.
func DefaultAnnounce() Announce {
	return Announce{Count: DefaultCount, Interval: DefaultInterval, RefreshEvery: DefaultRefreshEvery, RefreshFor: DefaultRefreshFor}
}

// Validate checks a schedule built from flags or the file.
func (a Announce) Validate() error {
	switch {
	case a.Count < 1 || a.Count > 100:
		return fmt.Errorf("count %d: must be between 1 and 100", a.Count)
	case a.Interval < 0 || a.Interval > 10*time.Second:
		return fmt.Errorf("interval %s: must be between 0s and 10s", a.Interval)
	case a.RefreshFor < 0:
		return fmt.Errorf("refresh-for %s: must not be negative", a.RefreshFor)
	case a.RefreshFor > 0 && a.RefreshEvery < 10*time.Millisecond:
		return fmt.Errorf("refresh-every %s: must be at least 10ms when refreshing", a.RefreshEvery)
	}
	return nil
}

// Instance maps a keepalived vrrp_instance to the VIPs vipkit manages for it.
type Instance struct {
	Name  string // keepalived vrrp_instance name
	Group string // keepalived vrrp_sync_group name, if any
	Dev   string
	VIPs  []vip.VIP
	// Own is true when vipctl adds and removes the addresses (VIP not in
	// keepalived's virtual_ipaddress); false when keepalived owns them.
	Own      bool
	Announce Announce
	// Cluster names the etcd cluster whose lease guards this instance; empty
	// means fenced does not guard it.
	Cluster string
	// TrackFile is the keepalived track_file fenced writes (1 = FAULT).
	TrackFile string
	// MaintenanceFile is the keepalived track_file vipctl handover writes.
	MaintenanceFile string
	// Witness makes etcd decide which node may hold the instance's VIPs
	// (docs/witness.md): only the holder of <prefix>/owners/<name> has its
	// track file at 0. Needs Cluster.
	Witness bool
	// Priority ranks this node's claim on a witnessed instance (1-254, the
	// instance's keepalived priority on this node; fenced check compares).
	Priority int
	// Nopreempt keeps a witnessed instance with its owner when a node of
	// higher priority comes back (keepalived's nopreempt).
	Nopreempt bool
}

// Target is the instance's VIPs on its link, as vipctl and fenced act on
// them.
func (in Instance) Target() vip.Target {
	return vip.Target{Instance: in.Name, Dev: in.Dev, VIPs: slices.Clone(in.VIPs), Own: in.Own}
}

// Cluster is one etcd cluster and the lease fenced holds in it.
type Cluster struct {
	Name           string
	Endpoints      []string
	Prefix         string
	TTL            time.Duration
	Margin         time.Duration
	HoldDown       time.Duration
	RenewEvery     time.Duration
	RequestTimeout time.Duration
	DialTimeout    time.Duration
	TLS            TLS
	User           string
	PasswordFile   string
	// StrictEtcdVersion keeps the cluster's instances fenced while a member
	// runs an etcd release with a known lease bug (pkg/etcdversion).
	StrictEtcdVersion bool
}

// TLS holds file paths; the files are read by fenced, not here.
type TLS struct {
	CACert     string
	Cert       string
	Key        string
	ServerName string
}

// Enabled reports whether any TLS setting is present.
func (t TLS) Enabled() bool { return t != TLS{} }

// Fenced holds fenced's own settings.
type Fenced struct {
	// OnStop is "fault" (write 1 to the track files on stop) or "keep".
	OnStop string
	// Metrics is a loopback host:port for Prometheus, empty when off.
	Metrics string
	// ReconcileEvery is how often the route guard re-checks the host.
	ReconcileEvery time.Duration
	// Defend re-announces a VIP held here when another host claims it
	// (DESIGN F3: the survivor of a split brain gets the last word), after
	// DefendDelay.
	Defend      bool
	DefendDelay time.Duration
	// VRRPPIDFile names keepalived's VRRP process (keepalived -r, default
	// /run/vrrp.pid): the process that holds the VIPs. When it dies without
	// cleaning up (SIGKILL of all of keepalived), fenced removes them.
	VRRPPIDFile string
}

// InstanceByName finds an instance.
func (c *Config) InstanceByName(name string) (Instance, bool) {
	i := slices.IndexFunc(c.Instances, func(in Instance) bool { return in.Name == name })
	if i < 0 {
		return Instance{}, false
	}
	return c.Instances[i], true
}

// InstancesInGroup lists the instances of a keepalived sync group.
func (c *Config) InstancesInGroup(group string) []Instance {
	var out []Instance
	for _, in := range c.Instances {
		if in.Group != "" && in.Group == group {
			out = append(out, in)
		}
	}
	return out
}

// ClusterByName finds a cluster.
func (c *Config) ClusterByName(name string) (Cluster, bool) {
	i := slices.IndexFunc(c.Clusters, func(cl Cluster) bool { return cl.Name == name })
	if i < 0 {
		return Cluster{}, false
	}
	return c.Clusters[i], true
}

// Default is the configuration of an empty file.
func Default() *Config {
	c, err := Parse("", nil)
	if err != nil {
		panic(err) // an empty file is always valid
	}
	return c
}

// The raw* types mirror the file; strings stay strings until validation so
// that every error can name its key and line.
type rawFile struct {
	Node     string       `toml:"node"`
	StateDir string       `toml:"state_dir"`
	LogLevel string       `toml:"log_level"`
	Announce rawAnnounce  `toml:"announce"`
	Fenced   rawFenced    `toml:"fenced"`
	Cluster  []rawCluster `toml:"cluster"`
	Instance []rawInst    `toml:"instance"`
}

type rawAnnounce struct {
	Count        *int   `toml:"count"`
	Interval     string `toml:"interval"`
	RefreshEvery string `toml:"refresh_every"`
	RefreshFor   string `toml:"refresh_for"`
}

type rawFenced struct {
	OnStop         string `toml:"on_stop"`
	Metrics        string `toml:"metrics"`
	ReconcileEvery string `toml:"reconcile_every"`
	VRRPPIDFile    string `toml:"vrrp_pid_file"`
	Defend         *bool  `toml:"defend"`
	DefendDelay    string `toml:"defend_delay"`
}

type rawCluster struct {
	Name           string   `toml:"name"`
	Endpoints      []string `toml:"endpoints"`
	Prefix         string   `toml:"prefix"`
	TTL            string   `toml:"ttl"`
	Margin         string   `toml:"margin"`
	HoldDown       string   `toml:"hold_down"`
	RenewEvery     string   `toml:"renew_every"`
	RequestTimeout string   `toml:"request_timeout"`
	DialTimeout    string   `toml:"dial_timeout"`
	CACert         string   `toml:"cacert"`
	Cert           string   `toml:"cert"`
	Key            string   `toml:"key"`
	ServerName     string   `toml:"server_name"`
	User           string   `toml:"user"`
	PasswordFile   string   `toml:"password_file"`
	StrictEtcd     bool     `toml:"strict_etcd_version"`
}

type rawInst struct {
	Name            string       `toml:"name"`
	Group           string       `toml:"group"`
	Dev             string       `toml:"dev"`
	VIPs            []string     `toml:"vips"`
	Own             bool         `toml:"own"`
	Announce        *rawAnnounce `toml:"announce"`
	Cluster         string       `toml:"cluster"`
	TrackFile       string       `toml:"track_file"`
	MaintenanceFile string       `toml:"maintenance_file"`
	Witness         bool         `toml:"witness"`
	Priority        *int         `toml:"priority"`
	Nopreempt       bool         `toml:"nopreempt"`
}

// Parse validates the contents of a configuration file. name is used in
// error messages only.
func Parse(name string, data []byte) (*Config, error) {
	label := name
	if label == "" {
		label = "config"
	}
	var raw rawFile
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(label, err)
	}
	v := validator{name: label, lines: keyLines(data)}
	cfg := v.file(&raw)
	if v.err != nil {
		return nil, v.err
	}
	cfg.vipsAt, cfg.devAt = map[string]string{}, map[string]string{}
	for i, in := range cfg.Instances {
		cfg.vipsAt[in.Name] = v.locate(fmt.Sprintf("instance[%d].vips", i))
		cfg.devAt[in.Name] = v.locate(fmt.Sprintf("instance[%d].dev", i))
	}
	cfg.Path = name
	return cfg, nil
}

func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		e := strict.Errors[0]
		row, _ := e.Position()
		return fmt.Errorf("%s:%d: unknown key %q: %w", name, row, strings.Join(e.Key(), "."), ErrInvalid)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return fmt.Errorf("%s:%d: %s: %w", name, row, strings.TrimPrefix(de.Error(), "toml: "), ErrInvalid)
	}
	return fmt.Errorf("%s: %v: %w", name, err, ErrInvalid)
}

// validator collects the first error; later checks are skipped once one
// failed so the message is always about the first problem in the file.
type validator struct {
	name  string
	lines map[string]int
	err   error
}

func (v *validator) failf(key, format string, args ...any) {
	if v.err != nil {
		return
	}
	v.err = fmt.Errorf("%s: %s: %w", v.locate(key), fmt.Sprintf(format, args...), ErrInvalid)
}

// locate names a key as errors do: "file:line: key".
func (v *validator) locate(key string) string {
	if line, ok := v.lines[key]; ok {
		return fmt.Sprintf("%s:%d: %s", v.name, line, key)
	}
	return v.name + ": " + key
}

// CheckVIPs validates every configured VIP against the host: floating(dev,
// v) reports a VIP that is one of the interface's own addresses, which
// vipkit must never release (hostnet.Net.CheckFloating). The error names
// the file, line and key.
func (c *Config) CheckVIPs(floating func(dev string, v vip.VIP) error) error {
	for _, in := range c.Instances {
		for _, v := range in.VIPs {
			if err := floating(in.Dev, v); err != nil {
				return fmt.Errorf("%s: %w: %w", at(c.vipsAt, in.Name, "vips"), err, ErrInvalid)
			}
		}
	}
	return nil
}

// CheckDevs validates every instance's interface against the host: exists
// reports one that is not there. The error names the file, line and key.
func (c *Config) CheckDevs(exists func(dev string) error) error {
	for _, in := range c.Instances {
		if err := exists(in.Dev); err != nil {
			return fmt.Errorf("%s: %w: %w", at(c.devAt, in.Name, "dev"), err, ErrInvalid)
		}
	}
	return nil
}

// at is where an instance's key is, or its name and key for a Config not
// parsed from a file.
func at(where map[string]string, instance, key string) string {
	if s := where[instance]; s != "" {
		return s
	}
	return "instance " + instance + ": " + key
}

func (v *validator) duration(key, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.failf(key, "%q is not a duration (write e.g. \"1.5s\")", s)
		return def
	}
	if d < 0 {
		v.failf(key, "%q must not be negative", s)
		return def
	}
	return d
}

func (v *validator) file(r *rawFile) *Config {
	c := &Config{
		Node:     r.Node,
		StateDir: r.StateDir,
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	} else if !filepath.IsAbs(c.StateDir) {
		v.failf("state_dir", "%q must be an absolute path", c.StateDir)
	}
	c.StateDir = filepath.Clean(c.StateDir)
	switch strings.ToLower(r.LogLevel) {
	case "", "info":
		c.LogLevel = slog.LevelInfo
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		v.failf("log_level", "%q is not one of debug, info, warn, error", r.LogLevel)
	}
	if c.Node != "" && strings.ContainsAny(c.Node, "/ \t\n") {
		v.failf("node", "%q must not contain '/' or white space", c.Node)
	}
	c.Announce = v.announce("announce", &r.Announce, DefaultAnnounce())
	c.Fenced = v.fenced(&r.Fenced)

	for i := range r.Cluster {
		key := fmt.Sprintf("cluster[%d]", i)
		cl := v.cluster(key, &r.Cluster[i])
		if slices.ContainsFunc(c.Clusters, func(o Cluster) bool { return o.Name == cl.Name }) {
			v.failf(key+".name", "cluster %q is defined twice", cl.Name)
		}
		c.Clusters = append(c.Clusters, cl)
	}
	seenVIP := map[netip.Addr]string{}
	seenFile := map[string]string{}
	for i := range r.Instance {
		key := fmt.Sprintf("instance[%d]", i)
		in := v.instance(key, &r.Instance[i], c)
		if slices.ContainsFunc(c.Instances, func(o Instance) bool { return o.Name == in.Name }) {
			v.failf(key+".name", "instance %q is defined twice", in.Name)
		}
		for _, a := range in.VIPs {
			if other, ok := seenVIP[a.Addr()]; ok {
				v.failf(key+".vips", "%s is already listed by instance %q", a, other)
			}
			seenVIP[a.Addr()] = in.Name
		}
		for _, f := range []struct{ key, path string }{{"track_file", in.TrackFile}, {"maintenance_file", in.MaintenanceFile}} {
			if f.path == "" {
				continue
			}
			if other, ok := seenFile[f.path]; ok {
				v.failf(key+"."+f.key, "%q is already used by %s", f.path, other)
			}
			seenFile[f.path] = fmt.Sprintf("instance %q", in.Name)
		}
		c.Instances = append(c.Instances, in)
	}
	return c
}

func (v *validator) announce(key string, r *rawAnnounce, def Announce) Announce {
	a := def
	if r == nil {
		return a
	}
	if r.Count != nil {
		a.Count = *r.Count
		if a.Count < 1 || a.Count > 100 {
			v.failf(key+".count", "%d must be between 1 and 100", a.Count)
		}
	}
	a.Interval = v.duration(key+".interval", r.Interval, a.Interval)
	if a.Interval > 10*time.Second {
		v.failf(key+".interval", "%s must be at most 10s", a.Interval)
	}
	a.RefreshEvery = v.duration(key+".refresh_every", r.RefreshEvery, a.RefreshEvery)
	a.RefreshFor = v.duration(key+".refresh_for", r.RefreshFor, a.RefreshFor)
	if a.RefreshFor > 0 && a.RefreshEvery < 10*time.Millisecond {
		v.failf(key+".refresh_every", "%s must be at least 10ms when refresh_for is set", a.RefreshEvery)
	}
	return a
}

func (v *validator) fenced(r *rawFenced) Fenced {
	f := Fenced{
		OnStop:         r.OnStop,
		Metrics:        r.Metrics,
		ReconcileEvery: v.duration("fenced.reconcile_every", r.ReconcileEvery, DefaultReconcileEvery),
		VRRPPIDFile:    r.VRRPPIDFile,
		Defend:         r.Defend == nil || *r.Defend,
		DefendDelay:    v.duration("fenced.defend_delay", r.DefendDelay, DefaultDefendDelay),
	}
	if f.DefendDelay > 5*time.Second {
		v.failf("fenced.defend_delay", "%s must be at most 5s", f.DefendDelay)
	}
	switch f.OnStop {
	case "":
		f.OnStop = "fault"
	case "fault", "keep":
	default:
		v.failf("fenced.on_stop", "%q is not \"fault\" or \"keep\"", r.OnStop)
	}
	if f.ReconcileEvery < 100*time.Millisecond {
		v.failf("fenced.reconcile_every", "%s must be at least 100ms", f.ReconcileEvery)
	}
	if f.Metrics != "" {
		if err := CheckMetricsAddr(f.Metrics); err != nil {
			v.failf("fenced.metrics", "%v", err)
		}
	}
	if f.VRRPPIDFile == "" {
		f.VRRPPIDFile = "/run/vrrp.pid"
	} else if !filepath.IsAbs(f.VRRPPIDFile) {
		v.failf("fenced.vrrp_pid_file", "%q must be an absolute path", f.VRRPPIDFile)
	}
	return f
}

// CheckMetricsAddr accepts only loopback listen addresses: metrics reveal
// lease state and must not be reachable from the network by default.
func CheckMetricsAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return fmt.Errorf("%q must listen on a loopback address", s)
	}
	return nil
}

func (v *validator) cluster(key string, r *rawCluster) Cluster {
	c := Cluster{
		Name:         r.Name,
		Endpoints:    r.Endpoints,
		Prefix:       r.Prefix,
		TLS:          TLS{CACert: r.CACert, Cert: r.Cert, Key: r.Key, ServerName: r.ServerName},
		User:         r.User,
		PasswordFile: r.PasswordFile,

		StrictEtcdVersion: r.StrictEtcd,
	}
	if c.Name == "" {
		v.failf(key+".name", "missing")
	}
	if len(c.Endpoints) == 0 {
		v.failf(key+".endpoints", "at least one endpoint is needed")
	}
	for _, e := range c.Endpoints {
		if err := CheckEndpoint(e); err != nil {
			v.failf(key+".endpoints", "%v", err)
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		v.failf(key+".prefix", "%q must start with '/'", c.Prefix)
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	c.TTL = v.duration(key+".ttl", r.TTL, DefaultTTL)
	c.Margin = v.duration(key+".margin", r.Margin, DefaultMargin)
	c.HoldDown = v.duration(key+".hold_down", r.HoldDown, DefaultHoldDown)
	c.RenewEvery = v.duration(key+".renew_every", r.RenewEvery, 0)
	c.RequestTimeout = v.duration(key+".request_timeout", r.RequestTimeout, 0)
	c.DialTimeout = v.duration(key+".dial_timeout", r.DialTimeout, DefaultDialTimeout)
	if v.err != nil {
		return c
	}
	if err := c.completeTimings(); err != nil {
		v.failf(key+"."+err.key, "%s", err.msg)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		v.failf(key+".cert", "cert and key must be given together")
	}
	if c.PasswordFile != "" && c.User == "" {
		v.failf(key+".password_file", "set only with user")
	}
	for _, p := range []struct{ key, path string }{{"cacert", c.TLS.CACert}, {"cert", c.TLS.Cert}, {"key", c.TLS.Key}, {"password_file", c.PasswordFile}} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			v.failf(key+"."+p.key, "%q must be an absolute path", p.path)
		}
	}
	return c
}

type timingError struct{ key, msg string }

// completeTimings fills derived lease timings and rejects combinations that
// cannot fence safely. Flags and file share it.
func (c *Cluster) completeTimings() *timingError {
	if c.TTL < MinTTL {
		return &timingError{"ttl", fmt.Sprintf("%s is below etcd's minimum lease TTL of %s", c.TTL, MinTTL)}
	}
	if c.TTL%time.Second != 0 {
		return &timingError{"ttl", fmt.Sprintf("%s must be whole seconds (etcd grants leases in seconds)", c.TTL)}
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = c.TTL / 3
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = c.RenewEvery
	}
	if c.Margin <= 0 {
		return &timingError{"margin", fmt.Sprintf("%s must be positive", c.Margin)}
	}
	if c.RenewEvery < 100*time.Millisecond {
		return &timingError{"renew_every", fmt.Sprintf("%s must be at least 100ms", c.RenewEvery)}
	}
	if c.TTL-c.Margin < c.RenewEvery {
		return &timingError{"margin", fmt.Sprintf("%s leaves %s of validity after a renewal, less than one renewal interval (%s); lower the margin or renew_every, or raise the ttl", c.Margin, c.TTL-c.Margin, c.RenewEvery)}
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > c.TTL-c.Margin {
		return &timingError{"request_timeout", fmt.Sprintf("%s must be positive and at most ttl - margin (%s)", c.RequestTimeout, c.TTL-c.Margin)}
	}
	if c.DialTimeout <= 0 {
		return &timingError{"dial_timeout", fmt.Sprintf("%s must be positive", c.DialTimeout)}
	}
	return nil
}

// Complete validates a Cluster built from flags and fills the same defaults
// as the file would.
func (c *Cluster) Complete() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("endpoints: at least one endpoint is needed: %w", ErrInvalid)
	}
	for _, e := range c.Endpoints {
		if err := CheckEndpoint(e); err != nil {
			return fmt.Errorf("endpoints: %v: %w", err, ErrInvalid)
		}
	}
	if err := c.completeTimings(); err != nil {
		return fmt.Errorf("%s: %s: %w", err.key, err.msg, ErrInvalid)
	}
	return nil
}

// CheckEndpoint accepts http(s)://host:port etcd client URLs.
func CheckEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("endpoint %q is not http(s)://host:port", e)
	}
	return nil
}

// CheckInstanceName accepts what keepalived accepts as an instance name and
// can pass to a hook unchanged.
func CheckInstanceName(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	if strings.ContainsAny(s, " \t\n\"'/") || len(s) > 128 {
		return fmt.Errorf("%q must not contain quotes, '/' or white space", s)
	}
	return nil
}

// CheckDev accepts a Linux interface name.
func CheckDev(s string) error {
	if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") || s == "." || s == ".." {
		return fmt.Errorf("%q is not an interface name", s)
	}
	return nil
}

func (v *validator) instance(key string, r *rawInst, c *Config) Instance {
	in := Instance{
		Name:            r.Name,
		Group:           r.Group,
		Dev:             r.Dev,
		Own:             r.Own,
		Cluster:         r.Cluster,
		TrackFile:       r.TrackFile,
		MaintenanceFile: r.MaintenanceFile,
		Witness:         r.Witness,
		Nopreempt:       r.Nopreempt,
	}
	if err := CheckInstanceName(in.Name); err != nil {
		v.failf(key+".name", "%v", err)
	}
	if in.Group != "" {
		if err := CheckInstanceName(in.Group); err != nil {
			v.failf(key+".group", "%v", err)
		}
	}
	if err := CheckDev(in.Dev); err != nil {
		v.failf(key+".dev", "%v", err)
	}
	if len(r.VIPs) == 0 {
		v.failf(key+".vips", "at least one VIP is needed")
	}
	vips, err := vip.ParseList(r.VIPs)
	if err != nil {
		v.failf(key+".vips", "%v", err)
	}
	in.VIPs = vips
	in.Announce = v.announce(key+".announce", r.Announce, c.Announce)
	if in.Cluster != "" {
		if _, ok := c.ClusterByName(in.Cluster); !ok {
			v.failf(key+".cluster", "no [[cluster]] is named %q", in.Cluster)
		}
		if in.TrackFile == "" {
			in.TrackFile = filepath.Join(c.StateDir, in.Name+".fence")
		}
	} else if in.TrackFile != "" {
		v.failf(key+".track_file", "set only with cluster (fenced writes it)")
	}
	switch {
	case in.Witness && in.Cluster == "":
		v.failf(key+".witness", "needs cluster (the owner key lives in its etcd)")
	case in.Witness && r.Priority == nil:
		v.failf(key+".priority", "is required with witness (this node's keepalived priority for the instance)")
	case r.Priority != nil && !in.Witness:
		v.failf(key+".priority", "set only with witness = true")
	case r.Nopreempt && !in.Witness:
		v.failf(key+".nopreempt", "set only with witness = true")
	case r.Priority != nil:
		in.Priority = *r.Priority
		if in.Priority < 1 || in.Priority > 254 {
			v.failf(key+".priority", "%d must be between 1 and 254", in.Priority)
		}
	}
	if in.MaintenanceFile == "" {
		in.MaintenanceFile = filepath.Join(c.StateDir, in.Name+".maint")
	}
	for _, f := range []struct{ key, path string }{{"track_file", in.TrackFile}, {"maintenance_file", in.MaintenanceFile}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			v.failf(key+"."+f.key, "%q must be an absolute path", f.path)
		}
	}
	return in
}
