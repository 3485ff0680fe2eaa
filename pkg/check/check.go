// Package check is vipctl's host preflight: what on this host would make
// the VIP misbehave at the next failover, each finding with its fix.
//
// Facts are gathered on the host (check_linux.go); Evaluate turns them into
// findings without touching anything, so every rule is unit-tested.
package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/keepalived"
)

// Severity of a finding; any error makes vipctl check exit 1.
type Severity string

// Severities. An error means the host and keepalived will not work with
// vipkit as configured; a warning is a risk; info is worth knowing.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding is one problem, with the fix.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Subject  string   `json:"subject"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix"`
	Where    string   `json:"where,omitempty"`
}

// Facts is what the host looks like.
type Facts struct {
	// Sysctl values by path under /proc/sys ("net/ipv4/conf/eth0/arp_ignore");
	// a missing key was unreadable.
	Sysctl map[string]string
	// Links by name; a configured interface missing here does not exist.
	Links map[string]LinkFacts
	// LocalRoutes are the local-table host routes; Orphans the subset whose
	// address is gone.
	LocalRoutes []hostnet.LocalRoute
	Orphans     []hostnet.LocalRoute
	// Keepalived is keepalived.conf as read, or why it could not be.
	Keepalived    *keepalived.Conf
	KeepalivedErr error
	KeepalivedVer string
	// Binaries are the programs hooks run, with every directory above them.
	Binaries []PathChain
	// StateDir is the state directory; nil Owner means it does not exist.
	StateDir PathFacts
	// UserExists answers for script_user checks.
	UserExists func(string) bool
	// VipctlPath and FencedPath are what keepalived.conf must call.
	VipctlPath, FencedPath string
	// Peers are the other nodes' keepalived.conf (vipctl check --peer),
	// compared with this node's.
	Peers []Node
}

// LinkFacts is one interface.
type LinkFacts struct {
	Addrs []hostnet.Addr
	Up    bool
}

// PathFacts is ownership and mode of one path.
type PathFacts struct {
	Path   string
	Exists bool
	UID    uint32
	Mode   uint32 // permission bits and sticky
	IsDir  bool
}

// PathChain is a file and each directory above it, up to /.
type PathChain struct {
	Path  string
	Chain []PathFacts
}

// Report is the result of a check.
type Report struct {
	OK       bool      `json:"ok"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Findings []Finding `json:"findings"`
}

// Evaluate applies every rule.
func Evaluate(cfg *config.Config, f Facts) Report {
	var out []Finding
	add := func(sev Severity, check, subject, fix, format string, args ...any) {
		out = append(out, Finding{Severity: sev, Check: check, Subject: subject, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	if len(cfg.Instances) == 0 {
		add(Warning, "config", configName(cfg), "describe each keepalived instance in [[instance]] blocks (see docs/configuration.md)",
			"no instance is configured: vipctl notify, fifo and handover have nothing to act on, and fenced guards nothing")
	}
	devs := map[string]bool{}
	for _, in := range cfg.Instances {
		devs[in.Dev] = true
		l, ok := f.Links[in.Dev]
		if !ok {
			add(Error, "interface", "instance "+in.Name, fmt.Sprintf("create %s or fix dev in the config", in.Dev),
				"interface %s does not exist", in.Dev)
			continue
		}
		for _, v := range in.VIPs {
			subject := fmt.Sprintf("instance %s VIP %s", in.Name, v)
			if _, err := hostnet.PickPrimary(in.Dev, l.Addrs, v); err != nil {
				add(Error, "primary-address", subject,
					fmt.Sprintf("give %s a static %s address of its own; the route hint needs one as its source", in.Dev, v.Family()),
					"%v", err)
			}
		}
	}
	sysctls(cfg, f, devs, add)
	routes(cfg, f, add)
	binaries(f, add)
	stateDir(cfg, f, add)
	if f.KeepalivedErr != nil {
		add(Error, "keepalived-conf", "keepalived.conf", "fix the path (--keepalived-conf) or the file", "%v", f.KeepalivedErr)
	} else if f.Keepalived != nil {
		for _, is := range Inspect(f.Keepalived, expect(cfg, f)) {
			out = append(out, Finding{Severity: is.Severity, Check: "keepalived-conf", Subject: is.Subject, Message: is.Message, Fix: is.Fix, Where: is.Line})
		}
		if len(f.Peers) > 0 {
			local := Node{Name: "this node", Conf: f.Keepalived}
			if len(f.Keepalived.Files) > 0 {
				local.Name = f.Keepalived.Files[0]
			}
			for _, is := range Peers(append([]Node{local}, f.Peers...), PeerOptions{FenceFile: fenceFile(cfg)}) {
				out = append(out, Finding{Severity: is.Severity, Check: "keepalived-peers", Subject: is.Subject, Message: is.Message, Fix: is.Fix, Where: is.Line})
			}
		}
	}
	return report(out)
}

func report(out []Finding) Report {
	rank := map[Severity]int{Error: 0, Warning: 1, Info: 2}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Severity] < rank[out[j].Severity] })
	r := Report{Findings: out}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, x := range out {
		switch x.Severity {
		case Error:
			r.Errors++
		case Warning:
			r.Warnings++
		}
	}
	r.OK = r.Errors == 0
	return r
}

func configName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "vipkit configuration"
	}
	return cfg.Path
}

type addFunc func(sev Severity, check, subject, fix, format string, args ...any)

// sysctls checks what keepalived's VIPs need from the kernel: answer ARP
// only for addresses on the asking interface, announce with the best local
// address, and keep secondaries when a primary goes.
func sysctls(cfg *config.Config, f Facts, devs map[string]bool, add addFunc) {
	names := make([]string, 0, len(devs))
	for d := range devs {
		names = append(names, d)
	}
	sort.Strings(names)
	has4 := false
	for _, in := range cfg.Instances {
		for _, v := range in.VIPs {
			has4 = has4 || !v.Is6()
		}
	}
	if !has4 {
		return
	}
	for _, dev := range names {
		// The kernel uses the maximum of "all" and the interface's value.
		val := func(key string) (int, bool) {
			a, okA := atoi(f.Sysctl["net/ipv4/conf/all/"+key])
			d, okD := atoi(f.Sysctl["net/ipv4/conf/"+dev+"/"+key])
			return max(a, d), okA || okD
		}
		if v, ok := val("arp_ignore"); ok && v < 1 {
			add(Warning, "sysctl", "net.ipv4.conf."+dev+".arp_ignore", "sysctl -w net.ipv4.conf."+dev+".arp_ignore=1 (and persist it in /etc/sysctl.d)",
				"is %d: the host answers ARP for any of its addresses on any interface, which can point neighbours at the wrong MAC", v)
		}
		if v, ok := val("arp_announce"); ok && v < 2 {
			add(Warning, "sysctl", "net.ipv4.conf."+dev+".arp_announce", "sysctl -w net.ipv4.conf."+dev+".arp_announce=2 (and persist it in /etc/sysctl.d)",
				"is %d: ARP requests may carry the VIP as sender, which re-points neighbours at this host after it released the VIP", v)
		}
		a, okA := atoi(f.Sysctl["net/ipv4/conf/all/promote_secondaries"])
		d, okD := atoi(f.Sysctl["net/ipv4/conf/"+dev+"/promote_secondaries"])
		if (okA || okD) && a == 0 && d == 0 {
			add(Warning, "sysctl", "net.ipv4.conf."+dev+".promote_secondaries", "sysctl -w net.ipv4.conf."+dev+".promote_secondaries=1 (and persist it in /etc/sysctl.d)",
				"is 0: deleting a primary address deletes every secondary address of its subnet with it")
		}
	}
}

func atoi(s string) (int, bool) {
	var v int
	_, err := fmt.Sscanf(s, "%d", &v)
	return v, err == nil
}

// routes reports orphans and assigned VIPs whose local route still has the
// VIP as its source (no hint: local clients would hang at failover).
func routes(cfg *config.Config, f Facts, add addFunc) {
	for _, o := range f.Orphans {
		add(Error, "orphan-route", "route "+o.String(), "run vipctl cleanup (fenced removes these by itself)",
			"local route for %s, which is not assigned here: the host still treats it as its own and (IPv4) answers ARP for it", o.Dst)
	}
	for _, in := range cfg.Instances {
		for _, v := range in.VIPs {
			var rs []hostnet.LocalRoute
			for _, r := range f.LocalRoutes {
				if r.Dst == v.Addr() {
					rs = append(rs, r)
				}
			}
			if len(rs) == 0 {
				continue // not held here
			}
			hinted := false
			for _, r := range rs {
				hinted = hinted || (r.IsHint() && r.Src.IsValid())
			}
			if !hinted {
				add(Warning, "route-hint", fmt.Sprintf("instance %s VIP %s", in.Name, v), "check that keepalived runs vipctl on MASTER (vipctl check lists the hooks), or run vipctl route-src add --instance "+in.Name,
					"%s is held here but its local route has the VIP as source: local clients connected to it will hang after a failover (F1)", v)
			}
		}
	}
}

// binaries checks that keepalived will run the hooks: root-owned, and no
// directory above them writable by anyone else (enable_script_security).
func binaries(f Facts, add addFunc) {
	for _, b := range f.Binaries {
		for _, p := range b.Chain {
			switch {
			case !p.Exists:
				add(Error, "binary", b.Path, "install it (make install) or fix the path in keepalived.conf", "%s does not exist", p.Path)
			case p.UID != 0:
				add(Error, "binary", b.Path, "chown root:root "+p.Path, "%s is owned by uid %d: keepalived with enable_script_security refuses to run it as root", p.Path, p.UID)
			case p.Mode&0o002 != 0 && !(p.IsDir && p.Mode&0o1000 != 0):
				add(Error, "binary", b.Path, "chmod o-w "+p.Path, "%s is writable by everyone: anyone could replace what keepalived runs as root", p.Path)
			case p.Mode&0o020 != 0 && !(p.IsDir && p.Mode&0o1000 != 0):
				add(Warning, "binary", b.Path, "chmod g-w "+p.Path, "%s is group-writable: keepalived with enable_script_security refuses to run it as root", p.Path)
			default:
				continue
			}
			break
		}
	}
}

func stateDir(cfg *config.Config, f Facts, add addFunc) {
	p := f.StateDir
	switch {
	case !p.Exists:
		add(Warning, "state-dir", cfg.StateDir, "install contrib/systemd/vipkit.tmpfiles.conf into /etc/tmpfiles.d (systemd-tmpfiles --create), so the directory exists at boot before keepalived starts",
			"%s does not exist: keepalived drops a track_file whose directory is missing at start (a fail-open)", cfg.StateDir)
	case p.UID != 0 || p.Mode&0o022 != 0:
		add(Error, "state-dir", cfg.StateDir, "chown root:root "+cfg.StateDir+" && chmod 0700 "+cfg.StateDir,
			"%s (uid %d, mode %04o) is writable by others: whoever can write the track files can take keepalived out of FAULT", cfg.StateDir, p.UID, p.Mode)
	}
}

// Programs are the binaries keepalived must be able to run for cfg:
// vipctl always, fenced only when an instance is guarded by it (a setup
// without fenced is not told fenced is missing).
func Programs(cfg *config.Config, vipctlPath, fencedPath string) []string {
	var out []string
	if vipctlPath != "" {
		out = append(out, vipctlPath)
	}
	if fencedPath != "" && UsesFenced(cfg) {
		out = append(out, fencedPath)
	}
	return out
}

// fenceFile recognises fenced's track file of an instance: the path
// vipkit.toml gives it, or any path ending in ".fence" (a peer's state
// directory may differ).
func fenceFile(cfg *config.Config) func(instance, path string) bool {
	return func(instance, path string) bool {
		if in, ok := cfg.InstanceByName(instance); ok && in.TrackFile != "" && path == in.TrackFile {
			return true
		}
		return strings.HasSuffix(path, ".fence")
	}
}

// UsesFenced reports whether fenced guards any instance of cfg.
func UsesFenced(cfg *config.Config) bool {
	for _, in := range cfg.Instances {
		if in.TrackFile != "" {
			return true
		}
	}
	return false
}

func expect(cfg *config.Config, f Facts) Expect {
	return Expectations(cfg, f.VipctlPath, f.FencedPath, f.KeepalivedVer, f.UserExists)
}

// Expectations says what keepalived.conf must look like for cfg: what
// vipctl check and fenced check hand to Inspect.
func Expectations(cfg *config.Config, vipctlPath, fencedPath, keepalivedVersion string, userExists func(string) bool) Expect {
	e := Expect{VipctlPath: vipctlPath, FencedPath: fencedPath, KeepalivedVersion: keepalivedVersion, ScriptUserExists: userExists}
	for _, in := range cfg.Instances {
		ei := ExpectedInstance{Name: in.Name, Group: in.Group, Own: in.Own, TrackFile: in.TrackFile, MaintenanceFile: in.MaintenanceFile, Refresh: in.Announce.RefreshFor > 0,
			Witness: in.Witness, Priority: in.Priority, Nopreempt: in.Nopreempt}
		if cl, ok := cfg.ClusterByName(in.Cluster); ok {
			ei.Margin = cl.Margin
		}
		for _, v := range in.VIPs {
			ei.VIPs = append(ei.VIPs, v.String())
		}
		e.Instances = append(e.Instances, ei)
	}
	return e
}
