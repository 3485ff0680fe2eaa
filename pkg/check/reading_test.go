package check

import (
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/config"
)

// TestInspectReading: what keepalived drops with only a log line becomes a
// finding that says what keepalived does; an error when it touches what
// vipkit relies on, a warning otherwise, nothing for an instance vipkit
// does not manage. Each case is one edit of baseConf.
func TestInspectReading(t *testing.T) {
	other := "vrrp_instance VI_9 {\n    interface eth0\n    virtual_router_id 99\n%s}\n"
	tests := []struct {
		name          string
		edit          []string
		prepend, tail string
		want          []want
	}{
		{name: "second notify_master: keepalived keeps the first",
			edit: []string{`    notify_backup "`, "    notify_master \"/usr/local/bin/mine\"\n    notify_backup \""},
			want: []want{{Error, "vrrp_instance VI_1", "notify_master is given again: keepalived keeps the first one (keepalived.conf:33: \"/usr/local/sbin/vipctl up --dev eth0 192.0.2.100\") and ignores this one (\"/usr/local/bin/mine\"", "keepalived.conf:34"}}},
		{name: "first notify_master is not vipctl",
			edit: []string{`    notify_master "/usr/local/sbin/vipctl`, "    notify_master \"/usr/local/bin/mine\"\n    notify_master \"/usr/local/sbin/vipctl"},
			want: []want{
				{Error, "vrrp_instance VI_1", "notify_master is given again: keepalived keeps the first one (keepalived.conf:33: \"/usr/local/bin/mine\")", "keepalived.conf:34"},
				{Error, "vrrp_instance VI_1", `notify_master runs "/usr/local/bin/mine"`, ""},
			}},
		// The '}' of the unknown block closes VI_1: the rest of it is read
		// at the top level, where a nameless track_file makes keepalived
		// refuse the whole file.
		{name: "unknown block closes the instance",
			edit: []string{"    priority 100\n", "    priority 100\n    unicast_peers {\n        192.0.2.2\n    }\n"},
			want: []want{
				{Error, "vrrp_instance VI_1", `unknown keyword "unicast_peers" in vrrp_instance: keepalived skips the line ("Unknown keyword") and ignores its '{', so the '}' that was meant to close it closes vrrp_instance instead`, "keepalived.conf:23"},
				{Error, "vrrp_instance VI_1", "unexpected '{': keepalived ignores it", "keepalived.conf:23"},
				{Error, "vrrp_instance VI_1", `unknown keyword "192.0.2.2"`, "keepalived.conf:24"},
				{Error, "track_file", "track_file has no parameter: keepalived refuses the configuration", "keepalived.conf:29"},
				{Warning, "track_file", `unknown keyword "fence_VI_1" in track_file`, "keepalived.conf:30"},
				{Warning, "track_file", `unknown keyword "maint_VI_1" in track_file`, "keepalived.conf:31"},
				{Error, "track_process ", "keepalived has no top-level track_process block", "keepalived.conf:33"},
				{Warning, "keepalived.conf", `unknown top-level keyword "virtual_ipaddress"`, "keepalived.conf:26"},
				{Error, "keepalived.conf", `unknown top-level keyword "notify_master" (` + "`" + `notify_master /usr/local/sbin/vipctl up`, "keepalived.conf:36"},
				{Error, "keepalived.conf", `unknown top-level keyword "notify_backup"`, "keepalived.conf:37"},
				{Error, "keepalived.conf", `unknown top-level keyword "notify_fault"`, "keepalived.conf:38"},
				{Error, "keepalived.conf", `unknown top-level keyword "notify_stop"`, "keepalived.conf:39"},
				{Error, "keepalived.conf", `unknown top-level keyword "notify_master_rx_lower_pri"`, "keepalived.conf:40"},
				{Warning, "keepalived.conf", `unknown top-level keyword "higher_prio_send_advert"`, "keepalived.conf:41"},
				{Warning, "keepalived.conf", "'}' without a matching '{'", "keepalived.conf:42"},
				{Error, "vrrp_instance VI_1", "192.0.2.100 is not in virtual_ipaddress", ""},
				{Error, "vrrp_instance VI_1", "vipctl is not told of every transition", ""},
				{Error, "vrrp_instance VI_1", "track_file fence_VI_1 is not referenced by vrrp_instance VI_1", ""},
				{Error, "vrrp_instance VI_1", "track_file maint_VI_1 is not referenced by vrrp_instance VI_1", ""},
				{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", ""},
				{Warning, "vrrp_instance VI_1", "a master that hears a higher priority steps down without a word", ""},
				{Warning, "vrrp_instance VI_1", "vipctl is not told when this master hears a lower priority", ""},
			}},
		{name: "unknown keyword in a managed instance",
			edit: []string{"    priority 100\n", "    priority 100\n    prority 90\n"},
			want: []want{{Error, "vrrp_instance VI_1", `unknown keyword "prority" in vrrp_instance`, "keepalived.conf:23"}}},
		{name: "unknown keyword in an instance vipkit does not manage", tail: strings.Replace(other, "%s", "    prority 90\n", 1)},
		{name: "single-quoted fence file",
			edit: []string{`file "/run/vipkit/VI_1.fence"`, `file '/run/vipkit/VI_1.fence'`},
			want: []want{
				{Error, "track_file fence_VI_1", "keepalived takes the single quotes as part of the path, finds no such directory and drops track_file fence_VI_1", "keepalived.conf:6"},
				{Error, "vrrp_instance VI_1", "no track_file block watches /run/vipkit/VI_1.fence", ""},
			}},
		{name: "single quotes in a hook are fine",
			edit: []string{`notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"`, `notify_fault '/usr/local/sbin/vipctl down --dev eth0 192.0.2.100'`}},
		{name: "definition before a closing quote",
			prepend: "$VIP=192.0.2.100\n",
			edit:    []string{`notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"`, `notify_fault "/usr/local/sbin/vipctl down --dev eth0 $VIP"`},
			want: []want{
				{Error, "keepalived.conf", "keepalived 2.2.7 expands a bare $VIP only before whitespace or the end of the line", "keepalived.conf:36"},
				{Error, "vrrp_instance VI_1", "notify_fault names its VIPs itself (--dev) but not 192.0.2.100", ""},
			}},
		{name: "quoted include", tail: "include \"/etc/keepalived/conf.d/*.conf\"\n",
			want: []want{{Warning, "keepalived.conf", "keepalived takes the quotes as part of the file name, matches no file and includes nothing", "keepalived.conf:40"}}},
		{name: "missing parameter refuses the file", edit: []string{"    priority 100\n", "    priority\n"},
			want: []want{{Error, "vrrp_instance VI_1", "priority has no parameter: keepalived refuses the configuration", "keepalived.conf:22"}}},
		{name: "tracker defined after the instance", edit: []string{"vrrp_track_process fenced {\n    process fenced\n    weight 0\n}\n", ""},
			tail: "vrrp_track_process fenced {\n    process fenced\n    weight 0\n}\n",
			want: []want{
				{Error, "vrrp_instance VI_1", "track_process fenced is not defined above this line", ""},
				{Warning, "vrrp_instance VI_1", "nothing puts keepalived in FAULT when fenced stops", ""},
			}},
		{name: "enable_script_security 0 is enabled", edit: []string{"    enable_script_security\n", "    enable_script_security 0\n"},
			want: []want{{Info, "global_defs", `enable_script_security takes no value: keepalived ignores "0" and enables script security`, "keepalived.conf:3"}}},
		{name: "broken script in an instance vipkit does not manage", tail: strings.Replace(other, "%s", "    notify_master \"/usr/local/bin/x 'a\"\n", 1)},
		{name: "broken script in a managed instance", edit: []string{"    priority 100\n", "    priority 100\n    notify \"/usr/local/bin/x 'a\"\n"},
			want: []want{{Warning, "vrrp_instance VI_1", "keepalived will not run this notify: split command", "keepalived.conf:23"}}},
		{name: "typed route in an instance vipkit does not manage", tail: strings.Replace(other, "%s", "    virtual_routes {\n        blackhole 198.51.100.0/24\n    }\n", 1)},
		{name: "typed route in a managed instance", edit: []string{"    priority 100\n", "    priority 100\n    virtual_routes {\n        blackhole 198.51.100.0/24\n    }\n"},
			want: []want{{Error, "vrrp_instance VI_1", "has route type blackhole but no `prepend`", "keepalived.conf:24"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := edited(t, baseConf, tt.edit, 1)
			checkIssues(t, Inspect(parse(t, tt.prepend+text+tt.tail), baseExpect()), tt.want)
		})
	}
}

// TestInspectNotifyFixKeepsOneNotify: when the instance already has a
// notify line, the fix says to change it: keepalived ignores a second one.
func TestInspectNotifyFixKeepsOneNotify(t *testing.T) {
	text := baseConf
	for i := 0; i+1 < len(hooksOff); i += 2 {
		text = strings.Replace(text, hooksOff[i], hooksOff[i+1], 1)
	}
	text = strings.Replace(text, "    higher_prio_send_advert\n", "    higher_prio_send_advert\n    notify \"/usr/local/bin/mine\"\n", 1)
	var fix string
	for _, is := range Inspect(parse(t, text), baseExpect()) {
		if strings.Contains(is.Message, "vipctl is not told of every transition") {
			fix = is.Fix
		}
	}
	if !strings.HasPrefix(fix, "change the notify line at keepalived.conf:") || strings.Contains(fix, "add `notify") {
		t.Errorf("fix %q, want it to change the existing notify line, not add a second", fix)
	}
}

// TestProgramsFencedOnlyWhenUsed: a setup without fenced is not checked
// for fenced's binary (no "fenced does not exist" error).
func TestProgramsFencedOnlyWhenUsed(t *testing.T) {
	cfg := &config.Config{Instances: []config.Instance{{Name: "VI_1"}}}
	if got := Programs(cfg, "/usr/local/sbin/vipctl", "/usr/local/sbin/fenced"); len(got) != 1 || got[0] != "/usr/local/sbin/vipctl" {
		t.Errorf("without fenced: %q", got)
	}
	cfg.Instances[0].TrackFile = "/run/vipkit/VI_1.fence"
	if got := Programs(cfg, "/usr/local/sbin/vipctl", "/usr/local/sbin/fenced"); len(got) != 2 {
		t.Errorf("with fenced: %q", got)
	}
}

// TestReadingFixesSayWhatToWrite: findings from the reading carry a fix
// specific to the construct, not only "correct the line".
func TestReadingFixesSayWhatToWrite(t *testing.T) {
	for _, tc := range []struct {
		edit         []string
		prepend, fix string
	}{
		{edit: []string{`file "/run/vipkit/VI_1.fence"`, `file '/run/vipkit/VI_1.fence'`}, fix: "write the path in double quotes"},
		{edit: []string{`    notify_backup "`, "    notify_master \"/usr/local/bin/mine\"\n    notify_backup \""}, fix: "keep one line per block"},
		{edit: []string{"    priority 100\n", "    priority 100\n    prority 90\n"}, fix: "correct the keyword's spelling"},
		{prepend: "$VIP=192.0.2.100\n", edit: []string{`notify_fault "/usr/local/sbin/vipctl down --dev eth0 192.0.2.100"`, `notify_fault "/usr/local/sbin/vipctl down --dev eth0 $VIP"`}, fix: "write ${VIP}"},
	} {
		found := false
		for _, is := range Inspect(parse(t, tc.prepend+edited(t, baseConf, tc.edit, 1)), baseExpect()) {
			found = found || strings.HasPrefix(is.Fix, tc.fix)
		}
		if !found {
			t.Errorf("no finding with the fix %q for %q", tc.fix, tc.edit)
		}
	}
}
