package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Placeholders used by the shipped configs in contrib/keepalived and by
// vipkit.toml examples; Render swaps them for one lab node's values.
const (
	PlaceholderInterface = "eth0"
	PlaceholderAddr4     = "192.0.2.11"
	PlaceholderAddr6     = "2001:db8::11"
	PlaceholderVipctl    = "/usr/local/sbin/vipctl"
	PlaceholderFenced    = "/usr/local/sbin/fenced"
	PlaceholderConfig    = "/etc/vipkit/vipkit.toml"
	PlaceholderStateDir  = "/run/vipkit"
)

// NodeVars are one node's values for Render. Empty fields leave their
// placeholder untouched.
type NodeVars struct {
	Interface  string // replaces eth0 (the lab names node interfaces eth0 anyway)
	Addr4      string // replaces 192.0.2.11
	Addr6      string // replaces 2001:db8::11
	Vipctl     string // replaces /usr/local/sbin/vipctl
	Fenced     string // replaces /usr/local/sbin/fenced
	ConfigPath string // replaces /etc/vipkit/vipkit.toml
	StateDir   string // replaces /run/vipkit (also as a path prefix)
	// Extra are further literal replacements, applied in the same pass
	// (so swapping two addresses works), e.g. a peer's address.
	Extra map[string]string

	Priority  int    // sets every `priority N` when > 0
	State     string // sets every `state X` when set (MASTER, BACKUP)
	AdvertInt string // sets every `advert_int X` when set
	RouterID  string // sets `router_id` when set
	// NotifyFIFO adds `notify_fifo PATH` to global_defs unless the config
	// already has a generic notify_fifo (see HasGenericFIFO).
	NotifyFIFO string
}

var (
	genericFIFORE = regexp.MustCompile(`(?m)^\s*notify_fifo\s`)
	globalDefsRE  = regexp.MustCompile(`(?m)^\s*global_defs\s*\{[^\n]*\n`)
	priorityRE    = regexp.MustCompile(`(?m)^(\s*priority\s+)\d+`)
	stateRE       = regexp.MustCompile(`(?m)^(\s*state\s+)\S+`)
	advertRE      = regexp.MustCompile(`(?m)^(\s*advert_int\s+)\S+`)
	routerIDRE    = regexp.MustCompile(`(?m)^(\s*router_id\s+)\S+`)
)

// HasGenericFIFO reports whether a keepalived config already sets the
// generic notify_fifo (vrrp_notify_fifo does not count), in which case
// the lab cannot add its own and observes states from the log instead.
func HasGenericFIFO(conf string) bool { return genericFIFORE.MatchString(conf) }

// Render substitutes one node's values into a config text (a keepalived
// config from contrib/keepalived, a vipkit.toml, or the lab's control
// template). Replacements happen in one pass and only on whole tokens:
// 192.0.2.11 does not match inside 192.0.2.110, /run/vipkit matches
// /run/vipkit/VI_1.fence but not /run/vipkitd.
func Render(text string, v NodeVars) (string, error) {
	repl := map[string]string{}
	add := func(from, to string) {
		if to != "" && to != from {
			repl[from] = to
		}
	}
	add(PlaceholderInterface, v.Interface)
	add(PlaceholderAddr4, v.Addr4)
	add(PlaceholderAddr6, v.Addr6)
	add(PlaceholderVipctl, v.Vipctl)
	add(PlaceholderFenced, v.Fenced)
	add(PlaceholderConfig, v.ConfigPath)
	add(PlaceholderStateDir, v.StateDir)
	for from, to := range v.Extra {
		if from == "" {
			return "", fmt.Errorf("render config: empty placeholder in extra replacements")
		}
		repl[from] = to
	}
	out := replaceTokens(text, repl)
	if v.Priority > 0 {
		if v.Priority > 255 {
			return "", fmt.Errorf("render config: priority %d out of range 1..255", v.Priority)
		}
		out = priorityRE.ReplaceAllString(out, fmt.Sprintf("${1}%d", v.Priority))
	}
	if v.State != "" {
		out = stateRE.ReplaceAllString(out, "${1}"+v.State)
	}
	if v.AdvertInt != "" {
		out = advertRE.ReplaceAllString(out, "${1}"+v.AdvertInt)
	}
	if v.RouterID != "" {
		out = routerIDRE.ReplaceAllString(out, "${1}"+v.RouterID)
	}
	if v.NotifyFIFO != "" && !HasGenericFIFO(out) {
		line := "    notify_fifo " + v.NotifyFIFO + "\n"
		if loc := globalDefsRE.FindStringIndex(out); loc != nil {
			out = out[:loc[1]] + line + out[loc[1]:]
		} else {
			out = "global_defs {\n" + line + "}\n\n" + out
		}
	}
	return out, nil
}

// replaceTokens replaces every key of repl found in text as a whole token,
// in a single left-to-right pass. A match must not continue a longer
// token: before it there is no letter, digit, '_', '-', '.', ':' or '/';
// after it no letter, digit, '_' or '-', and no '.' or ':' followed by a
// letter or digit (a sentence-ending '.' is fine, 192.0.2.11.5 is not).
func replaceTokens(text string, repl map[string]string) string {
	if len(repl) == 0 {
		return text
	}
	keys := make([]string, 0, len(repl))
	for k := range repl {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var b strings.Builder
	i := 0
	for i < len(text) {
		matched := false
		if i == 0 || !continuesBefore(text[i-1]) {
			for _, k := range keys {
				if strings.HasPrefix(text[i:], k) {
					end := i + len(k)
					if continuesAfter(text[end:]) {
						continue
					}
					b.WriteString(repl[k])
					i = end
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(text[i])
			i++
		}
	}
	return b.String()
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func continuesBefore(c byte) bool { return alnum(c) || c == '.' || c == ':' || c == '/' }

func continuesAfter(rest string) bool {
	if rest == "" {
		return false
	}
	if alnum(rest[0]) {
		return true
	}
	return (rest[0] == '.' || rest[0] == ':') && len(rest) > 1 && alnum(rest[1])
}

// ControlConfig is the lab's keepalived-owned configuration without any
// vipkit hook: the control the vipkit runs are compared against. It uses
// the same placeholders as contrib/keepalived, so Render gives each node
// its values. VRRPv3 allows the fractional advert_int that keeps
// scenarios short (0.1 s adverts; master down after ~0.3–0.4 s).
const ControlConfig = `global_defs {
    router_id lab
    vrrp_version 3
    script_user root
    enable_script_security
}

vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 0.1
    virtual_ipaddress {
        192.0.2.100/32
    }
    virtual_ipaddress_excluded {
        2001:db8::100/128
    }
}
`

// Keepalived describes one keepalived daemon of a node.
type Keepalived struct {
	Name   string // e.g. keepalived@node-a
	NS     string // full namespace name
	Dir    string // the node's directory: config, pid files, log
	Config string // rendered config text, written to Dir/keepalived.conf
	Binary string // /usr/sbin/keepalived when empty
	// SkipConfigTest starts without `keepalived -t` first.
	SkipConfigTest bool
	OnLine         func(at time.Duration, line string)
	Clock          func() time.Duration
}

// KeepalivedBinary is the daemon the lab runs unless told otherwise.
const KeepalivedBinary = "/usr/sbin/keepalived"

// StartKeepalived writes the config, checks it with `keepalived -t`, and
// starts the daemon in the foreground (-n) with console logging (-l -D,
// no syslog) and VRRP only (-P). Per-node pid files (-p -r -c -b) let
// several daemons share one host.
func StartKeepalived(k Keepalived) (*Proc, error) {
	bin := k.Binary
	if bin == "" {
		bin = KeepalivedBinary
	}
	if err := os.MkdirAll(k.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: create dir %s: %w", k.Name, k.Dir, err)
	}
	conf := filepath.Join(k.Dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(k.Config), 0o644); err != nil {
		return nil, fmt.Errorf("start %s: write config %s: %w", k.Name, conf, err)
	}
	if !k.SkipConfigTest {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-t", "-f", conf).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("start %s: config test of %s: %w: %s", k.Name, conf, err, strings.TrimSpace(string(out)))
		}
	}
	pid := func(n string) string { return filepath.Join(k.Dir, n) }
	return Start(Spec{
		Name: k.Name,
		NS:   k.NS,
		Path: bin,
		Args: []string{"-P", "-n", "-l", "-D", "-G", "-f", conf,
			"-p", pid("keepalived.pid"), "-r", pid("keepalived-vrrp.pid"),
			"-c", pid("keepalived-checkers.pid"), "-b", pid("keepalived-bfd.pid")},
		Dir:     k.Dir,
		LogPath: filepath.Join(k.Dir, "keepalived.log"),
		OnLine:  k.OnLine,
		Clock:   k.Clock,
	})
}
