package vipkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/keepalived"
)

// Mode is how keepalived and vipkit share the VIP: the contrib config a
// lab renders for every node.
type Mode string

const (
	// Hooks: keepalived owns the VIP; vipctl runs as notify_master/backup/
	// fault/stop (contrib keepalived-owned-fenced-netns.conf).
	Hooks Mode = "keepalived-owned"
	// Notify: keepalived owns the VIP; one generic notify hook, `vipctl
	// notify` (contrib keepalived-owned-notify.conf, fenced blocks added).
	Notify Mode = "keepalived-owned-notify"
	// FIFO: keepalived owns the VIP; `vipctl fifo` reads the notify FIFO
	// (contrib keepalived-owned-fifo.conf, fenced blocks added).
	FIFO Mode = "keepalived-owned-fifo"
	// Owned: vipctl adds and removes the VIP (contrib
	// vipctl-owned-fenced-netns.conf, VRRPv2 with whole-second adverts, on
	// keepalived 2.2.7; vipctl-owned-v3-fenced-netns.conf, VRRPv3 with
	// no_virtual_ipaddress, from 2.2.8).
	Owned Mode = "vipctl-owned"
)

// Modes lists every mode.
var Modes = []Mode{Hooks, Notify, FIFO, Owned}

// ParseMode accepts a mode's name or its short form (hooks, notify, fifo,
// owned).
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if s == string(m) || s == m.Short() {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown mode %q (hooks, notify, fifo, owned)", s)
}

// Short is the mode's one-word name.
func (m Mode) Short() string {
	switch m {
	case Hooks:
		return "hooks"
	case Notify:
		return "notify"
	case FIFO:
		return "fifo"
	case Owned:
		return "owned"
	}
	return string(m)
}

// Own reports whether vipctl owns the addresses.
func (m Mode) Own() bool { return m == Owned }

// V3 reports whether the mode runs VRRPv3 on keepalived ka: always where
// keepalived owns the VIP; where vipctl owns it, from keepalived 2.2.8
// (no_virtual_ipaddress). keepalived 2.2.7 drops an instance without VIPs
// under VRRPv3, so there vipctl-owned runs VRRPv2.
func (m Mode) V3(ka keepalived.Version) bool {
	return !m.Own() || ka.AtLeast(keepalived.NoVIPv3)
}

// AdvertInt is the advert interval the lab uses for the mode on keepalived
// ka: 0.1 s under VRRPv3, 1 s (VRRPv2's shortest) otherwise.
func (m Mode) AdvertInt(ka keepalived.Version) string {
	if !m.V3(ka) {
		return "1"
	}
	return "0.1"
}

// advert is AdvertInt as a duration.
func (m Mode) advert(ka keepalived.Version) time.Duration {
	f, _ := strconv.ParseFloat(m.AdvertInt(ka), 64)
	return time.Duration(f * float64(time.Second))
}

// MasterDown is VRRP's master-down interval for the backup (priority 100)
// on keepalived ka: 3 adverts plus the skew time (256−100)/256 adverts.
func (m Mode) MasterDown(ka keepalived.Version) time.Duration {
	a := m.advert(ka)
	return 3*a + a*156/256
}

// Skew is the backup's skew time on keepalived ka: how long it waits after
// a priority-0 advert (a resigning master) before it takes over.
func (m Mode) Skew(ka keepalived.Version) time.Duration { return m.advert(ka) * 156 / 256 }

// contribFile is the shipped keepalived.conf the mode starts from on
// keepalived ka.
func (m Mode) contribFile(ka keepalived.Version) string {
	switch m {
	case Notify:
		return "keepalived-owned-notify.conf"
	case FIFO:
		return "keepalived-owned-fifo.conf"
	case Owned:
		if m.V3(ka) {
			return "vipctl-owned-v3-fenced-netns.conf"
		}
		return "vipctl-owned-fenced-netns.conf"
	}
	return "keepalived-owned-fenced-netns.conf"
}

// The second instance of the fleet scenario (F5).
const (
	Instance2 = "VI_2"
	vip2v4    = "192.0.2.101"
	vip2v6    = "2001:db8::101"
)

// KeepalivedConfig composes the keepalived.conf (still with contrib's
// placeholders; lab.Render fills them per node) for a mode on keepalived
// ka, from the files in contribDir:
//
//   - every mode is guarded by fenced: the notify and FIFO files get the
//     fence track file and the fenced_alive check of the -fenced-netns
//     files;
//   - every mode serves both VIPs: where contrib's hook strings name only
//     192.0.2.100 (keepalived-owned) the lab adds 2001:db8::100 to them
//     and to virtual_ipaddress_excluded;
//   - with second, a copy of VI_1 named VI_2 (vrid 52, 192.0.2.101 and
//     2001:db8::101, its own track files) follows; it stays in FAULT
//     until fenced guards it.
func KeepalivedConfig(contribDir string, m Mode, ka keepalived.Version, second bool) (string, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(contribDir, name))
		if err != nil {
			return "", fmt.Errorf("compose keepalived config for %s: %w", m, err)
		}
		return string(b), nil
	}
	conf, err := read(m.contribFile(ka))
	if err != nil {
		return "", err
	}
	if m == Notify || m == FIFO {
		fenced, err := read("keepalived-owned-fenced-netns.conf")
		if err != nil {
			return "", err
		}
		if conf, err = addFencing(conf, fenced); err != nil {
			return "", fmt.Errorf("compose keepalived config for %s: %w", m, err)
		}
	}
	if !m.Own() {
		// contrib's keepalived-owned hook strings are IPv4-only.
		conf = strings.ReplaceAll(conf, ` 192.0.2.100"`, ` 192.0.2.100 2001:db8::100"`)
		if conf, err = insertAfterBlock(conf, "virtual_ipaddress", "    virtual_ipaddress_excluded {\n        2001:db8::100/128\n    }\n"); err != nil {
			return "", fmt.Errorf("compose keepalived config for %s: %w", m, err)
		}
	}
	if second {
		var parts []string
		for _, header := range []string{"track_file fence_VI_1", "track_file maint_VI_1", "vrrp_instance VI_1"} {
			b, _, _, ok := findBlock(conf, header, 0)
			if !ok {
				return "", fmt.Errorf("compose keepalived config for %s: no %q block", m, header)
			}
			parts = append(parts, b)
		}
		r := strings.NewReplacer("VI_1", Instance2, "virtual_router_id 51", "virtual_router_id 52",
			"192.0.2.100", vip2v4, "2001:db8::100", vip2v6)
		conf += "\n# The lab's second instance (fleet scenario).\n" + r.Replace(strings.Join(parts, "\n\n")) + "\n"
	}
	return conf, nil
}

// addFencing gives a keepalived-owned config without fenced the fence
// track file and the fenced_alive check of the -fenced-netns file, as an
// operator would merge them.
func addFencing(conf, fenced string) (string, error) {
	var blocks []string
	for _, header := range []string{"track_file fence_VI_1", "vrrp_script fenced_alive"} {
		b, _, _, ok := findBlock(fenced, header, 0)
		if !ok {
			return "", fmt.Errorf("add fencing: no %q block in the fenced config", header)
		}
		blocks = append(blocks, b)
	}
	i := strings.Index(conf, "\nvrrp_instance ")
	if i < 0 {
		return "", fmt.Errorf("add fencing: no vrrp_instance")
	}
	conf = conf[:i+1] + strings.Join(blocks, "\n\n") + "\n\n" + conf[i+1:]
	inst, from, to, ok := findBlock(conf, "vrrp_instance VI_1", 0)
	if !ok {
		return "", fmt.Errorf("add fencing: no vrrp_instance VI_1")
	}
	tf, tfrom, tto, ok := findBlock(inst, "track_file", 0)
	if !ok {
		return "", fmt.Errorf("add fencing: vrrp_instance VI_1 tracks no file")
	}
	tf = strings.Replace(tf, "{", "{\n        fence_VI_1", 1) + "\n    track_script {\n        fenced_alive\n    }"
	inst = inst[:tfrom] + tf + inst[tto:]
	return conf[:from] + inst + conf[to:], nil
}

// insertAfterBlock inserts text after the first block opened by header
// (at the start of a line, any indentation).
func insertAfterBlock(conf, header, text string) (string, error) {
	_, _, to, ok := findBlock(conf, header, 0)
	if !ok {
		return "", fmt.Errorf("no %q block", header)
	}
	if nl := strings.IndexByte(conf[to:], '\n'); nl >= 0 {
		to += nl + 1
	}
	return conf[:to] + text + conf[to:], nil
}

// findBlock finds the first block `header {...}` at or after offset start
// whose header begins a line, and returns it with its bounds [from, to).
// Braces in comments are ignored.
func findBlock(conf, header string, start int) (block string, from, to int, ok bool) {
	lineStart := start
	for lineStart < len(conf) {
		end := strings.IndexByte(conf[lineStart:], '\n')
		if end < 0 {
			end = len(conf)
		} else {
			end += lineStart
		}
		line := conf[lineStart:end]
		trimmed := strings.TrimLeft(line, " \t")
		if rest, found := strings.CutPrefix(trimmed, header); found && (rest == "" || rest[0] == ' ' || rest[0] == '{' || rest[0] == '\t') {
			from = lineStart + len(line) - len(trimmed)
			depth := 0
			for i := from; i < len(conf); i++ {
				switch conf[i] {
				case '#', '!':
					// Skip comments to the end of the line.
					if j := strings.IndexByte(conf[i:], '\n'); j >= 0 {
						i += j
					} else {
						i = len(conf) - 1
					}
				case '{':
					depth++
				case '}':
					depth--
					if depth == 0 {
						return conf[from : i+1], from, i + 1, true
					}
				}
			}
			return "", 0, 0, false
		}
		lineStart = end + 1
	}
	return "", 0, 0, false
}

// Timers of the lab's fenced: short, so scenarios stay short, and valid
// (TTL − margin ≥ TTL/3: at least one renewal interval of validity).
const (
	DefaultTTL      = 3 * time.Second
	DefaultMargin   = time.Second
	DefaultHoldDown = time.Second
)

// MetricsAddr is where every node's fenced serves Prometheus metrics, on
// the loopback of the node's own namespace (Lab.Metrics scrapes it).
const MetricsAddr = "127.0.0.1:9470"

// RefreshFor is how long the lab's vipctl keeps refreshing announcements
// after a takeover.
const RefreshFor = 3 * time.Second

// ClusterConf is one [[cluster]] of a node's vipkit.toml.
type ClusterConf struct {
	Name      string
	Endpoints []string
	TTL       time.Duration
	Margin    time.Duration
	HoldDown  time.Duration
	// RequestTimeout is the cluster's request_timeout; fenced's default
	// (renew_every) when zero.
	RequestTimeout time.Duration
}

// InstanceConf is one [[instance]].
type InstanceConf struct {
	Name    string
	VIPs    []string
	Own     bool
	Cluster string
	// Witness and Priority make the instance witnessed (docs/witness.md)
	// with this node's keepalived priority.
	Witness  bool
	Priority int
}

// TOML is the content of a node's vipkit.toml.
type TOML struct {
	Node        string
	StateDir    string
	VRRPPIDFile string
	Clusters    []ClusterConf
	Instances   []InstanceConf
}

// String renders the file (strict TOML, as pkg/config reads it).
func (t TOML) String() string {
	q := strconv.Quote
	list := func(vs []string) string {
		qs := make([]string, len(vs))
		for i, v := range vs {
			qs[i] = q(v)
		}
		return "[" + strings.Join(qs, ", ") + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the lab (test/lab/vipkit) for %s.\n", t.Node)
	fmt.Fprintf(&b, "node = %s\nstate_dir = %s\nlog_level = \"debug\"\n\n", q(t.Node), q(t.StateDir))
	// The shipped schedule, but refreshing for 3 s instead of 30 s: the
	// split-brain scenario waits for the master's refresher to end, so
	// that what heals a split is not a refresh that happens to fall in.
	fmt.Fprintf(&b, "[announce]\ncount = 3\ninterval = \"0s\"\nrefresh_every = \"1s\"\nrefresh_for = %q\n\n", RefreshFor.String())
	fmt.Fprintf(&b, "[fenced]\non_stop = \"fault\"\nreconcile_every = \"1s\"\nvrrp_pid_file = %s\nmetrics = %s\n", q(t.VRRPPIDFile), q(MetricsAddr))
	for _, c := range t.Clusters {
		ttl, margin, hold := c.TTL, c.Margin, c.HoldDown
		if ttl == 0 {
			ttl, margin, hold = DefaultTTL, DefaultMargin, DefaultHoldDown
		}
		fmt.Fprintf(&b, "\n[[cluster]]\nname = %s\nendpoints = %s\nprefix = \"/vipkit\"\nttl = %s\nmargin = %s\nhold_down = %s\n",
			q(c.Name), list(c.Endpoints), q(ttl.String()), q(margin.String()), q(hold.String()))
		if c.RequestTimeout != 0 {
			fmt.Fprintf(&b, "request_timeout = %s\n", q(c.RequestTimeout.String()))
		}
	}
	for _, in := range t.Instances {
		fmt.Fprintf(&b, "\n[[instance]]\nname = %s\ndev = \"eth0\"\nvips = %s\nown = %t\ncluster = %s\n",
			q(in.Name), list(in.VIPs), in.Own, q(in.Cluster))
		if in.Witness {
			fmt.Fprintf(&b, "witness = true\npriority = %d\n", in.Priority)
		}
	}
	return b.String()
}
