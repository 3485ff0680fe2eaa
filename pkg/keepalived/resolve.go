package keepalived

import (
	"fmt"
	"math"
)

// resolve does what keepalived does once the whole file is read: it
// checks instances against each other, puts them in their sync groups,
// drops tracker references it will not honour and the trackers nothing
// uses.
func (c *Conf) resolve() {
	for _, in := range c.Instances {
		if in.Interface == "" {
			c.report(in.Pos, "vrrp_instance "+in.Name, true, "vrrp_instance %s names no interface: keepalived refuses the configuration (\"Unknown interface!\") and runs nothing", in.Name)
			c.fix("add `interface IF` to the instance")
		}
	}
	c.vridClash()
	for _, in := range c.Instances {
		c.authentication(in)
		v2 := in.Version == 2 || (in.Version == 0 && c.Global.VRRPVersion != 3)
		if a := in.AdvertInt; v2 && a != 0 && a != math.Round(a) {
			in.AdvertInt = max(1, math.Round(a))
			c.report(in.Pos, "vrrp_instance "+in.Name, false, "advert_int %g: VRRPv2 counts whole seconds, keepalived rounds it to %g (\"must be an integer. rounding\")", a, in.AdvertInt)
		}
	}
	for _, g := range c.SyncGroups {
		for _, m := range g.Members {
			if in := c.Instance(m); in != nil && in.SyncGroup == "" {
				in.SyncGroup = g.Name
			}
		}
	}
	for _, in := range c.Instances {
		c.ignoreWeights(in)
	}
	used := map[string]bool{}
	for _, in := range c.Instances {
		for _, r := range in.TrackScripts {
			used["script "+r.Name] = true
		}
		for _, r := range in.TrackFiles {
			used["file "+r.Name] = true
		}
	}
	for _, g := range c.SyncGroups {
		for _, r := range g.TrackScripts {
			used["script "+r.Name] = true
		}
		for _, r := range g.TrackFiles {
			used["file "+r.Name] = true
		}
	}
	for _, tf := range c.TrackFiles {
		if !used["file "+tf.Name] && tf.Name != "" {
			tf.Unused = true
			c.Problems = append(c.Problems, Problem{Pos: tf.Pos, Subject: "track_file " + tf.Name, Msg: fmt.Sprintf("track_file %s is tracked by no instance or sync group: keepalived drops it", tf.Name)})
		}
	}
	for _, sc := range c.Scripts {
		if !used["script "+sc.Name] && sc.Name != "" {
			sc.Unused = true
			c.Problems = append(c.Problems, Problem{Pos: sc.Pos, Subject: "vrrp_script " + sc.Name, Msg: fmt.Sprintf("vrrp_script %s is tracked by no instance or sync group: keepalived does not run it (\"script %s is not used\")", sc.Name, sc.Name)})
		}
	}
}

// authentication: keepalived ignores an authentication block in strict
// mode and with VRRPv3, which has none.
func (c *Conf) authentication(in *Instance) {
	if in.AuthType == "" && in.AuthPass == "" {
		return
	}
	why := ""
	switch {
	case in.StrictMode || c.Global.VRRPStrict:
		why = "strict mode does not support authentication"
	case in.Version == 3 || (in.Version == 0 && c.Global.VRRPVersion == 3):
		why = "VRRPv3 has no authentication"
	default:
		return
	}
	c.report(in.Pos, "vrrp_instance "+in.Name, false, "vrrp_instance %s: %s: keepalived ignores the authentication block", in.Name, why)
	in.AuthType, in.AuthPass = "", ""
}

// ignoreWeights applies what keepalived does to an instance whose
// priority trackers may not change: on an address owner (priority 255),
// and in a sync group without sync_group_tracking_weight, it ignores a
// weighted track_script ("ignoring tracked script ... with weights due
// to address_owner" / "SYNC group") and uses 0 for a track_file's weight
// ("ignoring weight from tracked file ...").
func (c *Conf) ignoreWeights(in *Instance) {
	where, why := "", ""
	if g := c.SyncGroup(in.SyncGroup); g != nil && !g.TrackingWeight {
		where, why = "in sync group "+g.Name, "SYNC group; use weight 0 or sync_group_tracking_weight"
	}
	if in.Priority == 255 {
		where, why = "on an address owner (priority 255)", "address_owner"
	}
	if where == "" {
		return
	}
	subject := "vrrp_instance " + in.Name
	keep := in.TrackScripts[:0]
	for _, r := range in.TrackScripts {
		if w := weightOf(r, c.Script(r.Name) != nil, func() int { return c.Script(r.Name).Weight }); w != 0 {
			c.report(r.Pos, subject, false, "track_script %s has weight %d %s: keepalived ignores it (\"ignoring tracked script with weights due to %s\")", r.Name, w, where, why)
			continue
		}
		keep = append(keep, r)
	}
	in.TrackScripts = keep
	for i, r := range in.TrackFiles {
		if w := weightOf(r, c.TrackFile(r.Name) != nil, func() int { return c.TrackFile(r.Name).Weight }); w != 0 {
			c.report(r.Pos, subject, false, "track_file %s has weight %d %s: keepalived ignores the weight and uses 0 (\"ignoring weight from tracked file due to %s\")", r.Name, w, where, why)
			in.TrackFiles[i].Weight, in.TrackFiles[i].WeightSet = 0, true
		}
	}
}

// weightOf is a reference's weight: its own override, else the block's.
func weightOf(r TrackRef, defined bool, block func() int) int {
	if r.WeightSet || !defined {
		return r.Weight
	}
	return block()
}

// vridClash: keepalived refuses a file in which two instances use the
// same VRID for the same address family on the same interface.
func (c *Conf) vridClash() {
	seen := map[string]*Instance{}
	for _, in := range c.Instances {
		if in.Interface == "" || in.VirtualRouterID == 0 {
			continue
		}
		fam := "IPv4"
		if len(in.VIPs) > 0 && in.VIPs[0].Prefix.Addr().Is6() {
			fam = "IPv6"
		}
		key := fmt.Sprintf("%s/%d/%s", in.Interface, in.VirtualRouterID, fam)
		if first := seen[key]; first != nil {
			c.report(in.Pos, "vrrp_instance "+in.Name, true, "vrrp_instance %s uses VRID %d for %s on %s like vrrp_instance %s (%s): keepalived refuses the configuration and runs nothing", in.Name, in.VirtualRouterID, fam, in.Interface, first.Name, first.Pos)
			c.fix("give each instance on an interface its own virtual_router_id")
			continue
		}
		seen[key] = in
	}
}
