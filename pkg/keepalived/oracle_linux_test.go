package keepalived_test

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/kaoracle"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// confDir is where the oracle's root holds the configuration under test.
const confDir = "/etc/keepalived"

// corpusInterfaces are the interface names the corpus uses (SOURCES.md):
// each gets a stand-in so that no instance is dropped for a missing link.
var corpusInterfaces = []string{"bond0", "enp0s8", "enp1s0", "ens160", "ens192", "ens3", "ens7f0", "ens7f1.57", "eth0", "eth0.1", "eth1", "eth10", "eth2", "eth3", "eth4", "eth6", "lacp0", "lacp1", "lacp1.901", "lacp1.902", "utun"}

// TestOracleCorpus runs keepalived itself on every file of the shared
// corpus and compares what it loaded with vipkit's reading: every
// difference must be one the reader reports (a Problem naming the block).
func TestOracleCorpus(t *testing.T) {
	requireOracle(t)
	dir, files, err := repo.KeepalivedCorpus()
	if err != nil {
		netnstest.Missing(t, "%v", err)
	}
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			agree(t, map[string][]byte{filepath.Join(confDir, "keepalived.conf"): data})
		})
	}
}

func requireOracle(t *testing.T) {
	t.Helper()
	kaoracle.Require(t)
}

// agree runs both readers on files (the first key in sorted order named
// keepalived.conf is the main file) and fails on any unreported difference.
func agree(t *testing.T, files map[string][]byte) {
	t.Helper()
	main := filepath.Join(confDir, "keepalived.conf")
	c, err := keepalived.ParseConf(main, files[main], func(pattern string) ([]keepalived.File, error) {
		var out []keepalived.File
		var names []string
		for name := range files {
			if ok, _ := filepath.Match(pattern, name); ok {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			out = append(out, keepalived.File{Name: n, Data: files[n]})
		}
		return out, nil
	}, keepalived.Options{ConfigID: "vipkit-oracle", Release: oracleRelease(t)})
	if err != nil {
		t.Fatalf("vipkit cannot read it: %v", err)
	}
	in := kaoracle.Input{Main: main, Files: files, Interfaces: slices.Clone(corpusInterfaces), ConfigID: "vipkit-oracle"}
	for _, x := range c.Instances {
		if x.Interface != "" && !slices.Contains(in.Interfaces, x.Interface) && len(x.Interface) < 16 && !strings.ContainsAny(x.Interface, "/ \t") {
			in.Interfaces = append(in.Interfaces, x.Interface)
		}
	}
	for _, cmd := range commands(c) {
		if len(cmd.Argv) > 0 && filepath.IsAbs(cmd.Argv[0]) {
			in.Stubs = append(in.Stubs, filepath.Clean(cmd.Argv[0]))
		}
	}
	for _, p := range []string{c.Global.VRRPNotifyFIFO.Path, c.Global.NotifyFIFO.Path} {
		if filepath.IsAbs(p) {
			in.Dirs = append(in.Dirs, filepath.Dir(filepath.Clean(p)))
		}
	}
	for _, tf := range c.TrackFiles {
		if filepath.IsAbs(tf.File) {
			in.Dirs = append(in.Dirs, filepath.Dir(filepath.Clean(tf.File)))
		}
	}
	l, err := kaoracle.Run(t, in)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(l.Log, "\n"))
	}
	if l.Unavailable != "" {
		// Not a skip: vipkit's reading is still checked for panics and the
		// count of such files is in the report; the oracle has no answer.
		t.Logf("oracle cannot load it here: %s", l.Unavailable)
		return
	}
	// vipkit's gravest claim, that keepalived refuses the file, must be
	// keepalived's own verdict, both ways.
	refused := slices.ContainsFunc(l.Log, func(s string) bool { return strings.Contains(s, "permanent error CONFIG") })
	if f := c.Fatal(); (f != nil) != refused {
		t.Errorf("vipkit says keepalived refuses the file: %v (%+v); keepalived refused it: %v\n%s", f != nil, f, refused, strings.Join(interesting(l.Log), "\n"))
	}
	want, got := vipkitView(c, in.Stubs), oracleView(l)
	reported := map[string]bool{}
	for _, p := range c.Problems {
		if p.Subject != "" {
			reported[p.Subject] = true
		}
	}
	var bad []string
	for _, d := range diff(want, got) {
		subject, _, _ := strings.Cut(strings.TrimLeft(d, "+- "), ":")
		if !reported[subject] {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		var probs []string
		for _, p := range c.Problems {
			probs = append(probs, fmt.Sprintf("%s [%s] %s", p.Pos, p.Subject, p.Msg))
		}
		t.Errorf("vipkit (-) and keepalived (+) disagree, unreported:\n%s\nvipkit's problems:\n%s\nkeepalived said:\n%s",
			strings.Join(bad, "\n"), strings.Join(probs, "\n"), strings.Join(interesting(l.Log), "\n"))
	}
}

// oracleRelease is the release of the keepalived the reader is compared
// with: the reader models each release's parser.
func oracleRelease(t *testing.T) keepalived.Version {
	t.Helper()
	v, err := keepalived.ParseVersion(kaoracle.VersionLine())
	if err != nil {
		t.Fatalf("oracle's release: %v", err)
	}
	return v
}

// interesting is keepalived's log without the dump, for failure messages.
func interesting(log []string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, "------<") {
			break
		}
		out = append(out, l)
	}
	return out
}

func diff(want, got []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, "- "+w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, "+ "+g)
		}
	}
	return out
}

func commands(c *keepalived.Conf) []*keepalived.Command {
	var out []*keepalived.Command
	out = append(out, c.Global.VRRPNotifyFIFO.Script, c.Global.NotifyFIFO.Script)
	for _, in := range c.Instances {
		out = append(out, in.Hooks.All()...)
	}
	for _, g := range c.SyncGroups {
		out = append(out, g.Hooks.All()...)
	}
	for _, s := range c.Scripts {
		out = append(out, s.Command)
	}
	return slices.DeleteFunc(out, func(c *keepalived.Command) bool { return c == nil })
}

var hookKinds = map[string]string{"notify": "notify", "notify_master": "master", "notify_backup": "backup", "notify_fault": "fault", "notify_stop": "stop", "notify_deleted": "deleted", "notify_master_rx_lower_pri": "master_rx_lower_pri"}

func oracleView(l *kaoracle.Loaded) []string {
	var out []string
	add := func(subject, format string, args ...any) {
		out = append(out, subject+": "+fmt.Sprintf(format, args...))
	}
	for label, f := range l.FIFOs {
		kw := map[string]string{"VRRP notify fifo": "vrrp_notify_fifo", "Global notify fifo": "notify_fifo"}[label]
		if kw == "" {
			continue
		}
		add("global_defs", "%s %s", kw, f.Path)
		if f.Script != nil {
			// keepalived appends the FIFO's path to the reader's argv.
			add("global_defs", "%s_script %s", kw, cmdString(f.Script.Argv[:len(f.Script.Argv)-1], f.Script.UIDGID))
		}
	}
	for _, in := range l.Instances {
		s := "vrrp_instance " + in.Name
		add(s, "interface %s", in.Interface)
		add(s, "virtual_router_id %d", in.VRID)
		add(s, "priority %d", in.Priority)
		advert := in.Advert
		if ms, ok := strings.CutSuffix(advert, " milli-sec"); ok {
			if n, err := strconv.Atoi(ms); err == nil && n%1000 == 0 {
				advert = fmt.Sprintf("%d sec", n/1000)
			}
		}
		add(s, "advert %s", advert)
		auth := in.AuthType
		if auth == "" {
			auth = "none"
		}
		add(s, "auth %s", auth)
		if in.AuthPass != "" {
			add(s, "password %s", in.AuthPass)
		}
		for _, p := range in.UnicastPeers {
			add(s, "unicast peer %s", p)
		}
		if in.SyncGroup != "" {
			add(s, "sync group %s", in.SyncGroup)
		}
		for _, v := range in.VIPs {
			add(s, "vip %s", v)
		}
		for _, v := range in.ExcludedVIPs {
			add(s, "excluded vip %s", v)
		}
		for kind, h := range in.Hooks {
			add(s, "%s %s", kind, cmdString(h.Argv, h.UIDGID))
		}
		for _, r := range in.TrackScripts {
			name, _, _ := strings.Cut(r, " ")
			add(s, "track_script %s", name)
		}
		for _, r := range in.TrackFiles {
			name, w, _ := strings.Cut(r, ", weight ")
			add(s, "track_file %s weight %s", name, w)
		}
	}
	for _, g := range l.SyncGroups {
		s := "vrrp_sync_group " + g.Name
		for _, m := range g.Members {
			add(s, "member %s", m)
		}
		for kind, h := range g.Hooks {
			add(s, "%s %s", kind, cmdString(h.Argv, h.UIDGID))
		}
	}
	for _, sc := range l.Scripts {
		add("vrrp_script "+sc.Name, "%s", cmdString(sc.Command.Argv, sc.Command.UIDGID))
	}
	for _, tf := range l.TrackFiles {
		add("track_file "+tf.Name, "file %s", tf.File)
	}
	slices.Sort(out)
	return out
}

func cmdString(argv []string, uidgid string) string {
	return fmt.Sprintf("%q as %s", argv, uidgid)
}

// vipkitView is vipkit's reading, as keepalived would load it on the
// oracle's host: scripts resolved to the file they run (and dropped when
// there is none, or no such user), defaults filled in.
func vipkitView(c *keepalived.Conf, stubs []string) []string {
	if c.Fatal() != nil {
		return nil // keepalived runs nothing of it
	}
	var out []string
	add := func(subject, format string, args ...any) {
		out = append(out, subject+": "+fmt.Sprintf(format, args...))
	}
	cmd := func(x *keepalived.Command) (string, bool) {
		if x == nil || x.Err != "" || len(x.Argv) == 0 {
			return "", false
		}
		argv := slices.Clone(x.Argv)
		path, ok := resolve(argv[0], stubs)
		if !ok {
			return "", false
		}
		argv[0] = path
		ug, ok := uidgid(c, x)
		if !ok {
			return "", false
		}
		return cmdString(argv, ug), true
	}
	for kw, f := range map[string]keepalived.FIFO{"vrrp_notify_fifo": c.Global.VRRPNotifyFIFO, "notify_fifo": c.Global.NotifyFIFO} {
		if f.Path == "" {
			continue
		}
		add("global_defs", "%s %s", kw, f.Path)
		if s, ok := cmd(f.Script); ok {
			add("global_defs", "%s_script %s", kw, s)
		}
	}
	for _, in := range c.Instances {
		s := "vrrp_instance " + in.Name
		add(s, "interface %s", in.Interface)
		add(s, "virtual_router_id %d", in.VirtualRouterID)
		prio := in.Priority
		if prio == 0 {
			prio = 100
		}
		add(s, "priority %d", prio)
		switch a := in.AdvertInt; {
		case a == 0:
			add(s, "advert 1 sec")
		case a == float64(int(a)):
			add(s, "advert %d sec", int(a))
		default:
			add(s, "advert %s", "(fractional: not compared)")
		}
		add(s, "auth %s", map[string]string{"": "none", "PASS": "SIMPLE_PASSWORD", "AH": "IPSEC_AH"}[in.AuthType])
		if in.AuthType == "PASS" && in.AuthPass != "" {
			add(s, "password %s", in.AuthPass)
		}
		for _, p := range in.UnicastPeers {
			add(s, "unicast peer %s", p)
		}
		if in.SyncGroup != "" {
			add(s, "sync group %s", in.SyncGroup)
		}
		for _, v := range in.VIPs {
			add(s, "vip %s", dumpAddr(v))
		}
		for _, v := range in.ExcludedVIPs {
			add(s, "excluded vip %s", dumpAddr(v))
		}
		for _, h := range in.Hooks.All() {
			if x, ok := cmd(h); ok {
				add(s, "%s %s", hookKinds[h.Keyword], x)
			}
		}
		for _, r := range in.TrackScripts {
			if sc := c.Script(r.Name); sc != nil {
				if _, ok := cmd(sc.Command); ok {
					add(s, "track_script %s", r.Name)
				}
			}
		}
		for _, r := range in.TrackFiles {
			if tf := c.TrackFile(r.Name); tf != nil && trackFilePath(tf.File) != "" {
				w := tf.Weight
				if r.WeightSet {
					w = r.Weight
				}
				add(s, "track_file %s weight %d", r.Name, w)
			}
		}
	}
	for _, g := range c.SyncGroups {
		s := "vrrp_sync_group " + g.Name
		for _, m := range g.Members {
			add(s, "member %s", m)
		}
		for _, h := range g.Hooks.All() {
			if x, ok := cmd(h); ok {
				add(s, "%s %s", hookKinds[h.Keyword], x)
			}
		}
	}
	for _, sc := range c.Scripts {
		if x, ok := cmd(sc.Command); ok && !sc.Unused {
			add("vrrp_script "+sc.Name, "%s", x)
		}
	}
	for _, tf := range c.TrackFiles {
		// The oracle's root has the directory of every absolute path; a
		// relative or quoted one has none, and keepalived drops the file.
		if p := trackFilePath(tf.File); p != "" && !tf.Unused {
			add("track_file "+tf.Name, "file %s", p)
		}
	}
	slices.Sort(out)
	return out
}

// trackFilePath is the file keepalived watches in the oracle's root, ""
// when it drops the track file: keepalived makes a relative path absolute
// against its working directory (/), and the root has the directory of
// every absolute path vipkit read and no other.
func trackFilePath(p string) string {
	switch {
	case p == "":
		return ""
	case filepath.IsAbs(p):
		return p
	case !strings.Contains(p, "/"):
		return "//" + p
	}
	return ""
}

// dumpAddr is an address as keepalived prints it: the length only when
// it is not the full one.
func dumpAddr(a keepalived.Address) string {
	if !a.Prefix.IsValid() {
		return a.Raw
	}
	if a.Prefix.Bits() == a.Prefix.Addr().BitLen() {
		return a.Prefix.Addr().String()
	}
	return a.Prefix.String()
}

// resolve finds the file keepalived execs for argv[0] in the oracle's
// root: a stub, or a program of the host's /usr; a bare name is searched
// in keepalived's PATH.
func resolve(arg0 string, stubs []string) (string, bool) {
	if !strings.Contains(arg0, "/") {
		for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if p, ok := resolve(filepath.Join(d, arg0), stubs); ok {
				return p, true
			}
		}
		return "", false
	}
	if !filepath.IsAbs(arg0) {
		return arg0, true // keepalived keeps a relative path as written
	}
	p := filepath.Clean(arg0)
	for _, host := range []string{"/usr/bin/", "/usr/sbin/", "/usr/lib/", "/usr/libexec/", "/bin/", "/sbin/", "/lib/"} {
		if strings.HasPrefix(p, host) {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return "", false
			}
			if fi, err := os.Stat(real); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return "", false
			}
			return real, true
		}
	}
	return p, slices.Contains(stubs, p)
}

// uidgid is the "uid:gid" keepalived runs a script as, false when it
// drops the script for want of the user.
func uidgid(c *keepalived.Conf, x *keepalived.Command) (string, bool) {
	name, group := x.User, x.Group
	if name == "" {
		name, group = c.Global.ScriptUser, c.Global.ScriptGroup
	}
	if name == "" {
		if _, err := user.Lookup("keepalived_script"); err == nil {
			name = "keepalived_script"
		} else if c.Global.EnableScriptSecurity {
			return "", false
		} else {
			name = "root"
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "", false
	}
	gid := u.Gid
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return "", false
		}
		gid = g.Gid
	}
	return u.Uid + ":" + gid, true
}
