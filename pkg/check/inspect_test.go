package check

import (
	"fmt"
	"github.com/vipkit/vipkit/pkg/keepalived"
	"strings"
	"testing"
	"time"
)

const (
	testVipctl = "/usr/local/sbin/vipctl"
	testFenced = "/usr/local/sbin/fenced"
)

// baseConf is a clean keepalived-owned instance guarded by fenced; every
// Inspect case below is one edit of it.
const baseConf = `global_defs {
    script_user root
    enable_script_security
}
track_file fence_VI_1 {
    file "/run/vipkit/VI_1.fence"
    weight 0
    init_file 1 overwrite
}
track_file maint_VI_1 {
    file "/run/vipkit/VI_1.maint"
    weight 0
}
vrrp_track_process fenced {
    process fenced
    weight 0
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.100
    }
    track_file {
        fence_VI_1
        maint_VI_1
    }
    track_process {
        fenced
    }
    notify_master "/usr/local/sbin/vipctl up --dev eth0 192.0.2.100"
    notify_backup "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"
    notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"
    notify_stop "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"
    notify_master_rx_lower_pri "/usr/local/sbin/vipctl announce --dev eth0 192.0.2.100"
    higher_prio_send_advert
}
`

// aliveScript is the fenced_alive check of the -netns contrib configs.
const aliveScript = "vrrp_script fenced_alive {\n    script \"/usr/local/sbin/fenced status --alive\"\n    interval 1\n    fall 1\n    rise 1\n    weight 0\n}\n"

// hooksOff removes the four per-state hooks from baseConf.
var hooksOff = []string{
	`    notify_master "/usr/local/sbin/vipctl up --dev eth0 192.0.2.100"` + "\n", "",
	`    notify_backup "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"` + "\n", "",
	`    notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"` + "\n", "",
	`    notify_stop "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"` + "\n", "",
}

func baseExpect() Expect {
	return Expect{
		VipctlPath:        testVipctl,
		FencedPath:        testFenced,
		KeepalivedVersion: "2.2.7",
		ScriptUserExists:  func(name string) bool { return name == "root" },
		Instances: []ExpectedInstance{{
			Name: "VI_1", VIPs: []string{"192.0.2.100"},
			TrackFile: "/run/vipkit/VI_1.fence", MaintenanceFile: "/run/vipkit/VI_1.maint",
		}},
	}
}

// want is an expected issue: severity, subject, a message fragment and,
// when not "", the line.
type want struct {
	sev              Severity
	subject, message string
	line             string
}

func TestInspect(t *testing.T) {
	tests := []struct {
		name string
		// edit is pairs of old, new strings replaced in baseConf;
		// append is added at the end.
		edit   []string
		append string
		// prepend goes before everything: keepalived resolves a tracker
		// only if it is defined above the instance.
		prepend string
		expect  func(e *Expect)
		want    []want
	}{
		{name: "clean"},

		// Script security.
		{name: "no enable_script_security", edit: []string{"    enable_script_security\n", ""},
			want: []want{{Warning, "global_defs", "enable_script_security is not set", "keepalived.conf:1"}}},
		{name: "no script_user, no keepalived_script", edit: []string{"    script_user root\n", ""},
			want: []want{{Error, "global_defs", "silently drops every hook", "keepalived.conf:1"}}},
		{name: "no script_user, keepalived_script exists", edit: []string{"    script_user root\n", ""},
			expect: func(e *Expect) { e.ScriptUserExists = func(string) bool { return true } },
			want: []want{
				{Error, "vrrp_instance VI_1", `notify_master runs vipctl as user "keepalived_script"`, "keepalived.conf:32"},
				{Error, "vrrp_instance VI_1", `notify_master_rx_lower_pri runs vipctl as user "keepalived_script"`, "keepalived.conf:36"},
				{Error, "vrrp_instance VI_1", `notify_backup runs vipctl as user "keepalived_script"`, ""},
				{Error, "vrrp_instance VI_1", `notify_fault runs vipctl as user "keepalived_script"`, ""},
				{Error, "vrrp_instance VI_1", `notify_stop runs vipctl as user "keepalived_script"`, ""},
			}},
		{name: "user unknown: checks that need it are skipped", edit: []string{"    script_user root\n", ""},
			expect: func(e *Expect) { e.ScriptUserExists = nil }},
		{name: "script_user does not exist", edit: []string{"script_user root", "script_user vipkit"},
			want: []want{{Error, "global_defs", `script_user "vipkit" does not exist`, ""}}},
		{name: "non-root hook user", edit: []string{`notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"`, `notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100" nobody`},
			expect: func(e *Expect) { e.ScriptUserExists = func(n string) bool { return n == "root" || n == "nobody" } },
			want:   []want{{Error, "vrrp_instance VI_1", `notify_fault runs vipctl as user "nobody"`, "keepalived.conf:35"}}},

		// Instances and groups.
		{name: "instance missing", expect: func(e *Expect) { e.Instances[0].Name = "VI_2" },
			want: []want{{Error, "vrrp_instance VI_2", "keepalived.conf has no vrrp_instance VI_2", ""}}},
		{name: "expected group missing", expect: func(e *Expect) { e.Instances[0].Group = "VG_1" },
			want: []want{{Error, "vrrp_instance VI_1", "puts VI_1 in sync group VG_1, but keepalived.conf lists it in no vrrp_sync_group", ""}}},
		{name: "unexpected group", append: "vrrp_sync_group VG_1 {\n group {\n  VI_1\n }\n}\n",
			want: []want{{Warning, "vrrp_instance VI_1", "vipctl ignores the group's events", ""}}},

		// Witness.
		{name: "witness matches, track_process only", expect: func(e *Expect) { e.Instances[0].Witness, e.Instances[0].Priority = true, 100 },
			want: []want{{Info, "vrrp_instance VI_1", "a planned handover to a node of lower priority is pre-granted", ""}, {Warning, "vrrp_instance VI_1", "a hung fenced (stopped, not dead)", ""}}},
		{name: "witness with fenced_alive within the margin", prepend: aliveScript, edit: []string{"    track_process {\n", "    track_script {\n        fenced_alive\n    }\n    track_process {\n"},
			expect: func(e *Expect) {
				e.Instances[0].Witness, e.Instances[0].Priority, e.Instances[0].Margin = true, 100, 1500*time.Millisecond
			},
			want: []want{{Info, "vrrp_instance VI_1", "a planned handover to a node of lower priority is pre-granted", ""}}},
		{name: "witness with fenced_alive slower than the margin", prepend: aliveScript, edit: []string{"    track_process {\n", "    track_script {\n        fenced_alive\n    }\n    track_process {\n"},
			expect: func(e *Expect) {
				e.Instances[0].Witness, e.Instances[0].Priority, e.Instances[0].Margin = true, 100, time.Second
			},
			want: []want{{Info, "vrrp_instance VI_1", "planned handover", ""}, {Error, "vrrp_instance VI_1", "notices a hung fenced within interval × fall = 1s, not within the margin 1s", "keepalived.conf:1"}}},
		{name: "witness priority differs", expect: func(e *Expect) { e.Instances[0].Witness, e.Instances[0].Priority = true, 150 },
			want: []want{{Error, "vrrp_instance VI_1", "gives the witnessed VI_1 priority 150, keepalived.conf 100", "keepalived.conf:18"}, {Info, "vrrp_instance VI_1", "planned handover", ""}, {Warning, "vrrp_instance VI_1", "a hung fenced (stopped, not dead)", ""}}},
		{name: "witness nopreempt differs", expect: func(e *Expect) {
			e.Instances[0].Witness, e.Instances[0].Priority, e.Instances[0].Nopreempt = true, 100, true
		}, want: []want{{Error, "vrrp_instance VI_1", "says nopreempt = true for the witnessed VI_1, keepalived.conf false", ""}, {Info, "vrrp_instance VI_1", "planned handover", ""}, {Warning, "vrrp_instance VI_1", "a hung fenced (stopped, not dead)", ""}}},
		// Hooks.
		{name: "no hooks", edit: hooksOff,
			want: []want{{Error, "vrrp_instance VI_1", "vipctl is not told of every transition: no notify_master; no notify_backup; no notify_fault; no notify_stop; no vrrp_notify_fifo", "keepalived.conf:18"}}},
		{name: "per-state incomplete", edit: []string{`    notify_stop "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"` + "\n", ""},
			want: []want{{Error, "vrrp_instance VI_1", "vipctl is not told of every transition: no notify_stop;", ""}}},
		{name: "per-state wrong subcommand", edit: []string{"vipctl down --dev eth0 192.0.2.100", "vipctl up --dev eth0 192.0.2.100"},
			want: []want{{Error, "vrrp_instance VI_1", "notify_backup runs \"/usr/local/sbin/vipctl up --dev eth0 192.0.2.100\", not `/usr/local/sbin/vipctl down`", ""}}},
		{name: "per-state runs another script", edit: []string{`notify_master "/usr/local/sbin/vipctl up`, `notify_master "/etc/keepalived/master.sh up`},
			want: []want{{Error, "vrrp_instance VI_1", "notify_master runs \"/etc/keepalived/master.sh up --dev eth0 192.0.2.100\"", ""}}},
		{name: "generic notify", edit: append(hooksOff, "    track_process {", "    notify \"/usr/local/sbin/vipctl notify --config /etc/vipkit/vipkit.toml\"\n    track_process {")},
		{name: "generic notify with wrong subcommand", edit: append(hooksOff, "    track_process {", "    notify \"/usr/local/sbin/vipctl up --dev eth0 192.0.2.100\"\n    track_process {"),
			want: []want{{Error, "vrrp_instance VI_1", "notify runs \"/usr/local/sbin/vipctl up --dev eth0 192.0.2.100\", not `/usr/local/sbin/vipctl notify` (keepalived appends", ""}}},
		{name: "sync group notify covers its members", edit: hooksOff,
			append: "vrrp_sync_group VG_1 {\n group {\n  VI_1\n }\n notify \"/usr/local/sbin/vipctl notify\"\n}\n",
			expect: func(e *Expect) { e.Instances[0].Group = "VG_1" }},
		{name: "notify FIFO", edit: append(hooksOff, "    enable_script_security\n", "    enable_script_security\n    vrrp_notify_fifo /run/vipkit/keepalived.fifo\n    vrrp_notify_fifo_script \"/usr/local/sbin/vipctl fifo\"\n")},
		{name: "shared notify_fifo", edit: append(hooksOff, "    enable_script_security\n", "    enable_script_security\n    notify_fifo /run/vipkit/keepalived.fifo\n    notify_fifo_script \"/usr/local/sbin/vipctl fifo --config /etc/vipkit/vipkit.toml\"\n")},
		{name: "FIFO read by another script", edit: append(hooksOff, "    enable_script_security\n", "    enable_script_security\n    vrrp_notify_fifo /run/vipkit/keepalived.fifo\n    vrrp_notify_fifo_script /usr/local/bin/reader\n"),
			want: []want{{Error, "vrrp_instance VI_1", "the notify FIFO's script is not `/usr/local/sbin/vipctl fifo`", ""}}},
		{name: "told twice", edit: []string{"    track_process {", "    notify \"/usr/local/sbin/vipctl notify\"\n    track_process {"},
			want: []want{{Warning, "vrrp_instance VI_1", "more than once (notify, notify_master/backup/fault/stop)", ""}}},
		{name: "notify FIFO beside the per-state hooks", edit: []string{"    enable_script_security\n", "    enable_script_security\n    vrrp_notify_fifo /run/vipkit/keepalived.fifo\n    vrrp_notify_fifo_script \"/usr/local/sbin/vipctl fifo --config /etc/vipkit/vipkit.toml\"\n"}},
		{name: "notify FIFO beside two kinds of hook", edit: []string{"    enable_script_security\n", "    enable_script_security\n    vrrp_notify_fifo /run/vipkit/keepalived.fifo\n    vrrp_notify_fifo_script \"/usr/local/sbin/vipctl fifo\"\n",
			"    track_process {", "    notify \"/usr/local/sbin/vipctl notify\"\n    track_process {"},
			want: []want{{Warning, "vrrp_instance VI_1", "more than once (notify, notify_master/backup/fault/stop, the notify FIFO)", ""}}},
		{name: "stale vipctl path", edit: []string{`notify_master "/usr/local/sbin/vipctl up`, `notify_master "/usr/sbin/vipctl up`},
			want: []want{
				{Error, "vrrp_instance VI_1", "notify_master runs /usr/sbin/vipctl, but vipctl is installed as /usr/local/sbin/vipctl", "keepalived.conf:33"},
				{Error, "vrrp_instance VI_1", "notify_master runs \"/usr/sbin/vipctl up --dev eth0 192.0.2.100\", not `/usr/local/sbin/vipctl up`", ""},
			}},
		{name: "unquoted command", edit: []string{`notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"`, `notify_fault /usr/local/sbin/vipctl down`},
			want: []want{
				{Error, "vrrp_instance VI_1", `keepalived reads "down" after the command as the user to run it as`, "keepalived.conf:35"},
				{Error, "vrrp_instance VI_1", "notify_fault runs \"/usr/local/sbin/vipctl\", not `/usr/local/sbin/vipctl down`", ""},
			}},
		{name: "open quote", edit: []string{`notify_stop "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"`, `notify_stop "/usr/local/sbin/vipctl down --dev 'eth0 192.0.2.100"`},
			want: []want{
				{Error, "vrrp_instance VI_1", "keepalived will not run this notify_stop: split command", "keepalived.conf:36"},
				{Error, "vrrp_instance VI_1", "notify_stop is not run at all", ""},
			}},

		// Who owns the VIPs.
		{name: "own but listed", expect: func(e *Expect) { e.Instances[0].Own = true }, edit: []string{"vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{
				{Error, "vrrp_instance VI_1", "192.0.2.100 is in virtual_ipaddress although vipctl owns it", "keepalived.conf:24"},
			}},
		{name: "own but hooks without --own", expect: func(e *Expect) { e.Instances[0].Own = true }, edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", ""},
			want: []want{
				{Error, "vrrp_instance VI_1", "notify_master runs vipctl without --own", "keepalived.conf:30"},
				{Error, "vrrp_instance VI_1", "notify_backup runs vipctl without --own", ""},
				{Error, "vrrp_instance VI_1", "notify_fault runs vipctl without --own", ""},
				{Error, "vrrp_instance VI_1", "notify_stop runs vipctl without --own", ""},
			}},
		{name: "keepalived-owned but not listed", expect: func(e *Expect) { e.Instances[0].VIPs = append(e.Instances[0].VIPs, "2001:db8::100") },
			want: []want{
				{Error, "vrrp_instance VI_1", "2001:db8::100 is not in virtual_ipaddress", "keepalived.conf:18"},
				{Error, "vrrp_instance VI_1", "notify_master names its VIPs itself (--dev) but not 2001:db8::100", ""},
				{Error, "vrrp_instance VI_1", "notify_master_rx_lower_pri names its VIPs itself (--dev) but not 2001:db8::100", ""},
				{Error, "vrrp_instance VI_1", "notify_backup names its VIPs itself (--dev) but not 2001:db8::100", ""},
				{Error, "vrrp_instance VI_1", "notify_fault names its VIPs itself (--dev) but not 2001:db8::100", ""},
				{Error, "vrrp_instance VI_1", "notify_stop names its VIPs itself (--dev) but not 2001:db8::100", ""},
			}},
		{name: "excluded counts as listed", edit: []string{"        192.0.2.100\n    }\n", "        192.0.2.100\n    }\n    virtual_ipaddress_excluded {\n        2001:db8::100\n    }\n", " 192.0.2.100\"", " 192.0.2.100 2001:db8::100\""},
			expect: func(e *Expect) { e.Instances[0].VIPs = append(e.Instances[0].VIPs, "2001:db8::100") }},
		{name: "announce hook names another VIP", edit: []string{"vipctl announce --dev eth0 192.0.2.100", "vipctl announce --dev eth0 192.0.2.99"},
			want: []want{{Error, "vrrp_instance VI_1", "notify_master_rx_lower_pri names its VIPs itself (--dev) but not 192.0.2.100", "keepalived.conf:37"}}},
		// Split-brain heal (F3).
		{name: "loser steps down silently", edit: []string{"    higher_prio_send_advert\n", ""},
			want: []want{{Warning, "vrrp_instance VI_1", "vrrp_higher_prio_send_advert is off", "keepalived.conf:18"}}},
		{name: "higher prio advert from global_defs", edit: []string{"    higher_prio_send_advert\n", "", "    enable_script_security\n", "    enable_script_security\n    vrrp_higher_prio_send_advert\n"}},
		{name: "instance turns higher prio advert off", edit: []string{"    higher_prio_send_advert\n", "    higher_prio_send_advert off\n", "    enable_script_security\n", "    enable_script_security\n    vrrp_higher_prio_send_advert\n"},
			want: []want{{Warning, "vrrp_instance VI_1", "vrrp_higher_prio_send_advert is off", "keepalived.conf:19"}}},
		{name: "survivor not told", edit: []string{`    notify_master_rx_lower_pri "/usr/local/sbin/vipctl announce --dev eth0 192.0.2.100"` + "\n", ""},
			want: []want{{Warning, "vrrp_instance VI_1", "vipctl is not told when this master hears a lower priority", "keepalived.conf:18"}}},
		{name: "keepalived-owned hook with --own", edit: []string{"vipctl up --dev", "vipctl up --own --dev"},
			want: []want{{Error, "vrrp_instance VI_1", "notify_master runs vipctl with --own, but keepalived owns the VIPs", "keepalived.conf:33"}}},
		{name: "own without VIPs under VRRPv3", expect: func(e *Expect) { e.Instances[0].Own = true },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "    version 3\n", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{{Error, "vrrp_instance VI_1", "keepalived rejects a vrrp_instance without VIPs under VRRPv3 or strict mode", ""}}},
		{name: "own without VIPs under vrrp_strict", expect: func(e *Expect) { e.Instances[0].Own = true },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev", "    enable_script_security\n", "    enable_script_security\n    vrrp_strict\n"},
			want: []want{{Error, "vrrp_instance VI_1", "under VRRPv3 or strict mode", ""}}},
		// vipctl-owned without VIPs, by keepalived release (VRRPv3 needs
		// no_virtual_ipaddress, keepalived 2.2.8 and later).
		{name: "own VRRPv2 on 2.2.7", expect: func(e *Expect) { e.Instances[0].Own = true },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"}},
		{name: "own VRRPv2 on 2.3.3: VRRPv3 recommended", expect: func(e *Expect) { e.Instances[0].Own = true; e.KeepalivedVersion = "2.3.3" },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{{Info, "vrrp_instance VI_1", "keepalived 2.3.3 runs an instance without VIPs under VRRPv3 when it says no_virtual_ipaddress", ""}}},
		{name: "own VRRPv2 on 2.2.8: VRRPv3 recommended", expect: func(e *Expect) { e.Instances[0].Own = true; e.KeepalivedVersion = "1:2.2.8-1" },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{{Info, "vrrp_instance VI_1", "keepalived 2.2.8 runs an instance without VIPs under VRRPv3", ""}}},
		{name: "own VRRPv2, version unknown", expect: func(e *Expect) { e.Instances[0].Own = true; e.KeepalivedVersion = "" },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"}},
		{name: "own VRRPv3 no_virtual_ipaddress on 2.3.3", expect: func(e *Expect) { e.Instances[0].Own = true; e.KeepalivedVersion = "2.3.3" },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "    version 3\n    advert_int 0.1\n    no_virtual_ipaddress\n", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"}},
		{name: "own VRRPv3 without no_virtual_ipaddress on 2.3.3", expect: func(e *Expect) { e.Instances[0].Own = true; e.KeepalivedVersion = "2.3.3" },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "    version 3\n", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{{Error, "vrrp_instance VI_1", "unless it says no_virtual_ipaddress", ""}}},
		{name: "own VRRPv3 no_virtual_ipaddress on 2.2.7", expect: func(e *Expect) { e.Instances[0].Own = true },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "    version 3\n    no_virtual_ipaddress\n", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{{Error, "vrrp_instance VI_1", "keepalived 2.2.7 does not know no_virtual_ipaddress (keepalived 2.2.8 and later): it ignores it and, under VRRPv3 or strict mode, rejects the instance", ""}}},
		{name: "own VRRPv2 no_virtual_ipaddress on 2.2.7", expect: func(e *Expect) { e.Instances[0].Own = true },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "    no_virtual_ipaddress\n", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev"},
			want: []want{{Warning, "vrrp_instance VI_1", "keepalived 2.2.7 does not know no_virtual_ipaddress (keepalived 2.2.8 and later): it ignores it", ""}}},
		{name: "own no_virtual_ipaddress under vrrp_strict on 2.3.3", expect: func(e *Expect) { e.Instances[0].Own = true; e.KeepalivedVersion = "2.3.3" },
			edit: []string{"    virtual_ipaddress {\n        192.0.2.100\n    }\n", "    version 3\n    no_virtual_ipaddress\n", "vipctl up --dev", "vipctl up --own --dev", "vipctl down --dev", "vipctl down --own --dev", "    enable_script_security\n", "    enable_script_security\n    vrrp_strict\n"},
			want: []want{{Error, "vrrp_instance VI_1", "keepalived clears no_virtual_ipaddress under strict mode", ""}}},
		{name: "keepalived-owned on 2.3.3: no recommendation", expect: func(e *Expect) { e.KeepalivedVersion = "2.3.3" }},

		// fenced's track file.
		{name: "no fence block", edit: []string{`file "/run/vipkit/VI_1.fence"`, `file "/run/other.fence"`},
			want: []want{{Error, "vrrp_instance VI_1", "no track_file block watches /run/vipkit/VI_1.fence", ""}}},
		{name: "fence weight unset", edit: []string{"    weight 0\n    init_file 1 overwrite\n", "    init_file 1 overwrite\n"},
			want: []want{{Error, "track_file fence_VI_1", "weight is 1 (1 when unset)", "keepalived.conf:5"}}},
		{name: "fence reverse", edit: []string{"    weight 0\n    init_file 1 overwrite\n", "    weight 0 reverse\n    init_file 1 overwrite\n"},
			want: []want{{Error, "track_file fence_VI_1", "weight 0 reverse inverts /run/vipkit/VI_1.fence", ""}}},
		{name: "fence without overwrite", edit: []string{"init_file 1 overwrite", "init_file 1"},
			want: []want{{Error, "track_file fence_VI_1", "init_file 1 overwrite is missing", ""}}},
		{name: "fence initialised to 0", edit: []string{"init_file 1 overwrite", "init_file overwrite"},
			want: []want{{Error, "track_file fence_VI_1", "init_file 1 overwrite is missing", ""}}},
		{name: "fence not referenced", edit: []string{"        fence_VI_1\n", ""},
			want: []want{{Error, "vrrp_instance VI_1", "track_file fence_VI_1 is not referenced by vrrp_instance VI_1", ""}}},
		{name: "fence reference overrides weight", edit: []string{"        fence_VI_1\n", "        fence_VI_1 weight -50\n"},
			want: []want{{Error, "vrrp_instance VI_1", "the reference to track_file fence_VI_1 overrides its weight 0 (weight -50)", "keepalived.conf:27"}}},
		{name: "fence referenced by the sync group", edit: []string{"        fence_VI_1\n", ""},
			append: "vrrp_sync_group VG_1 {\n group {\n  VI_1\n }\n track_file {\n  fence_VI_1\n }\n}\n",
			expect: func(e *Expect) { e.Instances[0].Group = "VG_1" }},
		{name: "deprecated vrrp_track_file", edit: []string{"track_file fence_VI_1 {", "vrrp_track_file fence_VI_1 {"}},

		// The maintenance file.
		{name: "maintenance overwritten with 0", edit: []string{"    file \"/run/vipkit/VI_1.maint\"\n", "    file \"/run/vipkit/VI_1.maint\"\n    init_file 0 overwrite\n"},
			want: []want{{Error, "track_file maint_VI_1", "a restart would silently end a handover or maintenance", "keepalived.conf:10"}}},
		{name: "maintenance overwritten with 1", edit: []string{"    file \"/run/vipkit/VI_1.maint\"\n", "    file \"/run/vipkit/VI_1.maint\"\n    init_file 1 overwrite\n"},
			want: []want{{Warning, "track_file maint_VI_1", "puts the node in maintenance at every keepalived start", ""}}},
		{name: "maintenance created", edit: []string{"    file \"/run/vipkit/VI_1.maint\"\n", "    file \"/run/vipkit/VI_1.maint\"\n    init_file\n"}},
		{name: "no maintenance block", edit: []string{"        maint_VI_1\n", "", "track_file maint_VI_1 {", "track_file unused {", "/run/vipkit/VI_1.maint", "/run/other"},
			want: []want{
				{Warning, "vrrp_instance VI_1", "no track_file block watches /run/vipkit/VI_1.maint: vipctl handover could not hand the VIP over", ""},
				{Info, "track_file unused", "tracked by no instance or sync group: keepalived drops it", "keepalived.conf:10"},
			}},

		// fenced liveness.
		{name: "no liveness", edit: []string{"    track_process {\n        fenced\n    }\n", ""},
			want: []want{{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", "keepalived.conf:18"}}},
		{name: "liveness by track_script", edit: []string{"    track_process {\n        fenced\n    }\n", "    track_script {\n        fenced_alive\n    }\n"},
			prepend: "vrrp_script fenced_alive {\n script \"/usr/local/sbin/fenced status --alive\"\n interval 1\n fall 1\n rise 1\n weight 0\n}\n"},
		{name: "liveness script with a weight", edit: []string{"    track_process {\n        fenced\n    }\n", "    track_script {\n        fenced_alive\n    }\n"},
			prepend: "vrrp_script fenced_alive {\n script \"/usr/local/sbin/fenced status --alive\"\n weight 10\n}\n",
			want:    []want{{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", ""}}},
		{name: "track_process weight unset", edit: []string{"    process fenced\n    weight 0\n", "    process fenced\n"},
			want: []want{{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", ""}}},
		{name: "top-level track_process", edit: []string{"vrrp_track_process fenced {", "track_process fenced {"},
			want: []want{
				{Error, "track_process fenced", "keepalived has no top-level track_process block", "keepalived.conf:14"},
				{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", ""},
			}},
		{name: "stale fenced path", edit: []string{"    track_process {\n        fenced\n    }\n", "    track_script {\n        fenced_alive\n    }\n"},
			prepend: "vrrp_script fenced_alive {\n script \"/usr/bin/fenced status --alive\"\n}\n",
			want: []want{
				{Error, "vrrp_script fenced_alive", "script runs /usr/bin/fenced, but fenced is installed as /usr/local/sbin/fenced", ""},
				{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", ""},
			}},

		// virtual_routes on keepalived before 2.3.2.
		{name: "typed route without prepend", edit: []string{"    track_process {", "    virtual_routes {\n        local 192.0.2.100/32 dev eth0 src 192.0.2.11 table local scope host\n    }\n    track_process {"},
			want: []want{{Error, "vrrp_instance VI_1", "has route type local but no `prepend`: keepalived before 2.3.2 sends it with NLM_F_EXCL, the kernel answers EEXIST and keepalived silently does not install it (fixed by keepalived commit 9309a4be)", "keepalived.conf:31"}}},
		{name: "typed route with prepend", edit: []string{"    track_process {", "    virtual_routes {\n        local 192.0.2.100/32 dev eth0 src 192.0.2.11 table local scope host prepend\n    }\n    track_process {"}},
		{name: "untyped route", edit: []string{"    track_process {", "    virtual_routes {\n        198.51.100.0/24 via 192.0.2.1\n    }\n    track_process {"}},
		{name: "typed route on 2.3.2", edit: []string{"    track_process {", "    virtual_routes {\n        blackhole 198.51.100.0/24\n    }\n    track_process {"},
			expect: func(e *Expect) { e.KeepalivedVersion = "2.3.2" }},
		{name: "typed route, version unknown", edit: []string{"    track_process {", "    virtual_routes {\n        blackhole 198.51.100.0/24\n    }\n    track_process {"},
			expect: func(e *Expect) { e.KeepalivedVersion = "" },
			want:   []want{{Warning, "vrrp_instance VI_1", "the keepalived version is unknown", ""}}},

		// GARP refresh twice.
		{name: "garp refresh and vipkit refresher", edit: []string{"    enable_script_security\n", "    enable_script_security\n    vrrp_garp_master_refresh 60\n"},
			expect: func(e *Expect) { e.Instances[0].Refresh = true },
			want:   []want{{Info, "vrrp_instance VI_1", "keepalived re-sends GARPs every 60s", "keepalived.conf:4"}}},
		{name: "garp refresh without vipkit refresher", edit: []string{"    enable_script_security\n", "    enable_script_security\n    vrrp_garp_master_refresh 60\n"}},
		{name: "instance turns garp refresh off", edit: []string{"    enable_script_security\n", "    enable_script_security\n    vrrp_garp_master_refresh 60\n", "    state BACKUP\n", "    state BACKUP\n    garp_master_refresh 0\n"},
			expect: func(e *Expect) { e.Instances[0].Refresh = true }},

		// What the reader could not model.
		{name: "syntax problem", append: "}\n",
			want: []want{{Warning, "keepalived.conf", `'}' without a matching '{'`, "keepalived.conf:40"}}},
		{name: "conditional line", edit: []string{"    priority 100\n", "    @node1 priority 100\n"},
			want: []want{{Info, "keepalived.conf", "conditional line (@...) read as if it applied", "keepalived.conf:22"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.prepend + edited(t, baseConf, tt.edit, -1) + tt.append
			e := baseExpect()
			if tt.expect != nil {
				tt.expect(&e)
			}
			got := Inspect(parse(t, text), e)
			checkIssues(t, got, tt.want)
		})
	}
}

// edited applies pairs of old, new strings to text (n replacements each,
// -1 for all), failing the test on one that does not apply.
func edited(t *testing.T, text string, edits []string, n int) string {
	t.Helper()
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("edit %q does not apply", edits[i])
		}
		text = strings.Replace(text, edits[i], edits[i+1], n)
	}
	return text
}

// checkIssues matches issues to wants one to one, so a check that fires
// where it should not fails the test as much as one that stays silent.
func checkIssues(t *testing.T, got []Issue, wants []want) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range wants {
		found := false
		for i, is := range got {
			if !used[i] && is.Severity == w.sev && is.Subject == w.subject && strings.Contains(is.Message, w.message) && (w.line == "" || is.Line == w.line) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing %s issue for %s containing %q (line %q)", w.sev, w.subject, w.message, w.line)
		}
	}
	for i, is := range got {
		t.Log(fmtIssue(is))
		if is.Fix == "" {
			t.Errorf("issue without a fix: %+v", is)
		}
		if !used[i] {
			t.Errorf("unexpected issue: %s", fmtIssue(is))
		}
	}
}

func fmtIssue(is Issue) string {
	return fmt.Sprintf("%s %s (%s): %s; fix: %s", is.Severity, is.Subject, is.Line, is.Message, is.Fix)
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		v           string
		less, known bool
	}{
		{"2.2.7", true, true}, {"v2.2.7", true, true}, {"2.2.7-1+b2", true, true}, {"2.3.1", true, true},
		{"2.3.2", false, true}, {"2.4.0", false, true}, {"2.3", true, true}, {"10.0.0", false, true},
		{"1:2.2.7-1+b2", true, true}, {"", false, false}, {"unknown", false, false},
	}
	for _, tt := range tests {
		less, known := versionLess(tt.v, "2.3.2")
		if less != tt.less || known != tt.known {
			t.Errorf("versionLess(%q, 2.3.2) = %v, %v; want %v, %v", tt.v, less, known, tt.less, tt.known)
		}
	}
}

// parse is keepalived.ParseConf for a single in-memory file, failing the
// test on error.
func parse(t *testing.T, text string) *keepalived.Conf {
	t.Helper()
	c, err := keepalived.ParseConf("keepalived.conf", []byte(text), nil)
	if err != nil {
		t.Fatalf("ParseConf: %v", err)
	}
	return c
}

func FuzzInspect(f *testing.F) {
	f.Add(baseConf)
	f.Fuzz(func(t *testing.T, text string) {
		c, err := keepalived.ParseConf("keepalived.conf", []byte(text), nil)
		if err != nil {
			return
		}
		for _, is := range Inspect(c, baseExpect()) {
			if is.Fix == "" {
				t.Fatalf("finding without a fix: %s", fmtIssue(is))
			}
		}
	})
}

// The fast handover's bound against keepalived's master-down interval,
// on the instance model alone (a vipctl-owned config brings findings of
// its own).
func TestWitnessTiming(t *testing.T) {
	for _, tt := range []struct {
		advert float64
		prio   int
		bad    bool
	}{{1, 100, false}, {0.1, 100, false}, {0.05, 100, true}, {0.06, 254, true}, {0.07, 1, false}} {
		x := &inspector{}
		x.witness(ExpectedInstance{Name: "VI_1", Own: true, Witness: true, Priority: tt.prio}, &keepalived.Instance{Name: "VI_1", Priority: tt.prio, AdvertInt: tt.advert})
		got := false
		for _, is := range x.issues {
			if is.Severity == Error && strings.Contains(is.Message, "handover wait") {
				got = true
			}
		}
		if got != tt.bad {
			t.Errorf("advert_int %v priority %d: timing error %v, want %v (issues %v)", tt.advert, tt.prio, got, tt.bad, x.issues)
		}
	}
}

// The pre-grant's bound (keepalived-owned) against the successor's
// master-down interval: more than twice the bound.
func TestWitnessPregrantTiming(t *testing.T) {
	for _, tt := range []struct {
		advert float64
		prio   int
		bad    bool
	}{{1, 100, false}, {0.1, 100, false}, {0.1, 254, false}, {0.08, 200, true}, {0.05, 1, true}} {
		x := &inspector{}
		x.witness(ExpectedInstance{Name: "VI_1", Witness: true, Priority: tt.prio}, &keepalived.Instance{Name: "VI_1", Priority: tt.prio, AdvertInt: tt.advert})
		got := false
		for _, is := range x.issues {
			if is.Severity == Error && strings.Contains(is.Message, "pre-grant bound") {
				got = true
			}
		}
		if got != tt.bad {
			t.Errorf("advert_int %v priority %d: pre-grant timing error %v, want %v (issues %v)", tt.advert, tt.prio, got, tt.bad, x.issues)
		}
	}
}
