package keepalived

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Conf is the part of keepalived.conf that matters to vipkit. It is a model
// for checking, not a full keepalived parser: unknown keywords are skipped.
type Conf struct {
	// Files lists every file read, the main one first.
	Files          []string
	Global         Global
	Instances      []*Instance
	SyncGroups     []*SyncGroup
	TrackFiles     []*TrackFile
	TrackProcesses []*TrackProcess
	Scripts        []*Script
	Problems       []Problem

	// v23: read as keepalived 2.3 reads (Reader23).
	v23 bool
}

// Global is what vipkit needs from global_defs.
type Global struct {
	Pos                  Pos
	ScriptUser           string
	ScriptGroup          string
	EnableScriptSecurity bool
	// EnableScriptSecurityArg is what follows the keyword ("0", "off"):
	// keepalived ignores it.
	EnableScriptSecurityArg string
	EnableScriptSecurityPos Pos
	// VRRPNotifyFIFO is vrrp_notify_fifo (VRRP lines only), NotifyFIFO is
	// notify_fifo (VRRP and LVS lines); each with its reader script.
	VRRPNotifyFIFO FIFO
	NotifyFIFO     FIFO
	// GarpMasterRefresh is vrrp_garp_master_refresh in seconds, 0 if unset.
	GarpMasterRefresh    int
	GarpMasterRefreshPos Pos
	VRRPVersion          int // vrrp_version, 0 if unset (keepalived: 2)
	VRRPStrict           bool
	// HigherPrioSendAdvert is vrrp_higher_prio_send_advert: a master that
	// hears a higher priority sends one more advert before it steps down.
	HigherPrioSendAdvert bool
}

// FIFO is a notify FIFO and the script keepalived starts to read it.
type FIFO struct {
	Path   string
	Pos    Pos
	Script *Command
}

// Command is a script keepalived runs: a hook, a FIFO reader or a track
// script.
type Command struct {
	Keyword string // notify_master, vrrp_notify_fifo_script, script, ...
	// Script is the command as written, unquoted once; Argv is it split as
	// keepalived splits it. Both are empty for a bare notify_deleted.
	Script string
	Argv   []string
	// User and Group are the per-script override; empty means script_user.
	User, Group string
	Pos         Pos
	// Err says why keepalived would refuse to run it, "" when it would.
	Err string
}

// Hooks are the notify commands of an instance or sync group, nil if unset.
type Hooks struct {
	Notify, Master, Backup, Fault, Stop, Deleted, MasterRxLowerPri *Command
}

// All lists the configured hooks.
func (h *Hooks) All() []*Command {
	var out []*Command
	for _, c := range []*Command{h.Notify, h.Master, h.Backup, h.Fault, h.Stop, h.Deleted, h.MasterRxLowerPri} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (h *Hooks) slot(kw string) **Command {
	switch kw {
	case "notify":
		return &h.Notify
	case "notify_master":
		return &h.Master
	case "notify_backup":
		return &h.Backup
	case "notify_fault":
		return &h.Fault
	case "notify_stop":
		return &h.Stop
	case "notify_deleted":
		return &h.Deleted
	case "notify_master_rx_lower_pri":
		return &h.MasterRxLowerPri
	}
	return nil
}

// Instance is a vrrp_instance.
type Instance struct {
	Name            string
	Pos             Pos
	Interface       string
	State           string
	Priority        int // 0 if unset (keepalived: 100)
	VirtualRouterID int
	Version         int // version, 0 if unset
	StrictMode      bool
	VIPs            []Address // virtual_ipaddress
	ExcludedVIPs    []Address // virtual_ipaddress_excluded
	Routes          []Route   // virtual_routes
	Hooks           Hooks
	TrackFiles      []TrackRef
	TrackScripts    []TrackRef
	TrackProcesses  []TrackRef
	// GarpMasterRefresh is garp_master_refresh in seconds, 0 if unset.
	GarpMasterRefresh    int
	GarpMasterRefreshPos Pos
	// HigherPrioSendAdvert is higher_prio_send_advert; nil if unset (the
	// global setting applies).
	HigherPrioSendAdvert *bool
	// NoVIPs is no_virtual_ipaddress (keepalived 2.2.8 and later): the
	// instance has no VIP on purpose and may run VRRPv3.
	NoVIPs bool
	// SyncGroup names the vrrp_sync_group listing this instance, if any.
	SyncGroup string
	// AdvertInt is advert_int in seconds, 0 if unset (keepalived: 1).
	AdvertInt float64
	// AuthType and AuthPass are the authentication block's values.
	AuthType, AuthPass string
	// UnicastSrcIP is unicast_src_ip (or mcast_src_ip); UnicastPeers the
	// unicast_peer addresses.
	UnicastSrcIP string
	UnicastPeers []string
	// Nopreempt is nopreempt (a later preempt turns it off).
	Nopreempt bool
}

// SyncGroup is a vrrp_sync_group.
type SyncGroup struct {
	// TrackingWeight is sync_group_tracking_weight (or global_tracking):
	// members' tracker weights apply.
	TrackingWeight bool
	Name           string
	Pos            Pos
	Members        []string
	Hooks          Hooks
	TrackFiles     []TrackRef
	TrackScripts   []TrackRef
	TrackProcesses []TrackRef
}

// Address is one virtual_ipaddress entry.
type Address struct {
	// Prefix is the address with keepalived's default length (/32, /128)
	// when none is written; invalid when the entry does not parse.
	Prefix netip.Prefix
	Raw    string
	// Options are the words after the address (dev, no_track, ...).
	Options []string
	Pos     Pos
}

// Route is one virtual_routes entry, kept as words plus what Inspect needs.
type Route struct {
	Words []string
	// Type is the explicit route type (local, blackhole, unreachable, ...),
	// "" when none is given (a unicast route).
	Type    string
	Prepend bool
	NoTrack bool
	Pos     Pos
}

// TrackRef is a reference from an instance or sync group to a tracker,
// with its optional weight override.
type TrackRef struct {
	Name      string
	Weight    int
	WeightSet bool
	Reverse   bool
	Pos       Pos
}

// TrackFile is a track_file (or deprecated vrrp_track_file) block.
type TrackFile struct {
	Name string
	Pos  Pos
	File string
	// Weight is the block's weight, 1 (keepalived's default) if unset.
	Weight    int
	WeightSet bool
	Reverse   bool
	// InitFile is set by init_file; InitValue defaults to 0.
	InitFile      bool
	InitValue     int
	InitOverwrite bool
	// Unused: no instance or sync group tracks it; keepalived drops it.
	Unused bool
}

// TrackProcess is a vrrp_track_process block. Keyword records how it was
// written: keepalived 2.2.7 knows only vrrp_track_process at top level.
type TrackProcess struct {
	Name    string
	Keyword string
	Pos     Pos
	// Process is the process name and optional parameters.
	Process []string
	// Weight is the block's weight, 1 (keepalived's default) if unset.
	Weight    int
	WeightSet bool
	Reverse   bool
	Quorum    int
}

// Script is a vrrp_script block.
type Script struct {
	Name     string
	Pos      Pos
	Command  *Command
	Interval int
	Fall     int
	Rise     int
	// Weight is the block's weight, 0 (keepalived's default) if unset.
	Weight    int
	WeightSet bool
	Reverse   bool
	// Unused: no instance or sync group tracks it, so keepalived drops it
	// ("script ... is not used").
	Unused bool
}

// Instance finds a vrrp_instance by name, nil if there is none.
func (c *Conf) Instance(name string) *Instance { return find(c.Instances, name) }

// SyncGroup finds a vrrp_sync_group by name, nil if there is none.
func (c *Conf) SyncGroup(name string) *SyncGroup { return find(c.SyncGroups, name) }

// TrackFile finds a track_file block by name, nil if there is none.
func (c *Conf) TrackFile(name string) *TrackFile { return find(c.TrackFiles, name) }

// TrackProcess finds a vrrp_track_process block by name, nil if none.
func (c *Conf) TrackProcess(name string) *TrackProcess { return find(c.TrackProcesses, name) }

// Script finds a vrrp_script block by name, nil if there is none.
func (c *Conf) Script(name string) *Script { return find(c.Scripts, name) }

func find[T interface{ key() string }](list []T, name string) T {
	for _, v := range list {
		if v.key() == name {
			return v
		}
	}
	var zero T
	return zero
}

func (in *Instance) key() string     { return in.Name }
func (g *SyncGroup) key() string     { return g.Name }
func (tf *TrackFile) key() string    { return tf.Name }
func (tp *TrackProcess) key() string { return tp.Name }
func (sc *Script) key() string       { return sc.Name }

// stmt is a statement: a line's words and, after "{", its block.
type stmt struct {
	pos      Pos
	words    []string
	raw      string
	bad      string
	hasBlock bool
	block    []*stmt
	// subject is the top-level block it is in, for problems.
	subject string
	// dropped: keepalived drops the block (tree, dropParent).
	dropped bool
}

func (s *stmt) arg(i int) string {
	if i < len(s.words) {
		return s.words[i]
	}
	return ""
}

// Options change how a file is read.
type Options struct {
	// ConfigID is keepalived's config id (-i, default the host name): a
	// line "@ID ..." applies only on a host with that id, "@^ID ..." only
	// on the others.
	ConfigID string
	// Release is the keepalived release the file is read for; zero
	// reads it as 2.2.7 does (Debian 12's), the reader's base model.
	Release Version
}

// ParseConf reads keepalived.conf. name is used in positions and to resolve
// relative include patterns (against the including file's directory, as
// keepalived does); include returns the files a pattern matches, in order,
// and may be nil to leave includes unfollowed. Syntax keepalived would
// complain about is reported in Conf.Problems, not as an error; an error
// means an include could not be read.
func ParseConf(name string, data []byte, include func(pattern string) ([]File, error), opts ...Options) (*Conf, error) {
	lx := &lexer{include: include}
	var release Version
	for _, o := range opts {
		lx.configID, release = o.ConfigID, o.Release
	}
	if err := lx.file(name, data); err != nil {
		return nil, err
	}
	c := &Conf{Files: lx.files, Problems: lx.problems, v23: release.AtLeast(Reader23)}
	for _, s := range c.tree(lx.lines) {
		c.top(s)
	}
	c.resolve()
	return c, nil
}

// report adds a problem about subject: what keepalived does with it.
func (c *Conf) report(pos Pos, subject string, fatal bool, format string, args ...any) {
	c.Problems = append(c.Problems, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...), Syntax: true, Fatal: fatal, Subject: subject})
}

// fix sets the fix of the problem just reported.
func (c *Conf) fix(fix string) { c.Problems[len(c.Problems)-1].Fix = fix }

// Fatal is the first problem that makes keepalived refuse the file, nil
// when it runs it.
func (c *Conf) Fatal() *Problem {
	for i := range c.Problems {
		if c.Problems[i].Fatal {
			return &c.Problems[i]
		}
	}
	return nil
}

// num parses an integer argument, reporting a problem when it is not one.
func (c *Conf) num(s *stmt, i int) int {
	v := s.arg(i)
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return int(f) // keepalived takes fractional seconds for timers
	}
	if v == "" {
		return 0 // a missing parameter is reported where keywords are read
	}
	c.report(s.pos, s.subject, false, "%s: %q is not a number: keepalived ignores the line or uses its default", s.arg(0), v)
	return 0
}

func (c *Conf) top(s *stmt) {
	name := s.arg(1)
	kw := s.arg(0)
	dup := func(exists bool) bool {
		if exists {
			c.report(s.pos, s.subject, false, "%s %s is defined again: keepalived keeps the first definition and skips this block (\"already defined\")", kw, name)
			c.fix("remove or rename the second block")
		}
		return exists
	}
	switch kw {
	case "global_defs":
		c.global(s)
	case "vrrp_instance":
		if dup(c.Instance(name) != nil) {
			return
		}
		in := &Instance{Name: name, Pos: s.pos}
		c.Instances = append(c.Instances, in)
		c.instance(in, s)
	case "vrrp_sync_group":
		if s.dropped {
			// keepalived 2.3 never reaches the block's end, where it
			// would have added the group (see tree).
			c.report(s.pos, s.subject, false, "vrrp_sync_group %s has a second group list: keepalived %s and later skip that list and with it the end of the group's block (\"Group list already specified\"), so it drops the whole group (its instances run unsynchronised) and reads the lines after that list as top-level lines", name, Reader23)
			c.fix("keep one group list per vrrp_sync_group, with every member in it")
			return
		}
		if dup(c.SyncGroup(name) != nil) {
			return
		}
		g := &SyncGroup{Name: name, Pos: s.pos}
		c.SyncGroups = append(c.SyncGroups, g)
		c.syncGroup(g, s)
	case "track_file", "vrrp_track_file":
		if dup(c.TrackFile(name) != nil) {
			return
		}
		c.TrackFiles = append(c.TrackFiles, c.trackFile(name, s))
	case "vrrp_track_process", "track_process":
		if dup(c.TrackProcess(name) != nil) {
			return
		}
		c.TrackProcesses = append(c.TrackProcesses, c.trackProcess(kw, name, s))
	case "vrrp_script":
		if dup(c.Script(name) != nil) {
			return
		}
		c.Scripts = append(c.Scripts, c.script(name, s))
	}
}

func (c *Conf) global(s *stmt) {
	g := &c.Global
	g.Pos = s.pos
	for _, k := range s.block {
		switch k.arg(0) {
		case "script_user":
			g.ScriptUser, g.ScriptGroup = k.arg(1), k.arg(2)
		case "enable_script_security":
			// keepalived takes no parameter here and enables script
			// security whatever follows ("enable_script_security 0" too).
			g.EnableScriptSecurity = true
			g.EnableScriptSecurityArg = strings.Join(k.words[1:], " ")
			g.EnableScriptSecurityPos = k.pos
		case "vrrp_notify_fifo":
			g.VRRPNotifyFIFO.Path, g.VRRPNotifyFIFO.Pos = k.arg(1), k.pos
		case "notify_fifo":
			g.NotifyFIFO.Path, g.NotifyFIFO.Pos = k.arg(1), k.pos
		case "vrrp_notify_fifo_script":
			g.VRRPNotifyFIFO.Script = c.command(k)
		case "notify_fifo_script":
			g.NotifyFIFO.Script = c.command(k)
		case "vrrp_garp_master_refresh":
			g.GarpMasterRefresh, g.GarpMasterRefreshPos = c.num(k, 1), k.pos
		case "vrrp_version":
			g.VRRPVersion = c.num(k, 1)
		case "vrrp_strict":
			g.VRRPStrict = true
		case "vrrp_higher_prio_send_advert":
			g.HigherPrioSendAdvert = boolArg(k.arg(1))
		}
	}
}

// hook sets a notify hook the way keepalived does: the first line wins,
// a later one is logged ("already specified - ignoring") and dropped.
func (c *Conf) hook(p **Command, k *stmt) {
	if *p != nil {
		c.report(k.pos, k.subject, false, "%s is given again: keepalived keeps the first one (%s: %q) and ignores this one (%q, \"script already specified - ignoring\")", k.arg(0), (*p).Pos, (*p).Script, k.arg(1))
		c.fix("keep one line per block: put both commands in one script, or drop the one you do not need")
		return
	}
	*p = c.command(k)
}

func (c *Conf) instance(in *Instance, s *stmt) {
	vrid := false
	defer func() {
		if !vrid {
			c.report(s.pos, s.subject, true, "vrrp_instance %s has no valid virtual_router_id (1-255): keepalived refuses the configuration (\"the virtual router id must be set\") and runs nothing", in.Name)
			c.fix("set virtual_router_id to a number from 1 to 255, the same on every node of the instance")
		}
	}()
	for _, k := range s.block {
		kw := k.arg(0)
		if p := in.Hooks.slot(kw); p != nil {
			c.hook(p, k)
			continue
		}
		switch kw {
		case "interface":
			in.Interface = k.arg(1)
		case "state":
			in.State = k.arg(1)
		case "advert_int":
			if f, err := strconv.ParseFloat(k.arg(1), 64); err == nil && f > 0 {
				in.AdvertInt = f
			}
		case "authentication":
			for _, a := range k.block {
				switch a.arg(0) {
				case "auth_type":
					in.AuthType = a.arg(1)
				case "auth_pass":
					in.AuthPass = a.arg(1)
					if len(in.AuthPass) > 8 {
						// VRRPv2's password field has 8 bytes.
						in.AuthPass = in.AuthPass[:8]
						c.report(a.pos, a.subject, false, "auth_pass is longer than 8 characters: keepalived uses the first 8 (\"Truncating auth_pass to 8 characters\")")
					}
				}
			}
		case "unicast_src_ip", "mcast_src_ip":
			in.UnicastSrcIP = k.arg(1)
		case "unicast_peer":
			for _, e := range k.block {
				if len(e.words) > 0 {
					in.UnicastPeers = append(in.UnicastPeers, e.words[0])
				}
			}
		case "nopreempt":
			in.Nopreempt = true
		case "preempt":
			in.Nopreempt = false
		case "priority":
			in.Priority = c.num(k, 1)
		case "virtual_router_id":
			if n, err := strconv.Atoi(k.arg(1)); err == nil && n >= 1 && n <= 255 {
				in.VirtualRouterID, vrid = n, true
			} else {
				c.report(k.pos, k.subject, false, "virtual_router_id %q is not a number from 1 to 255: keepalived ignores it", k.arg(1))
			}
		case "version":
			in.Version = c.num(k, 1)
		case "strict_mode":
			in.StrictMode = boolArg(k.arg(1))
		case "virtual_ipaddress":
			in.VIPs = append(in.VIPs, c.addresses(k)...)
		case "virtual_ipaddress_excluded":
			in.ExcludedVIPs = append(in.ExcludedVIPs, c.addresses(k)...)
		case "no_virtual_ipaddress":
			in.NoVIPs = true
		case "virtual_routes":
			for _, e := range k.block {
				in.Routes = append(in.Routes, route(e))
			}
		case "track_interface":
			c.trackInterfaces(k)
		case "track_file":
			in.TrackFiles = append(in.TrackFiles, c.defined(c.refs(k), k, func(n string) bool { return c.TrackFile(n) != nil })...)
		case "track_script":
			in.TrackScripts = append(in.TrackScripts, c.defined(c.refs(k), k, func(n string) bool { return c.Script(n) != nil })...)
		case "track_process":
			in.TrackProcesses = append(in.TrackProcesses, c.defined(c.refs(k), k, func(n string) bool { return c.TrackProcess(n) != nil })...)
		case "garp_master_refresh":
			in.GarpMasterRefresh, in.GarpMasterRefreshPos = c.num(k, 1), k.pos
		case "higher_prio_send_advert":
			on := boolArg(k.arg(1))
			in.HigherPrioSendAdvert = &on
		}
	}
}

// boolArg reads keepalived's optional <BOOL>; a bare keyword means on.
func boolArg(s string) bool {
	switch s {
	case "off", "false", "no":
		return false
	}
	return true
}

func (c *Conf) syncGroup(g *SyncGroup, s *stmt) {
	group := false
	for _, k := range s.block {
		kw := k.arg(0)
		if p := g.Hooks.slot(kw); p != nil {
			c.hook(p, k)
			continue
		}
		switch kw {
		case "sync_group_tracking_weight", "global_tracking":
			g.TrackingWeight = true
		case "group":
			if group {
				c.report(k.pos, k.subject, false, "a second group list in vrrp_sync_group %s: keepalived keeps the first (\"Group list already specified\") and skips this one", g.Name)
				continue
			}
			group = true
			for _, e := range k.block {
				g.Members = append(g.Members, e.words...)
			}
		case "track_file":
			g.TrackFiles = append(g.TrackFiles, c.defined(c.refs(k), k, func(n string) bool { return c.TrackFile(n) != nil })...)
		case "track_script":
			g.TrackScripts = append(g.TrackScripts, c.defined(c.refs(k), k, func(n string) bool { return c.Script(n) != nil })...)
		case "track_process":
			g.TrackProcesses = append(g.TrackProcesses, c.defined(c.refs(k), k, func(n string) bool { return c.TrackProcess(n) != nil })...)
		}
	}
}

func (c *Conf) addresses(s *stmt) []Address {
	var out []Address
	for _, e := range s.block {
		if len(e.words) == 0 {
			continue // a bare "{ ... }" inside the list
		}
		a := Address{Raw: e.arg(0), Options: e.words[1:], Pos: e.pos}
		a.Prefix = ParsePrefix(a.Raw)
		if !a.Prefix.IsValid() {
			c.report(e.pos, s.subject, false, "%s: %q is not an IP address: keepalived skips it (\"VRRP parsed invalid IP\")", s.arg(0), a.Raw)
			continue
		}
		out = append(out, a)
	}
	return out
}

// ParsePrefix reads "ADDR" or "ADDR/LEN"; a bare address gets keepalived's
// default length. It returns the zero Prefix when s is neither.
func ParsePrefix(s string) netip.Prefix {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}
		}
		return p
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// routeTypes are the route types keepalived accepts before a destination
// (iproute2's rtn types); naming one sets the type bit that 2.2.7 confuses
// with its "add" bit.
var routeTypes = []string{"unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve"}

func route(e *stmt) Route {
	r := Route{Words: e.words, Pos: e.pos}
	for i, w := range e.words {
		switch {
		case w == "prepend":
			r.Prepend = true
		case w == "no_track":
			r.NoTrack = true
		case r.Type == "" && slices.Contains(routeTypes, w) && i+1 < len(e.words):
			if next := e.words[i+1]; next == "default" || ParsePrefix(next).IsValid() {
				r.Type = w
			}
		}
	}
	return r
}

// trackInterfaces: keepalived refuses a configuration that tracks an
// interface that does not exist ("Non-existent interface specified"). The
// host decides that, except for entries that are keywords: a block
// written without its '{' swallows the lines after it as interface names.
func (c *Conf) trackInterfaces(k *stmt) {
	for _, e := range k.block {
		if _, kw := keywords["vrrp_instance"][e.arg(0)]; kw {
			c.report(e.pos, k.subject, true, "track_interface takes %q for an interface name (its block swallowed the line), finds no such interface and refuses the configuration (\"Non-existent interface specified\"): keepalived runs nothing", e.arg(0))
			c.fix("write the block as `track_interface {`, one interface per line, then `}`")
			return
		}
	}
}

// defined keeps the references to blocks defined so far: keepalived
// resolves a track_* reference when it reads it, so a tracker defined
// further down the file is "not found" and the reference is dropped.
func (c *Conf) defined(refs []TrackRef, k *stmt, exists func(string) bool) []TrackRef {
	out := refs[:0]
	for _, r := range refs {
		if exists(r.Name) {
			out = append(out, r)
			continue
		}
		c.report(r.Pos, k.subject, false, "%s %s is not defined above this line: keepalived resolves the reference as it reads it, finds nothing and ignores it (\"not found, ignoring\"); define the block before the instance", k.arg(0), r.Name)
		c.fix("move the block it names above the instance")
	}
	return out
}

// refs reads a track_* reference block: "NAME [weight N] [reverse]".
func (c *Conf) refs(s *stmt) []TrackRef {
	var out []TrackRef
	for _, e := range s.block {
		r := TrackRef{Name: e.arg(0), Pos: e.pos}
		for i := 1; i < len(e.words); i++ {
			switch e.words[i] {
			case "weight":
				r.Weight, r.WeightSet = c.num(e, i+1), true
				i++
			case "reverse":
				r.Reverse = true
			case "noreverse", "no_reverse":
				r.Reverse = false
			}
		}
		out = append(out, r)
	}
	return out
}

func (c *Conf) trackFile(name string, s *stmt) *TrackFile {
	tf := &TrackFile{Name: name, Pos: s.pos, Weight: 1}
	for _, k := range s.block {
		switch k.arg(0) {
		case "file":
			tf.File = k.arg(1)
			if tf.File != "" && !filepath.IsAbs(tf.File) && !strings.ContainsRune(tf.File, '\'') {
				c.report(k.pos, k.subject, false, "file %s is a relative path: keepalived takes it relative to its working directory (/ when run by systemd)", tf.File)
			}
			if strings.ContainsRune(tf.File, '\'') {
				c.report(k.pos, k.subject, false, "file %s: keepalived takes the single quotes as part of the path, finds no such directory and drops track_file %s (\"Track file directory ... does not exist - removing\"); write the path in double quotes or none", tf.File, name)
				c.fix("write the path in double quotes, or without quotes")
			}
		case "weight":
			tf.Weight, tf.WeightSet = c.num(k, 1), true
			tf.Reverse = k.arg(2) == "reverse"
		case "init_file":
			tf.InitFile = true
			for i := 1; i < len(k.words); i++ {
				if k.words[i] == "overwrite" {
					tf.InitOverwrite = true
				} else {
					tf.InitValue = c.num(k, i)
				}
			}
		}
	}
	return tf
}

func (c *Conf) trackProcess(kw, name string, s *stmt) *TrackProcess {
	tp := &TrackProcess{Name: name, Keyword: kw, Pos: s.pos, Weight: 1, Quorum: 1}
	for _, k := range s.block {
		switch k.arg(0) {
		case "process":
			tp.Process = k.words[1:]
		case "weight":
			tp.Weight, tp.WeightSet = c.num(k, 1), true
			tp.Reverse = k.arg(2) == "reverse"
		case "quorum":
			tp.Quorum = c.num(k, 1)
		}
	}
	return tp
}

func (c *Conf) script(name string, s *stmt) *Script {
	sc := &Script{Name: name, Pos: s.pos, Interval: 1, Fall: 1, Rise: 1}
	var user *stmt
	for _, k := range s.block {
		switch k.arg(0) {
		case "script":
			sc.Command = c.command(k)
		case "interval":
			sc.Interval = c.num(k, 1)
		case "fall":
			sc.Fall = c.num(k, 1)
		case "rise":
			sc.Rise = c.num(k, 1)
		case "weight":
			sc.Weight, sc.WeightSet = c.num(k, 1), true
			sc.Reverse = k.arg(2) == "reverse"
		case "user":
			user = k
		}
	}
	if sc.Command != nil {
		// vrrp_script takes its user from the user keyword only; words
		// after the script are ignored.
		sc.Command.User, sc.Command.Group = "", ""
		if user != nil {
			sc.Command.User, sc.Command.Group = user.arg(1), user.arg(2)
		}
	}
	return sc
}
