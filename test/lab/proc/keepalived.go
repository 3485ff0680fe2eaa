package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/test/repo"
)

// Placeholders used by the shipped configs in contrib/keepalived and by
// vipkit.toml examples; Render swaps them for one lab node's values.
const (
	PlaceholderInterface = "eth0"
	PlaceholderAddr4     = "192.0.2.11"
	PlaceholderAddr6     = "2001:db8::11"
	PlaceholderVipctl    = repo.Vipctl
	PlaceholderFenced    = repo.Fenced
	PlaceholderConfig    = repo.Config
	PlaceholderStateDir  = repo.StateDir
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

	Priority  int    // sets `priority N` in every vrrp_instance when > 0
	State     string // sets `state X` in every vrrp_instance when set (MASTER, BACKUP)
	AdvertInt string // sets `advert_int X` in every vrrp_instance when set
	RouterID  string // sets `router_id` in global_defs when set
	// Global sets keywords in global_defs (replacing an existing line of the
	// keyword, else adding one), e.g. {"vrrp_version": "3"}.
	Global map[string]string
	// Instance sets keywords in every vrrp_instance the same way, e.g.
	// {"advert_int": "0.1"}.
	Instance map[string]string
	// NotifyFIFO adds `notify_fifo PATH` to global_defs unless the config
	// already has a generic notify_fifo (see HasGenericFIFO).
	NotifyFIFO string
}

var (
	genericFIFORE = regexp.MustCompile(`(?m)^\s*notify_fifo\s`)
	globalDefsRE  = regexp.MustCompile(`(?m)^\s*global_defs\s*\{`)
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
	inst := map[string]string{}
	for k, val := range v.Instance {
		inst[k] = val
	}
	if v.Priority > 0 {
		if v.Priority > 255 {
			return "", fmt.Errorf("render config: priority %d out of range 1..255", v.Priority)
		}
		inst["priority"] = fmt.Sprint(v.Priority)
	}
	if v.State != "" {
		inst["state"] = v.State
	}
	if v.AdvertInt != "" {
		inst["advert_int"] = v.AdvertInt
	}
	glob := map[string]string{}
	for k, val := range v.Global {
		glob[k] = val
	}
	if v.RouterID != "" {
		glob["router_id"] = v.RouterID
	}
	if v.NotifyFIFO != "" && !HasGenericFIFO(out) {
		glob["notify_fifo"] = v.NotifyFIFO
	}
	if len(glob) > 0 && !globalDefsRE.MatchString(out) {
		out = "global_defs {\n}\n\n" + out
	}
	out = setKeywords(out, "global_defs", glob)
	out = setKeywords(out, "vrrp_instance", inst)
	return out, nil
}

// setKeywords sets keyword lines directly inside every block that opens
// with block (global_defs, vrrp_instance NAME): an existing line for the
// keyword at the block's top level is replaced, otherwise a line is added
// right after the opening brace. Nested blocks are left alone.
func setKeywords(text, block string, kv map[string]string) string {
	if len(kv) == 0 {
		return text
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := strings.SplitAfter(text, "\n")
	var out []string
	depth := 0    // brace depth before the current line
	inBlock := -1 // depth inside the matched block, -1 when outside
	var seen map[string]bool
	var insertAt int
	for _, line := range lines {
		code := line
		if i := strings.IndexAny(code, "#!"); i >= 0 {
			code = code[:i]
		}
		fields := strings.Fields(code)
		if inBlock < 0 && len(fields) > 0 && fields[0] == block && strings.Contains(code, "{") {
			out = append(out, line)
			depth += strings.Count(code, "{") - strings.Count(code, "}")
			inBlock = depth
			seen = map[string]bool{}
			insertAt = len(out)
			continue
		}
		if inBlock >= 0 && depth == inBlock && len(fields) > 0 {
			if val, ok := kv[fields[0]]; ok && !strings.Contains(code, "{") {
				indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
				line = indent + fields[0] + " " + val + "\n"
				seen[fields[0]] = true
			}
		}
		depth += strings.Count(code, "{") - strings.Count(code, "}")
		if inBlock >= 0 && depth < inBlock {
			// The block closes: add what it lacked after its opening line.
			var add []string
			for _, k := range keys {
				if !seen[k] {
					add = append(add, "    "+k+" "+kv[k]+"\n")
				}
			}
			out = append(out[:insertAt], append(add, out[insertAt:]...)...)
			inBlock = -1
		}
		out = append(out, line)
	}
	return strings.Join(out, "")
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
	Binary string // repo.Keepalived() when empty
	// Env is extra environment for the daemon, which passes it on to the
	// hooks and scripts it runs (e.g. VIPKIT_CONFIG).
	Env []string
	// SkipConfigTest starts without `keepalived -t` first.
	SkipConfigTest bool
	OnLine         func(at time.Duration, line string)
	Clock          func() time.Duration
}

// StartKeepalived writes the config, checks it with `keepalived -t`, and
// starts the daemon in the foreground (-n) with console logging (-l -D,
// no syslog) and VRRP only (-P). Per-node pid files (-p -r -c -b) let
// several daemons share one host.
func StartKeepalived(k Keepalived) (*Proc, error) {
	bin := k.Binary
	if bin == "" {
		bin = repo.Keepalived()
	}
	if err := os.MkdirAll(k.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: create dir %s: %w", k.Name, k.Dir, err)
	}
	conf := filepath.Join(k.Dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(k.Config), 0o644); err != nil {
		return nil, fmt.Errorf("start %s: write config %s: %w", k.Name, conf, err)
	}
	if !k.SkipConfigTest {
		if err := ConfigTest(bin, conf, filepath.Join(k.Dir, "keepalived-configtest.log")); err != nil {
			return nil, fmt.Errorf("start %s: %w", k.Name, err)
		}
	}
	pid := func(n string) string { return filepath.Join(k.Dir, n) }
	for _, n := range []string{"keepalived.pid", "keepalived-vrrp.pid", "keepalived-checkers.pid", "keepalived-bfd.pid"} {
		removeStalePIDFile(pid(n))
	}
	return Start(Spec{
		Name: k.Name,
		NS:   k.NS,
		Path: bin,
		Args: []string{"-P", "-n", "-l", "-D", "-G", "-f", conf,
			"-p", pid("keepalived.pid"), "-r", pid("keepalived-vrrp.pid"),
			"-c", pid("keepalived-checkers.pid"), "-b", pid("keepalived-bfd.pid")},
		Dir:     k.Dir,
		Env:     k.Env,
		LogPath: filepath.Join(k.Dir, "keepalived.log"),
		OnLine:  k.OnLine,
		Clock:   k.Clock,
	})
}

// removeStalePIDFile removes a pid file whose process is gone or a
// zombie. keepalived refuses to start ("daemon is already running") while
// its VRRP child's pid file names a live PID, and a zombie counts: a
// SIGKILLed keepalived's VRRP child stays one where PID 1 does not reap
// orphans (some containers), so a restarted keepalived would never run.
func removeStalePIDFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		_ = os.Remove(path)
		return
	}
	if start, _ := statFields(pid); start == 0 {
		_ = os.Remove(path)
	}
}

// ConfigTest runs `keepalived -t` on a config file and writes its output
// to logPath (when set). keepalived 2.2.7 exits 3 when the config cannot
// run, 4 when it has errors but would run, 5 when it would run with
// warnings (e.g. an instance without VIPs, as in the vipctl-owned
// configs): 4 and 5 are accepted, their output is in the log, unless the
// output says keepalived will drop an instance.
func ConfigTest(bin, conf, logPath string) error {
	if bin == "" {
		bin = repo.Keepalived()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-t", "-f", conf).CombinedOutput()
	if logPath != "" {
		_ = os.WriteFile(logPath, out, 0o644)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && (exit.ExitCode() == 4 || exit.ExitCode() == 5) {
		// Exit 5 also covers an instance keepalived will drop, e.g. one
		// without VIPs under VRRPv3: "No VIP specified; at least one is
		// required".
		if strings.Contains(string(out), "is required") {
			return fmt.Errorf("config test of %s: keepalived would drop an instance: %s", conf, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("config test of %s: %w: %s", conf, err, strings.TrimSpace(string(out)))
	}
	return nil
}
