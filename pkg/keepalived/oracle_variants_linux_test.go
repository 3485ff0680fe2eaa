package keepalived_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// variantBase is an instance every variant edits or adds to.
const variantBase = `global_defs {
  script_user root
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 150
  virtual_ipaddress {
    192.0.2.100/32
  }
  notify_master "/usr/local/sbin/vipctl up"
  notify_backup "/usr/local/sbin/vipctl down"
}
`

// variants are the constructs where a reader can go wrong, each written
// the way users write them; keepalived decides what they mean.
var variants = map[string]map[string]string{
	"quoting/single quotes in a hook": {"": strings.Replace(variantBase, `"/usr/local/sbin/vipctl down"`, `'/usr/local/sbin/vipctl down --x "a b"'`, 1)},
	"quoting/single-quoted track file": {"": "track_file f1 {\n  file '/run/vipkit/VI_1.fence'\n  weight 0\n}\n" +
		"track_file f2 {\n  file \"/run/vipkit/b c\"\n  weight 0\n}\n" + strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  track_file {\n    f1\n    f2\n  }\n", 1)},
	"order/trackers defined after the instance": {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  track_file {\n    f1\n  }\n  track_script {\n    s1\n  }\n", 1) +
		"track_file f1 {\n  file /run/vipkit/VI_1.fence\n  weight 0\n}\nvrrp_script s1 {\n  script \"/usr/local/sbin/fenced status --alive\"\n}\n"},
	"vrid clash":              {"": variantBase + strings.Replace(variantBase[strings.Index(variantBase, "vrrp_instance"):], "VI_1", "VI_2", 1)},
	"quoting/abutting quotes": {"": strings.Replace(variantBase, `notify_master "/usr/local/sbin/vipctl up"`, `notify_master "/usr/local/sbin/vipctl up"x y`+"\n  notify_fault ab\"c d\"e\n  notify_stop \"/usr/local/sbin/vipctl 'x y' \\\"q\\\" a\\\\ b\"", 1)},
	"quoting/unterminated":    {"": strings.Replace(variantBase, `notify_backup "/usr/local/sbin/vipctl down"`, `notify_backup "/usr/local/sbin/vipctl down`, 1)},
	"quoting/hook user words": {"": strings.Replace(variantBase, `notify_backup "/usr/local/sbin/vipctl down"`, "notify_backup /usr/local/sbin/vipctl down\n  notify_fault \"/usr/local/sbin/vipctl down\" root root\n  notify_stop \"/usr/local/sbin/vipctl down\" nosuchuser", 1)},
	"comments":                {"": strings.Replace(variantBase, `notify_backup "/usr/local/sbin/vipctl down"`, "notify_backup \"/usr/local/sbin/vipctl down #x\" # comment\n  notify_fault /usr/local/sbin/vipctl!bang\n  priority 100 ! other", 1)},
	"duplicates/hooks and values": {"": strings.Replace(variantBase, `notify_backup "/usr/local/sbin/vipctl down"`,
		"notify_backup \"/usr/local/sbin/vipctl down\"\n  notify_master \"/usr/local/sbin/vipctl second\"\n  notify_backup \"/usr/local/sbin/vipctl again\"\n  priority 90\n  virtual_router_id 52\n  virtual_ipaddress {\n    192.0.2.101\n  }\n  interface eth1", 1)},
	"duplicates/blocks": {"": variantBase + strings.Replace(variantBase[strings.Index(variantBase, "vrrp_instance"):], "priority 150", "priority 10", 1) +
		"vrrp_script s {\n  script \"/usr/local/sbin/a\"\n  script \"/usr/local/sbin/b\"\n}\nvrrp_script s {\n  script \"/usr/local/sbin/c\"\n}\n" +
		"track_file t {\n  file /run/a\n}\ntrack_file t {\n  file /run/b\n}\nvrrp_instance VI_3 {\n  interface eth0\n  virtual_router_id 53\n  track_script {\n    s\n  }\n  track_file {\n    t\n  }\n}\n"},
	"unknown/keyword":                      {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  prority 140\n  garp_master_delay 3\n", 1)},
	"unknown/block in instance":            {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  unicast_peers {\n    192.0.2.2\n  }\n", 1)},
	"unknown/block brace next line":        {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  unicast_peers\n  {\n    192.0.2.2\n  }\n", 1)},
	"unknown/top-level block":              {"": "vrrp_instanc VI_0 {\n  interface eth0\n}\n" + variantBase},
	"unknown/plain keyword with brace":     {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150 {\n  }\n", 1)},
	"blocks/one line and next-line braces": {"": "vrrp_instance VI_1\n{\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress { 192.0.2.100/32 192.0.2.101 }\n  track_script { s }\n  notify_master \"/usr/local/sbin/vipctl up\"\n}\nvrrp_script s\n{\n  script \"/usr/local/sbin/x\"\n}\n"},
	"blocks/extra parameters":              {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  track_interface eth0\n  virtual_ipaddress_excluded\n  {\n    192.0.2.200\n  }\n", 1)},
	"definitions": {"": "$VIP=192.0.2.100\n$N=7\n$CMD=/usr/local/sbin/vipctl\n$MULTI=a \\\nb\n" + strings.NewReplacer("192.0.2.100/32", "$VIP/32\n    ${VIP}\n    192.0.2.1$N\n    $VIP",
		`"/usr/local/sbin/vipctl up"`, `"$CMD up $VIP"`, `"/usr/local/sbin/vipctl down"`, `"${CMD} down $VIP;"`+"\n  notify \"$CMD $MULTI $UNDEFINED end\"", "virtual_router_id 51", "virtual_router_id 5${N}").Replace(variantBase)},
	"conditionals":      {"": strings.Replace(variantBase, "  priority 150\n", "@vipkit-oracle priority 140\n@other priority 130\n@^other notify_fault \"/usr/local/sbin/vipctl f\"\n@^vipkit-oracle notify_stop \"/usr/local/sbin/vipctl s\"\n", 1)},
	"line continuation": {"": strings.Replace(variantBase, `notify_backup "/usr/local/sbin/vipctl down"`, "notify_backup \"/usr/local/sbin/vipctl down\" \\\n  root\n  notify_fault /usr/local/sbin/vipctl\\\n  notify_stop \"/usr/local/sbin/vipctl \\\n  s\"", 1)},
	"includes/plain, relative and glob": {
		"":               "include conf.d/*.conf\ninclude /etc/keepalived/scripts.inc\n" + strings.Replace(variantBase, "    192.0.2.100/32\n", "    include vips/a.inc\n", 1),
		"conf.d/20.conf": "vrrp_instance VI_B {\n  interface eth1\n  virtual_router_id 60\n}\n",
		"conf.d/10.conf": "vrrp_instance VI_A {\n  interface eth0\n  virtual_router_id 61\n  track_script {\n    s\n  }\n}\n",
		"scripts.inc":    "vrrp_script s {\n  script \"/usr/local/sbin/check\"\n}\n",
		"vips/a.inc":     "192.0.2.100\n192.0.2.101\n",
	},
	"includes/quoted and missing": {
		"":           "include \"inc/a.conf\"\ninclude missing/*.conf\ninclude nothere.conf\n" + variantBase,
		"inc/a.conf": "vrrp_instance VI_INC {\n  interface eth0\n  virtual_router_id 60\n}\n",
	},
	"missing parameter": {"": strings.Replace(variantBase, "  priority 150\n", "  priority 150\n  debug\n", 1)},
	"no vrid":           {"": strings.Replace(variantBase, "  virtual_router_id 51\n", "  virtual_router_id 256\n", 1)},
	"invalid vips and address owner": {"": strings.NewReplacer("    192.0.2.100/32\n", "    192.0.2.100/32\n    192.0.2.300\n    '192.0.2.5'\n    <VIP>\n", "priority 150", "priority 255\n  track_script {\n    s weight 10\n  }").Replace(variantBase) +
		"vrrp_script s {\n  script \"/usr/local/sbin/check\"\n  weight 2\n}\n"},
	"sync group": {"": variantBase + "vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 52\n}\nvrrp_sync_group G {\n  group {\n    VI_1 VI_2\n  }\n  group {\n    VI_3\n  }\n  notify_master \"/usr/local/sbin/vipctl gm\"\n  notify_master \"/usr/local/sbin/vipctl gm2\"\n  notify \"/usr/local/sbin/vipctl notify\"\n}\n"},
	"fifo":       {"": strings.Replace(variantBase, "  script_user root\n", "  script_user root\n  vrrp_notify_fifo /run/vipkit/keepalived.fifo\n  vrrp_notify_fifo_script \"/usr/local/sbin/vipctl fifo\"\n  enable_script_security 0\n", 1)},
}

// TestOracleVariants: each construct is read as keepalived reads it, or
// the reader reports it.
func TestOracleVariants(t *testing.T) {
	requireOracle(t)
	for name, files := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := map[string][]byte{}
			for rel, text := range files {
				p := filepath.Join(confDir, "keepalived.conf")
				if rel != "" {
					p = filepath.Join(confDir, rel)
				}
				in[p] = []byte(text)
			}
			agree(t, in)
		})
	}
}
