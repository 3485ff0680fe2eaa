package check

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/keepalived"
)

// Issue is one finding about keepalived.conf.
type Issue struct {
	Severity Severity
	// Subject is what the finding is about, e.g. "vrrp_instance VI_1".
	Subject string
	// Line is "file:line" of the offending or closest statement, or "".
	Line    string
	Message string
	// Fix is one sentence an operator can act on.
	Fix string
}

// Expect is what vipkit's own configuration says keepalived.conf must match.
type Expect struct {
	// VipctlPath is the absolute path hooks must run.
	VipctlPath string
	// FencedPath is the absolute path of fenced, for the liveness check.
	FencedPath string
	// KeepalivedVersion is e.g. "2.2.7"; "" when unknown.
	KeepalivedVersion string
	// ScriptUserExists reports whether a user exists; nil skips the checks
	// that depend on it.
	ScriptUserExists func(name string) bool
	Instances        []ExpectedInstance
}

// ExpectedInstance is one instance of vipkit.toml.
type ExpectedInstance struct {
	Name, Group string
	VIPs        []string
	// Own is true when vipctl adds and deletes the VIPs.
	Own bool
	// TrackFile is fenced's track file, MaintenanceFile the handover one;
	// "" when not used.
	TrackFile, MaintenanceFile string
	// Refresh is true when vipkit keeps announcing after a takeover.
	Refresh bool
	// Witness: etcd's owner key decides (docs/witness.md); Priority and
	// Nopreempt are this node's claim, which keepalived.conf must match.
	Witness   bool
	Priority  int
	Nopreempt bool
	// Margin is the instance's cluster margin: a hung fenced must be seen
	// by keepalived's liveness check within it (docs/witness.md).
	Margin time.Duration
}

// Inspect checks keepalived.conf against what vipkit expects.
func Inspect(c *keepalived.Conf, want Expect) []Issue {
	x := &inspector{c: c, want: want}
	x.problems()
	x.scriptSecurity()
	x.commands()
	x.routes()
	for _, tp := range c.TrackProcesses {
		if tp.Keyword != "vrrp_track_process" {
			x.add(Error, "track_process "+tp.Name, tp.Pos,
				"keepalived has no top-level track_process block: it ignores this one and every reference to it",
				"rename the block to `vrrp_track_process %s`", tp.Name)
		}
	}
	for _, ei := range want.Instances {
		x.instance(ei)
	}
	return x.issues
}

type inspector struct {
	c      *keepalived.Conf
	want   Expect
	issues []Issue
}

func (x *inspector) add(sev Severity, subject string, pos keepalived.Pos, msg, fix string, args ...any) {
	x.issues = append(x.issues, Issue{Severity: sev, Subject: subject, Line: pos.String(), Message: msg, Fix: fmt.Sprintf(fix, args...)})
}

// defaultUser is the user keepalived runs a script as when it names none;
// "" when it would drop the script, "?" when that cannot be known.
func (x *inspector) defaultUser() string {
	g := x.c.Global
	switch {
	case g.ScriptUser != "":
		return g.ScriptUser
	case x.want.ScriptUserExists == nil:
		return "?"
	case x.want.ScriptUserExists("keepalived_script"):
		return "keepalived_script"
	case g.EnableScriptSecurity:
		return ""
	}
	return "root"
}

func (x *inspector) scriptSecurity() {
	g := x.c.Global
	if g.EnableScriptSecurityArg != "" {
		x.add(Info, "global_defs", g.EnableScriptSecurityPos,
			fmt.Sprintf("enable_script_security takes no value: keepalived ignores %q and enables script security (scripts run only if root owns them and every directory above them, and nobody else can write them); vipctl check judges the file with it enabled, as keepalived runs it", g.EnableScriptSecurityArg),
			"write `enable_script_security` alone, or remove the line to disable it")
	}
	if !g.EnableScriptSecurity {
		x.add(Warning, "global_defs", g.Pos,
			"enable_script_security is not set: keepalived runs hooks as root even when a non-root user could replace them",
			"add `enable_script_security` to global_defs and keep vipctl root-owned and not writable by others")
	}
	exists := x.want.ScriptUserExists
	if exists == nil {
		return
	}
	switch {
	case g.ScriptUser != "" && !exists(g.ScriptUser):
		x.add(Error, "global_defs", g.Pos,
			fmt.Sprintf("script_user %q does not exist: keepalived ignores every script that names no user of its own", g.ScriptUser),
			"set `script_user root` in global_defs")
	case g.ScriptUser == "" && g.EnableScriptSecurity && !exists("keepalived_script"):
		x.add(Error, "global_defs", g.Pos,
			"script_user is not set and user keepalived_script does not exist: with enable_script_security keepalived silently drops every hook",
			"add `script_user root` to global_defs")
	}
}

// owned is a command with the subject that configures it.
type owned struct {
	subject string
	cmd     *keepalived.Command
}

func (x *inspector) allCommands() []owned {
	var out []owned
	add := func(subject string, cmds ...*keepalived.Command) {
		for _, c := range cmds {
			if c != nil {
				out = append(out, owned{subject, c})
			}
		}
	}
	add("global_defs", x.c.Global.VRRPNotifyFIFO.Script, x.c.Global.NotifyFIFO.Script)
	for _, in := range x.c.Instances {
		add("vrrp_instance "+in.Name, in.Hooks.All()...)
	}
	for _, g := range x.c.SyncGroups {
		add("vrrp_sync_group "+g.Name, g.Hooks.All()...)
	}
	for _, sc := range x.c.Scripts {
		add("vrrp_script "+sc.Name, sc.Command)
	}
	return out
}

// commands checks every script keepalived would run for vipkit's binaries:
// that keepalived will run it at all, as root, from the installed path.
func (x *inspector) commands() {
	vipctl, fenced := x.want.VipctlPath, x.want.FencedPath
	relied := x.reliedOn()
	for _, o := range x.allCommands() {
		c := o.cmd
		if len(c.Argv) == 0 && c.Err == "" {
			continue // a bare notify_deleted
		}
		bin := ""
		if f := strings.Fields(c.Script); len(f) > 0 {
			bin = f[0]
		}
		if len(c.Argv) > 0 {
			bin = c.Argv[0]
		}
		ours := bin != "" && (bin == vipctl || bin == fenced || sameBase(bin, vipctl) || sameBase(bin, fenced))
		switch {
		case c.Err != "" && ours:
			x.add(Error, o.subject, c.Pos, fmt.Sprintf("keepalived will not run this %s: %s", c.Keyword, c.Err),
				"write the command as one double-quoted string, with single quotes around any argument that contains spaces")
			continue
		case c.Err != "" && !relied[o.subject] && (strings.HasPrefix(o.subject, "vrrp_instance ") || strings.HasPrefix(o.subject, "vrrp_sync_group ")):
			continue // a script of an instance vipkit does not manage, not calling vipkit
		case c.Err != "":
			x.add(Warning, o.subject, c.Pos, fmt.Sprintf("keepalived will not run this %s: %s", c.Keyword, c.Err),
				"write the command as one double-quoted string, with single quotes around any argument that contains spaces")
			continue
		case !ours:
			continue
		case sameBase(bin, vipctl) && bin != vipctl:
			x.add(Error, o.subject, c.Pos, fmt.Sprintf("%s runs %s, but vipctl is installed as %s", c.Keyword, bin, vipctl),
				"change the command to start with %s", vipctl)
		case sameBase(bin, fenced) && bin != fenced:
			x.add(Error, o.subject, c.Pos, fmt.Sprintf("%s runs %s, but fenced is installed as %s", c.Keyword, bin, fenced),
				"change the command to start with %s", fenced)
		}
		if c.User != "" && x.want.ScriptUserExists != nil && !x.want.ScriptUserExists(c.User) {
			x.add(Error, o.subject, c.Pos,
				fmt.Sprintf("keepalived reads %q after the command as the user to run it as, and there is no such user: it ignores this %s", c.User, c.Keyword),
				"quote the whole command, arguments included: %s \"%s ...\"", c.Keyword, bin)
			continue
		}
		user := c.User
		if user == "" {
			user = x.defaultUser()
			if x.want.ScriptUserExists != nil && user != "" && !x.want.ScriptUserExists(user) {
				continue // scriptSecurity reported the missing script_user
			}
		}
		if bin == vipctl && user != "root" && user != "" && user != "?" {
			fix := "set `script_user root` in global_defs"
			if c.User != "" {
				fix = "remove the user after the command, or make it root"
			}
			x.add(Error, o.subject, c.Pos,
				fmt.Sprintf("%s runs vipctl as user %q: vipctl needs root to change addresses and routes and to send raw packets", c.Keyword, user), "%s", fix)
		}
	}
}

func (x *inspector) manages(name string) bool {
	for _, ei := range x.want.Instances {
		if ei.Name == name {
			return true
		}
	}
	return false
}

func sameBase(a, b string) bool {
	return b != "" && a != "" && filepath.Base(a) == filepath.Base(b)
}

func (x *inspector) routes() {
	less, known := versionLess(x.want.KeepalivedVersion, "2.3.2")
	if known && !less {
		return
	}
	for _, in := range x.c.Instances {
		if !x.manages(in.Name) {
			continue // an instance vipkit does not manage: its routes are not vipkit's concern
		}
		for _, r := range in.Routes {
			if r.Type == "" || r.Prepend {
				continue
			}
			msg := fmt.Sprintf("virtual_routes entry %q has route type %s but no `prepend`: keepalived before 2.3.2 sends it with NLM_F_EXCL, the kernel answers EEXIST and keepalived silently does not install it (fixed by keepalived commit 9309a4be)",
				strings.Join(r.Words, " "), r.Type)
			sev := Error
			if !known {
				sev = Warning
				msg += "; the keepalived version is unknown"
			}
			x.add(sev, "vrrp_instance "+in.Name, r.Pos, msg, "append `prepend` to the entry")
		}
	}
}

// versionLess compares versions such as "2.2.7", "v2.2.7" or Debian's
// "1:2.2.7-1+b2" by their first three numbers; ok is false without any.
func versionLess(v, than string) (less, ok bool) {
	parse := func(s string) []int {
		if _, after, epoch := strings.Cut(s, ":"); epoch {
			s = after
		}
		f := strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		out := make([]int, 0, 3)
		for _, p := range f[:min(len(f), 3)] {
			n, _ := strconv.Atoi(p)
			out = append(out, n)
		}
		return out
	}
	a := parse(v)
	if len(a) == 0 {
		return false, false
	}
	return slices.Compare(a, parse(than)) < 0, true
}

func (x *inspector) instance(ei ExpectedInstance) {
	subject := "vrrp_instance " + ei.Name
	in := x.c.Instance(ei.Name)
	if in == nil {
		file := ""
		if len(x.c.Files) > 0 {
			file = x.c.Files[0]
		}
		x.add(Error, subject, keepalived.Pos{}, fmt.Sprintf("vipkit.toml names instance %s but keepalived.conf has no vrrp_instance %s", ei.Name, ei.Name),
			"add `vrrp_instance %s { ... }` to %s or correct the instance name in vipkit.toml", ei.Name, file)
		return
	}
	g := x.c.SyncGroup(in.SyncGroup)
	switch {
	case ei.Group != "" && in.SyncGroup != ei.Group:
		where := "in no vrrp_sync_group"
		if in.SyncGroup != "" {
			where = fmt.Sprintf("in vrrp_sync_group %s", in.SyncGroup)
		}
		x.add(Error, subject, in.Pos, fmt.Sprintf("vipkit.toml puts %s in sync group %s, but keepalived.conf lists it %s", ei.Name, ei.Group, where),
			"list %s in `vrrp_sync_group %s { group { %s } }`, or correct the group in vipkit.toml", ei.Name, ei.Group, ei.Name)
	case ei.Group == "" && in.SyncGroup != "":
		x.add(Warning, subject, in.Pos, fmt.Sprintf("keepalived.conf lists %s in vrrp_sync_group %s, but vipkit.toml names no group: vipctl ignores the group's events", ei.Name, in.SyncGroup),
			"set group = %q for instance %s in vipkit.toml", in.SyncGroup, ei.Name)
	}
	x.ownership(ei, in)
	x.hooks(ei, in, g)
	if ei.TrackFile != "" {
		x.trackFile(ei, in, g, ei.TrackFile, true)
		x.liveness(ei, in, g)
	}
	if ei.MaintenanceFile != "" {
		x.trackFile(ei, in, g, ei.MaintenanceFile, false)
	}
	if ei.Witness {
		x.witness(ei, in)
		x.witnessLiveness(ei, in, g)
	}
	refresh, pos := x.c.Global.GarpMasterRefresh, x.c.Global.GarpMasterRefreshPos
	if in.GarpMasterRefreshPos.Line != 0 {
		refresh, pos = in.GarpMasterRefresh, in.GarpMasterRefreshPos
	}
	if ei.Refresh && refresh > 0 {
		x.add(Info, subject, pos, fmt.Sprintf("keepalived re-sends GARPs every %ds while MASTER and vipkit's refresher also announces after a takeover: neighbours get both", refresh),
			"remove garp_master_refresh, or set refresh_for = \"0s\" in vipkit.toml to leave refreshing to keepalived")
	}
}

func (x *inspector) ownership(ei ExpectedInstance, in *keepalived.Instance) {
	subject := "vrrp_instance " + ei.Name
	listed := append(slices.Clone(in.VIPs), in.ExcludedVIPs...)
	for _, s := range ei.VIPs {
		p := keepalived.ParsePrefix(s)
		if !p.IsValid() {
			continue
		}
		i := slices.IndexFunc(listed, func(a keepalived.Address) bool { return a.Prefix.Addr() == p.Addr() })
		switch {
		case ei.Own && i >= 0:
			x.add(Error, subject, listed[i].Pos, fmt.Sprintf("%s is in virtual_ipaddress although vipctl owns it (own = true): keepalived and vipctl would both add and delete it", p.Addr()),
				"remove %s from vrrp_instance %s, or set own = false in vipkit.toml", p.Addr(), ei.Name)
		case !ei.Own && i < 0:
			x.add(Error, subject, in.Pos, fmt.Sprintf("%s is not in virtual_ipaddress, but vipkit.toml says keepalived owns it (own = false): nothing would add it", p.Addr()),
				"add %s to virtual_ipaddress (virtual_ipaddress_excluded for a second address family), or set own = true in vipkit.toml", p.Addr())
		}
	}
	if ei.Own && len(in.VIPs) == 0 {
		x.noVIPs(ei, in)
	}
}

// noVIPs checks a vipctl-owned instance without VIPs against the keepalived
// release: before 2.2.8 it must run VRRPv2 (whole-second adverts); from
// 2.2.8 no_virtual_ipaddress lets it run VRRPv3 with sub-second adverts,
// which makes its takeover as quick as a keepalived-owned one.
func (x *inspector) noVIPs(ei ExpectedInstance, in *keepalived.Instance) {
	subject := "vrrp_instance " + ei.Name
	version := in.Version
	if version == 0 {
		version = x.c.Global.VRRPVersion
	}
	strictMode := in.StrictMode || x.c.Global.VRRPStrict
	strict := version == 3 || strictMode
	ka, err := keepalived.ParseVersion(x.want.KeepalivedVersion)
	known := err == nil
	switch {
	case in.NoVIPs && known && ka.Less(keepalived.NoVIPv3):
		sev, what := Warning, "ignores it"
		if strict {
			sev, what = Error, "ignores it and, under VRRPv3 or strict mode, rejects the instance without VIPs, so it would not run this instance at all"
		}
		x.add(sev, subject, in.Pos, fmt.Sprintf("keepalived %s does not know no_virtual_ipaddress (keepalived 2.2.8 and later): it %s", ka, what),
			"remove no_virtual_ipaddress, version 3 / vrrp_version 3 and strict_mode / vrrp_strict for this instance (VRRPv2), or upgrade keepalived to 2.2.8 or later")
	case in.NoVIPs && strictMode:
		x.add(Error, subject, in.Pos, "keepalived clears no_virtual_ipaddress under strict mode and then rejects the vrrp_instance without VIPs, so it would not run this instance at all",
			"remove strict_mode / vrrp_strict for this instance")
	case in.NoVIPs:
	case strict && known && ka.AtLeast(keepalived.NoVIPv3):
		x.add(Error, subject, in.Pos, "keepalived rejects a vrrp_instance without VIPs under VRRPv3 or strict mode unless it says no_virtual_ipaddress, so it would not run this instance at all",
			"add `no_virtual_ipaddress` to vrrp_instance %s", ei.Name)
	case strict:
		x.add(Error, subject, in.Pos, "keepalived rejects a vrrp_instance without VIPs under VRRPv3 or strict mode, so it would not run this instance at all",
			"remove version 3 / vrrp_version 3 and strict_mode / vrrp_strict for this instance")
	case known && ka.AtLeast(keepalived.NoVIPv3):
		x.add(Info, subject, in.Pos, fmt.Sprintf("keepalived %s runs an instance without VIPs under VRRPv3 when it says no_virtual_ipaddress: sub-second adverts make vipctl's takeover as quick as keepalived's, where VRRPv2 adverts are whole seconds", ka),
			"add `no_virtual_ipaddress`, `version 3` and `advert_int 0.1` to vrrp_instance %s (as contrib/keepalived/vipctl-owned-v3*.conf)", ei.Name)
	}
}

func (x *inspector) isVipctl(c *keepalived.Command, sub string) bool {
	return c != nil && c.Err == "" && len(c.Argv) > 0 && c.Argv[0] == x.want.VipctlPath && slices.Contains(c.Argv[1:], sub)
}

// hooks checks that vipctl hears of every transition of the instance: by
// the generic notify, by the four per-state hooks, or by the notify FIFO.
func (x *inspector) hooks(ei ExpectedInstance, in *keepalived.Instance, g *keepalived.SyncGroup) {
	subject := "vrrp_instance " + ei.Name
	pick := func(get func(h *keepalived.Hooks) *keepalived.Command) *keepalived.Command {
		if c := get(&in.Hooks); c != nil || g == nil {
			return c
		}
		return get(&g.Hooks)
	}
	generic := pick(func(h *keepalived.Hooks) *keepalived.Command { return h.Notify })
	perState := []*keepalived.Command{
		pick(func(h *keepalived.Hooks) *keepalived.Command { return h.Master }),
		pick(func(h *keepalived.Hooks) *keepalived.Command { return h.Backup }),
		pick(func(h *keepalived.Hooks) *keepalived.Command { return h.Fault }),
		pick(func(h *keepalived.Hooks) *keepalived.Command { return h.Stop }),
	}
	glob := x.c.Global
	fifo := (glob.VRRPNotifyFIFO.Path != "" && x.isVipctl(glob.VRRPNotifyFIFO.Script, "fifo")) ||
		(glob.NotifyFIFO.Path != "" && x.isVipctl(glob.NotifyFIFO.Script, "fifo"))
	states := x.isVipctl(perState[0], "up")
	for _, c := range perState[1:] {
		states = states && x.isVipctl(c, "down")
	}
	var used []string
	for name, ok := range map[string]bool{"notify": x.isVipctl(generic, "notify"), "notify_master/backup/fault/stop": states, "the notify FIFO": fifo} {
		if ok {
			used = append(used, name)
		}
	}
	slices.Sort(used)
	switch {
	case len(used) == 0:
		fix := fmt.Sprintf("add `notify \"%s notify\"` to vrrp_instance %s (or notify_master \"%s up ...\" and notify_backup, notify_fault, notify_stop \"%s down ...\")",
			x.want.VipctlPath, ei.Name, x.want.VipctlPath, x.want.VipctlPath)
		if generic != nil {
			// keepalived runs only the first notify of a block: a second
			// line would be ignored, so the fix is to change the first.
			fix = fmt.Sprintf("change the notify line at %s to `notify \"%s notify\"` (keepalived runs only the first notify line of a block and ignores any other; chain your own script from a wrapper if you still need it)",
				generic.Pos, x.want.VipctlPath)
		}
		x.add(Error, subject, in.Pos, "vipctl is not told of every transition: "+x.hookGaps(generic, perState), "%s", fix)
	case len(used) > 1 && !(len(used) == 2 && fifo):
		// The notify FIFO's reader beside one kind of hook is the fast
		// vipctl-owned form (contrib vipctl-owned-v3-fenced*.conf): the
		// running reader acts first, the hooks cover a reader that exited
		// (keepalived does not restart it), tickets order the two (I6).
		// Two kinds of hook only start two processes per transition.
		x.add(Warning, subject, in.Pos, fmt.Sprintf("vipctl is told of each transition more than once (%s): two hook processes per transition, for nothing", strings.Join(used, ", ")),
			"keep one kind of hook: the generic notify or the per-state hooks (beside the notify FIFO if you use it)")
	}
	x.splitBrainHeal(ei, in, pick(func(h *keepalived.Hooks) *keepalived.Command { return h.MasterRxLowerPri }), fifo)
	// A sync group's hooks serve several instances, so only the instance's
	// own hooks must name exactly its VIPs.
	for _, c := range in.Hooks.All() {
		x.flagsAlone(ei, c)
	}
}

// splitBrainHeal checks that a healing split brain ends with the survivor
// re-announcing (DESIGN F3). keepalived's heal is a race: the lower-priority
// master often hears the survivor first and steps down without a word, so
// the survivor never hears a lower priority and never re-announces;
// neighbours keep the loser's MAC (seed 003). vrrp_higher_prio_send_advert
// makes the loser send one more advert first, so the survivor does hear it,
// and then vipctl must be told (notify_master_rx_lower_pri or the FIFO,
// which carries MASTER_RX_LOWER_PRI; the generic notify never does).
func (x *inspector) splitBrainHeal(ei ExpectedInstance, in *keepalived.Instance, rxLowerPri *keepalived.Command, fifo bool) {
	subject := "vrrp_instance " + ei.Name
	on := x.c.Global.HigherPrioSendAdvert
	if in.HigherPrioSendAdvert != nil {
		on = *in.HigherPrioSendAdvert
	}
	if !on {
		x.add(Warning, subject, in.Pos, "a master that hears a higher priority steps down without a word (vrrp_higher_prio_send_advert is off): after a split brain heals the survivor may never re-announce, and neighbours keep the loser's MAC",
			"add `vrrp_higher_prio_send_advert` to global_defs")
	}
	if !fifo && !x.isVipctl(rxLowerPri, "announce") {
		verb, where := "add", "to vrrp_instance "+ei.Name
		if rxLowerPri != nil {
			verb, where = "change the line at "+rxLowerPri.Pos.String()+" to", "(keepalived runs only the first notify_master_rx_lower_pri line)"
		}
		x.add(Warning, subject, in.Pos, "vipctl is not told when this master hears a lower priority (a split brain healing), so it does not re-announce",
			"%s `notify_master_rx_lower_pri \"%s announce --dev %s %s\"` %s", verb, x.want.VipctlPath, orIF(in.Interface), strings.Join(ei.VIPs, " "), where)
	}
}

func orIF(s string) string {
	if s == "" {
		return "IF"
	}
	return s
}

// hookGaps says, hook by hook, why no style is complete.
func (x *inspector) hookGaps(generic *keepalived.Command, perState []*keepalived.Command) string {
	var gaps []string
	if generic != nil && generic.Err != "" {
		gaps = append(gaps, "notify is not run at all")
	} else if generic != nil && !x.isVipctl(generic, "notify") {
		gaps = append(gaps, fmt.Sprintf("notify runs %q, not `%s notify` (keepalived appends INSTANCE NAME STATE PRIORITY)", strings.Join(generic.Argv, " "), x.want.VipctlPath))
	}
	for i, kw := range []string{"notify_master", "notify_backup", "notify_fault", "notify_stop"} {
		sub := "down"
		if i == 0 {
			sub = "up"
		}
		switch c := perState[i]; {
		case c == nil:
			gaps = append(gaps, "no "+kw)
		case c.Err != "":
			gaps = append(gaps, kw+" is not run at all")
		case !x.isVipctl(c, sub):
			gaps = append(gaps, fmt.Sprintf("%s runs %q, not `%s %s`", kw, strings.Join(c.Argv, " "), x.want.VipctlPath, sub))
		}
	}
	if x.c.Global.VRRPNotifyFIFO.Path == "" && x.c.Global.NotifyFIFO.Path == "" {
		gaps = append(gaps, "no vrrp_notify_fifo")
	} else {
		gaps = append(gaps, fmt.Sprintf("the notify FIFO's script is not `%s fifo`", x.want.VipctlPath))
	}
	return strings.Join(gaps, "; ")
}

// flagsAlone checks a hook that names its device and VIPs itself (--dev):
// it must name every VIP and agree with vipkit.toml on who owns them.
func (x *inspector) flagsAlone(ei ExpectedInstance, c *keepalived.Command) {
	if c == nil || len(c.Argv) == 0 || c.Argv[0] != x.want.VipctlPath || !slices.Contains(c.Argv, "--dev") {
		return
	}
	subject := "vrrp_instance " + ei.Name
	for _, s := range ei.VIPs {
		p := keepalived.ParsePrefix(s)
		if p.IsValid() && !slices.ContainsFunc(c.Argv, func(a string) bool { q := keepalived.ParsePrefix(a); return q.IsValid() && q.Addr() == p.Addr() }) {
			x.add(Error, subject, c.Pos, fmt.Sprintf("%s names its VIPs itself (--dev) but not %s", c.Keyword, p.Addr()),
				"add %s to the %s command", p.Addr(), c.Keyword)
		}
	}
	if !slices.Contains(c.Argv, "up") && !slices.Contains(c.Argv, "down") {
		return
	}
	switch own := slices.Contains(c.Argv, "--own"); {
	case ei.Own && !own:
		x.add(Error, subject, c.Pos, fmt.Sprintf("%s runs vipctl without --own, but vipctl owns the VIPs (own = true): it would never add or delete them", c.Keyword),
			"add --own to the %s command", c.Keyword)
	case !ei.Own && own:
		x.add(Error, subject, c.Pos, fmt.Sprintf("%s runs vipctl with --own, but keepalived owns the VIPs (own = false): both would add and delete them", c.Keyword),
			"remove --own from the %s command", c.Keyword)
	}
}

// trackFile checks the block watching fenced's track file (fence) or the
// handover file. Both need weight 0 without reverse, so that 1 means FAULT
// and a missing file means OK, and a reference from the instance or its
// sync group without a weight override.
//
// They differ in init_file. fenced's file must be "init_file 1 overwrite":
// an absent, empty or stale 0 reads as OK, so without it keepalived could
// start out of FAULT before fenced holds a lease. The maintenance file must
// not use overwrite: an operator who drained the node expects it to stay
// drained across a keepalived restart or package upgrade, so "init_file 0
// overwrite" is an error; "init_file 1 overwrite" would instead put the node
// in maintenance at every start until someone writes 0, which is a surprise
// but safe, so a warning. A plain init_file only creates a missing file.
func (x *inspector) trackFile(ei ExpectedInstance, in *keepalived.Instance, g *keepalived.SyncGroup, path string, fence bool) {
	subject := "vrrp_instance " + ei.Name
	role, name, init := "vipctl handover could not hand the VIP over", "maint_"+ei.Name, ""
	if fence {
		role, name, init = "fenced could not put keepalived in FAULT on losing its lease", "fence_"+ei.Name, " init_file 1 overwrite"
	}
	refs := append(slices.Clone(in.TrackFiles), groupRefs(g, func(g *keepalived.SyncGroup) []keepalived.TrackRef { return g.TrackFiles })...)
	var tf *keepalived.TrackFile
	var ref *keepalived.TrackRef
	for _, b := range x.c.TrackFiles {
		if b.File == "" || filepath.Clean(b.File) != filepath.Clean(path) {
			continue
		}
		if i := slices.IndexFunc(refs, func(r keepalived.TrackRef) bool { return r.Name == b.Name }); i >= 0 {
			tf, ref = b, &refs[i]
			break
		}
		if tf == nil {
			tf = b
		}
	}
	if tf == nil {
		// Without fenced's file nothing can fence; without the maintenance
		// file only planned handovers are unavailable.
		sev := Warning
		if fence {
			sev = Error
		}
		x.add(sev, subject, in.Pos, fmt.Sprintf("no track_file block watches %s: %s", path, role),
			"add `track_file %s { file \"%s\" weight 0%s }` and `track_file { %s }` in vrrp_instance %s", name, path, init, name, ei.Name)
		return
	}
	tsub := "track_file " + tf.Name
	if tf.Weight != 0 {
		x.add(Error, tsub, tf.Pos, fmt.Sprintf("weight is %d (1 when unset): a non-zero value in %s would only change the priority, not force FAULT", tf.Weight, path),
			"set `weight 0` in track_file %s", tf.Name)
	}
	if tf.Reverse {
		x.add(Error, tsub, tf.Pos, fmt.Sprintf("weight 0 reverse inverts %s: 0 and a missing file would mean FAULT", path),
			"remove reverse from track_file %s", tf.Name)
	}
	switch {
	case fence && !(tf.InitFile && tf.InitOverwrite && tf.InitValue != 0):
		x.add(Error, tsub, tf.Pos, "init_file 1 overwrite is missing: keepalived must start in FAULT, because an absent, empty or stale 0 file reads as OK before fenced holds a lease",
			"add `init_file 1 overwrite` to track_file %s", tf.Name)
	case !fence && tf.InitOverwrite && tf.InitValue == 0:
		x.add(Error, tsub, tf.Pos, "init_file overwrite resets the maintenance file at every keepalived start: a restart would silently end a handover or maintenance and let this node take the VIP back",
			"drop `overwrite` (a plain init_file only creates a missing file)")
	case !fence && tf.InitOverwrite:
		x.add(Warning, tsub, tf.Pos, "init_file with a non-zero value and overwrite puts the node in maintenance at every keepalived start, until someone writes 0",
			"drop `overwrite` (a plain init_file only creates a missing file)")
	}
	if ref == nil {
		x.add(Error, subject, in.Pos, fmt.Sprintf("track_file %s is not referenced by vrrp_instance %s or its sync group: keepalived ignores it, so %s", tf.Name, ei.Name, role),
			"add `track_file { %s }` to vrrp_instance %s", tf.Name, ei.Name)
		return
	}
	if (ref.WeightSet && ref.Weight != 0) || ref.Reverse {
		var over []string
		if ref.WeightSet {
			over = append(over, fmt.Sprintf("weight %d", ref.Weight))
		}
		if ref.Reverse {
			over = append(over, "reverse")
		}
		x.add(Error, subject, ref.Pos, fmt.Sprintf("the reference to track_file %s overrides its weight 0 (%s): %s would no longer force FAULT", tf.Name, strings.Join(over, " "), path),
			"reference it as plain `%s`", tf.Name)
	}
}

func groupRefs(g *keepalived.SyncGroup, get func(*keepalived.SyncGroup) []keepalived.TrackRef) []keepalived.TrackRef {
	if g == nil {
		return nil
	}
	return get(g)
}

// liveness checks that keepalived leaves MASTER when fenced is gone: a
// fence that nobody writes is a fence that never closes.
func (x *inspector) liveness(ei ExpectedInstance, in *keepalived.Instance, g *keepalived.SyncGroup) {
	procs := append(slices.Clone(in.TrackProcesses), groupRefs(g, func(g *keepalived.SyncGroup) []keepalived.TrackRef { return g.TrackProcesses })...)
	for _, r := range procs {
		tp := x.c.TrackProcess(r.Name)
		if tp == nil || tp.Keyword != "vrrp_track_process" || len(tp.Process) == 0 || !isFencedComm(tp.Process[0], x.want.FencedPath) {
			continue
		}
		if effectiveWeight(r, tp.Weight) == 0 && !r.Reverse && !tp.Reverse {
			return
		}
	}
	scripts := append(slices.Clone(in.TrackScripts), groupRefs(g, func(g *keepalived.SyncGroup) []keepalived.TrackRef { return g.TrackScripts })...)
	for _, r := range scripts {
		sc := x.c.Script(r.Name)
		if sc == nil || sc.Command == nil || sc.Command.Err != "" || len(sc.Command.Argv) == 0 {
			continue
		}
		argv := sc.Command.Argv
		if argv[0] == x.want.FencedPath && slices.Contains(argv, "status") && slices.Contains(argv, "--alive") &&
			effectiveWeight(r, sc.Weight) == 0 && !r.Reverse && !sc.Reverse {
			return
		}
	}
	x.add(Warning, "vrrp_instance "+ei.Name, in.Pos,
		"nothing puts keepalived in FAULT when fenced stops: the track file would keep its last 0 and the node could keep the VIP after losing its lease",
		"add `vrrp_track_process fenced { process fenced weight 0 }` with `track_process { fenced }` in vrrp_instance %s; in a container or network namespace use `vrrp_script fenced_alive { script \"%s status --alive\" interval 1 fall 1 rise 1 weight 0 }` with `track_script { fenced_alive }`",
		ei.Name, x.want.FencedPath)
}

// isFencedComm matches a track_process name against fenced's binary: the
// kernel's process name (comm) is the file name cut to 15 bytes.
func isFencedComm(name, fencedPath string) bool {
	base := "fenced"
	if fencedPath != "" {
		base = filepath.Base(fencedPath)
	}
	if len(base) > 15 {
		base = base[:15]
	}
	return name == base
}

func effectiveWeight(r keepalived.TrackRef, blockWeight int) int {
	if r.WeightSet {
		return r.Weight
	}
	return blockWeight
}

// witnessHandoverWait is the witness's bound on a fast handover
// (witness.DefaultHandoverWait; pkg/check stays free of etcd).
const witnessHandoverWait = 0.1

// witnessPregrantBound is how long a successor keeps its track file OK on
// an owner's offer without the owner key (witness.DefaultPregrantBound).
const witnessPregrantBound = 0.15

// witness checks what a witnessed instance needs from keepalived.conf
// (docs/witness.md, "Timing"): the same priority and preemption as the
// claims follow; on a fast handover (vipctl-owned) a master-down interval
// longer than the owner's wait for its successor, so that the old owner's
// keepalived, MASTER without VIPs meanwhile, cannot be elected again
// before its track file says FAULT; on a pre-grant (keepalived-owned) a
// master-down interval longer than twice the successor's bound, so that a
// successor that stops hearing the owner is in FAULT again before it
// could elect itself.
func (x *inspector) witness(ei ExpectedInstance, in *keepalived.Instance) {
	subject := "vrrp_instance " + ei.Name
	prio := in.Priority
	if prio == 0 {
		prio = 100
	}
	if prio != ei.Priority {
		x.add(Error, subject, in.Pos, fmt.Sprintf("vipkit.toml gives the witnessed %s priority %d, keepalived.conf %d: claims and preemption would follow another order than VRRP", ei.Name, ei.Priority, prio),
			"set priority = %d for instance %s in vipkit.toml, or change keepalived.conf", prio, ei.Name)
	}
	if in.Nopreempt != ei.Nopreempt {
		x.add(Error, subject, in.Pos, fmt.Sprintf("vipkit.toml says nopreempt = %v for the witnessed %s, keepalived.conf %v", ei.Nopreempt, ei.Name, in.Nopreempt),
			"make nopreempt the same in vipkit.toml and keepalived.conf")
	}
	adv := in.AdvertInt
	if adv == 0 {
		adv = 1
	}
	// keepalived's master-down interval: 3 adverts plus the skew.
	down := 3*adv + adv*float64(256-prio)/256
	if ei.Own && down <= 2*witnessHandoverWait {
		x.add(Error, subject, in.Pos, fmt.Sprintf("master-down interval %.3fs of the witnessed %s is not above twice the witness's handover wait (%.1fs): an old owner could be elected again before it resigns", down, ei.Name, witnessHandoverWait),
			"raise advert_int of %s to at least 0.1", ei.Name)
	}
	if !ei.Own {
		if down <= 2*witnessPregrantBound {
			x.add(Error, subject, in.Pos, fmt.Sprintf("master-down interval %.3fs of the witnessed %s is not above twice the witness's pre-grant bound (%.2fs): a successor out of FAULT on an offer could elect itself before the bound puts it back", down, ei.Name, witnessPregrantBound),
				"raise advert_int of %s to at least 0.1", ei.Name)
		}
		x.add(Info, subject, in.Pos, fmt.Sprintf("the witnessed %s has keepalived-owned VIPs: a planned handover to a node of lower priority is pre-granted (its successor takes over after its skew time, %.3fs); a preemption by a node of higher priority resigns before the key moves, and that node takes over after its master-down interval (%.2fs)", ei.Name, adv*float64(256-prio)/256, down),
			"for preemption as fast as without the witness, let vipctl own the VIPs (own = true)")
	}
}

// witnessLiveness: a hung fenced (alive, not renewing) keeps its track file
// at 0. For a witnessed instance keepalived must see that before the lease
// can expire and another node claim the key: `fenced status --alive` fails
// once the recorded lease deadline passed, and its interval × fall must fit
// in the margin. track_process sees only a dead fenced.
func (x *inspector) witnessLiveness(ei ExpectedInstance, in *keepalived.Instance, g *keepalived.SyncGroup) {
	subject := "vrrp_instance " + ei.Name
	scripts := append(slices.Clone(in.TrackScripts), groupRefs(g, func(g *keepalived.SyncGroup) []keepalived.TrackRef { return g.TrackScripts })...)
	for _, r := range scripts {
		sc := x.c.Script(r.Name)
		if sc == nil || sc.Command == nil || len(sc.Command.Argv) == 0 {
			continue
		}
		argv := sc.Command.Argv
		if argv[0] != x.want.FencedPath || !slices.Contains(argv, "status") || !slices.Contains(argv, "--alive") {
			continue
		}
		interval, fall := sc.Interval, sc.Fall
		if interval <= 0 {
			interval = 1 // keepalived's default
		}
		if fall <= 0 {
			fall = 1
		}
		if d := time.Duration(interval*fall) * time.Second; ei.Margin > 0 && d >= ei.Margin {
			x.add(Error, subject, sc.Pos, fmt.Sprintf("vrrp_script %s notices a hung fenced within interval × fall = %s, not within the margin %s: the witnessed %s's lease could expire, and another node claim it, while this node still holds the VIP", sc.Name, d, ei.Margin, ei.Name),
				"raise the cluster's margin above %s, or lower the script's interval or fall", d)
		}
		return
	}
	x.add(Warning, subject, in.Pos, fmt.Sprintf("the witnessed %s is not tracked by `%s status --alive`: a hung fenced (stopped, not dead) keeps its track file at 0 until systemd's watchdog kills it, which can be after its lease expired and another node claimed the instance", ei.Name, x.want.FencedPath),
		"add `vrrp_script fenced_alive { script \"%s status --alive\" interval 1 fall 1 rise 1 weight 0 }` with `track_script { fenced_alive }` to vrrp_instance %s, and a margin above its interval", x.want.FencedPath, ei.Name)
}
