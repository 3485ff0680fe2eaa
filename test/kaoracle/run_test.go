package kaoracle

import (
	"slices"
	"strings"
	"testing"
)

// The oracle reads back what keepalived loaded: hooks with their argv,
// the first of two notify_master lines, VIPs, scripts, track files; and a
// script that does not exist in the root is dropped, as on a host.
func TestRunReadsWhatKeepalivedLoaded(t *testing.T) {
	Require(t)
	conf := `global_defs {
  script_user root
  enable_script_security
  vrrp_notify_fifo /run/vipkit/keepalived.fifo
  vrrp_notify_fifo_script "/usr/local/sbin/vipctl fifo"
}
track_file fence {
  file /run/vipkit/VI_1.fence
  weight 0
}
vrrp_script alive {
  script "/usr/local/sbin/fenced status --alive 'a b'"
  weight 0
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 150
  virtual_ipaddress {
    192.0.2.100/32
  }
  notify_master "/usr/local/sbin/vipctl up"
  notify_master "/usr/local/sbin/vipctl second"
  notify_backup "/etc/keepalived/missing.sh"
  track_file { fence }
  track_script { alive }
}
`
	l, err := Run(t, Input{
		Main:       "/etc/keepalived/keepalived.conf",
		Files:      map[string][]byte{"/etc/keepalived/keepalived.conf": []byte(conf)},
		Stubs:      []string{"/usr/local/sbin/vipctl", "/usr/local/sbin/fenced"},
		Dirs:       []string{"/run/vipkit"},
		Interfaces: []string{"eth0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := l.Instance("VI_1")
	if in == nil {
		t.Fatalf("no VI_1 in the dump:\n%s", strings.Join(l.Log, "\n"))
	}
	if got := in.Hooks["master"].Argv; !slices.Equal(got, []string{"/usr/local/sbin/vipctl", "up"}) {
		t.Errorf("notify_master argv %q, want the first line's", got)
	}
	if _, ok := in.Hooks["backup"]; ok {
		t.Errorf("notify_backup of a missing script loaded: %v", in.Hooks["backup"])
	}
	if in.Interface != "eth0" || in.VRID != 51 || in.Priority != 150 || !slices.Equal(in.VIPs, []string{"192.0.2.100"}) {
		t.Errorf("instance %+v", in)
	}
	if len(l.Scripts) != 1 || !slices.Equal(l.Scripts[0].Command.Argv, []string{"/usr/local/sbin/fenced", "status", "--alive", "a b"}) || l.Scripts[0].Command.UIDGID != "0:0" {
		t.Errorf("scripts %+v", l.Scripts)
	}
	if len(l.TrackFiles) != 1 || l.TrackFiles[0].File != "/run/vipkit/VI_1.fence" {
		t.Errorf("track files %+v", l.TrackFiles)
	}
	if f := l.FIFOs["VRRP notify fifo"]; f.Path != "/run/vipkit/keepalived.fifo" || f.Script == nil || f.Script.Argv[1] != "fifo" {
		t.Errorf("fifo %+v", f)
	}
	if !l.ScriptSecurity {
		t.Error("script security not seen")
	}
}
