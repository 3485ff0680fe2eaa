package check

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vipkit/vipkit/pkg/keepalived"
)

// problems turns what the reader found keepalived reads differently into
// findings. Severity follows what it touches: an error when keepalived
// refuses the file, or when the line belongs to something vipkit relies
// on (an instance vipkit manages, its sync group, fenced's or the
// maintenance track file, a hook or FIFO reader calling vipctl or fenced);
// a warning for the rest of the file; nothing for an instance vipkit does
// not manage unless the line calls vipkit.
func (x *inspector) problems() {
	relied := x.reliedOn()
	for _, p := range x.c.Problems {
		fix := fmt.Sprintf("correct the line; `keepalived -t -f %s` logs how keepalived reads it", x.mainFile())
		if p.Fix != "" {
			fix = p.Fix
		}
		sev := Warning
		subject := p.Subject
		if subject == "" {
			subject = p.Pos.File
		}
		switch {
		case !p.Syntax && relied[p.Subject]:
			continue // the checks of vipkit's own blocks say it with their fix
		case !p.Syntax:
			x.add(Info, subject, p.Pos, p.Msg, "make sure these lines do not change the vipkit instances, or write them out plainly")
			continue
		case p.Fatal:
			sev = Error
		case relied[p.Subject] || x.mentionsVipkit(p.Msg):
			sev = Error
		case strings.HasPrefix(p.Subject, "vrrp_instance ") || strings.HasPrefix(p.Subject, "vrrp_sync_group "):
			continue // an instance vipkit does not manage, and nothing of vipkit in the line
		}
		x.add(sev, subject, p.Pos, p.Msg, "%s", fix)
	}
}

func (x *inspector) mainFile() string {
	if len(x.c.Files) > 0 {
		return x.c.Files[0]
	}
	return "keepalived.conf"
}

func (x *inspector) mentionsVipkit(msg string) bool {
	for _, p := range []string{x.want.VipctlPath, x.want.FencedPath} {
		if p != "" && (strings.Contains(msg, p) || strings.Contains(msg, filepath.Base(p)+" ")) {
			return true
		}
	}
	return false
}

// reliedOn lists the blocks of keepalived.conf vipkit depends on, by the
// subject names the reader gives its problems.
func (x *inspector) reliedOn() map[string]bool {
	out := map[string]bool{}
	g := x.c.Global
	for _, f := range []keepalived.FIFO{g.VRRPNotifyFIFO, g.NotifyFIFO} {
		if f.Script != nil && len(f.Script.Argv) > 0 && sameBase(f.Script.Argv[0], x.want.VipctlPath) {
			out["global_defs"] = true
		}
	}
	if len(x.want.Instances) > 0 {
		out["global_defs"] = true // script_user, enable_script_security
	}
	for _, ei := range x.want.Instances {
		out["vrrp_instance "+ei.Name] = true
		in := x.c.Instance(ei.Name)
		if in == nil {
			continue
		}
		if in.SyncGroup != "" {
			out["vrrp_sync_group "+in.SyncGroup] = true
		}
		for _, r := range in.TrackFiles {
			out["track_file "+r.Name] = true
		}
		for _, r := range in.TrackScripts {
			out["vrrp_script "+r.Name] = true
		}
		for _, tf := range x.c.TrackFiles {
			for _, p := range []string{ei.TrackFile, ei.MaintenanceFile} {
				if p != "" && filepath.Clean(strings.Trim(tf.File, `'"`)) == filepath.Clean(p) {
					out["track_file "+tf.Name] = true
				}
			}
		}
	}
	return out
}
