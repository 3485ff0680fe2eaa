package vipkit

import (
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/repo"
)

func TestKeepalivedConfig(t *testing.T) {
	for _, tt := range []struct {
		m  Mode
		ka keepalived.Version
	}{{Hooks, v227}, {Notify, v227}, {FIFO, v227}, {Owned, v227}, {Hooks, v233}, {Owned, v233}} {
		m := tt.m
		t.Run(m.Short()+"/"+tt.ka.String(), func(t *testing.T) {
			dir, err := repo.KeepalivedDir()
			if err != nil {
				t.Fatal(err)
			}
			conf, err := KeepalivedConfig(dir, m, tt.ka, true)
			if err != nil {
				t.Fatal(err)
			}
			// vipctl-owned runs VRRPv3 from 2.2.8 (no_virtual_ipaddress).
			if v3 := strings.Contains(conf, "no_virtual_ipaddress"); v3 != (m.Own() && tt.ka == v233) {
				t.Errorf("no_virtual_ipaddress in the config: %v", v3)
			}
			for _, want := range []string{
				`file "/run/vipkit/VI_1.fence"`, "init_file 1 overwrite", "vrrp_script fenced_alive",
				"/usr/local/sbin/fenced status --alive", `file "/run/vipkit/VI_1.maint"`,
				"vrrp_instance VI_2", "virtual_router_id 52", `file "/run/vipkit/VI_2.fence"`,
			} {
				if !strings.Contains(conf, want) {
					t.Errorf("config lacks %q", want)
				}
			}
			inst, _, _, ok := findBlock(conf, "vrrp_instance VI_1", 0)
			if !ok {
				t.Fatal("no vrrp_instance VI_1")
			}
			tf, _, _, ok := findBlock(inst, "track_file", 0)
			if !ok || !strings.Contains(tf, "fence_VI_1") || !strings.Contains(tf, "maint_VI_1") {
				t.Errorf("VI_1 does not track both files: %q", tf)
			}
			if ts, _, _, ok := findBlock(inst, "track_script", 0); !ok || !strings.Contains(ts, "fenced_alive") {
				t.Errorf("VI_1 does not track fenced_alive: %q", ts)
			}
			if strings.Count(conf, "vrrp_script fenced_alive") != 1 {
				t.Error("fenced_alive defined more than once")
			}
			// Both families on every hook string that names the VIP.
			for _, line := range strings.Split(inst, "\n") {
				if strings.Contains(line, "192.0.2.100\"") || (strings.Contains(line, "vipctl") && strings.Contains(line, "192.0.2.100") && !strings.Contains(line, "2001:db8::100")) {
					t.Errorf("IPv4-only hook: %s", strings.TrimSpace(line))
				}
			}
			if !m.Own() && !strings.Contains(inst, "virtual_ipaddress_excluded") {
				t.Error("keepalived-owned config without the IPv6 VIP")
			}
			// The lab renders it for a node without complaint.
			if _, err := proc.Render(conf, proc.NodeVars{Addr4: "192.0.2.12", StateDir: "/tmp/x/run", Priority: 100}); err != nil {
				t.Error(err)
			}
		})
	}
}

// The lab's vipkit.toml is valid for the product's own parser, and says
// what the lab means.
func TestTOML(t *testing.T) {
	tm := TOML{Node: "node-a", StateDir: "/tmp/lab/node-a/run", VRRPPIDFile: "/tmp/lab/node-a/keepalived-vrrp.pid",
		Clusters: []ClusterConf{{Name: "main", Endpoints: []string{"http://192.0.2.20:2379"}}, {Name: "second", Endpoints: []string{"http://192.0.2.21:2379"}}},
		Instances: []InstanceConf{{Name: "VI_1", VIPs: []string{"192.0.2.100", "2001:db8::100"}, Own: true, Cluster: "main"},
			{Name: "VI_2", VIPs: []string{"192.0.2.101"}, Cluster: "second", Witness: true, Priority: 50}}}
	c, err := config.Parse("lab.toml", []byte(tm.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, tm.String())
	}
	if c.Node != "node-a" || c.StateDir != tm.StateDir || c.Fenced.VRRPPIDFile != tm.VRRPPIDFile || len(c.Clusters) != 2 || len(c.Instances) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	cl := c.Clusters[0]
	if cl.TTL != DefaultTTL || cl.Margin != DefaultMargin || cl.HoldDown != DefaultHoldDown || cl.Prefix != keyPrefix {
		t.Errorf("cluster %+v", cl)
	}
	in := c.Instances[0]
	if !in.Own || in.Dev != "eth0" || len(in.VIPs) != 2 || in.Cluster != "main" || in.TrackFile != tm.StateDir+"/VI_1.fence" || in.MaintenanceFile != tm.StateDir+"/VI_1.maint" {
		t.Errorf("instance %+v", in)
	}
	if in.Witness || !c.Instances[1].Witness || c.Instances[1].Priority != 50 {
		t.Errorf("witness: VI_1 %v, VI_2 %v priority %d", in.Witness, c.Instances[1].Witness, c.Instances[1].Priority)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range Modes {
		for _, s := range []string{string(m), m.Short()} {
			if got, err := ParseMode(s); err != nil || got != m {
				t.Errorf("ParseMode(%q) = %q, %v", s, got, err)
			}
		}
	}
	if _, err := ParseMode("bogus"); err == nil {
		t.Error("ParseMode accepted bogus")
	}
	for _, tt := range []struct {
		m      Mode
		ka     keepalived.Version
		advert string
	}{{Hooks, v227, "0.1"}, {Owned, v227, "1"}, {Hooks, v233, "0.1"}, {Owned, v233, "0.1"}, {Owned, keepalived.NoVIPv3, "0.1"}} {
		if got := tt.m.AdvertInt(tt.ka); got != tt.advert {
			t.Errorf("%s on %s: advert_int %s, want %s", tt.m, tt.ka, got, tt.advert)
		}
	}
	if d := Hooks.MasterDown(v227); d < 360*1e6 || d > 361*1e6 {
		t.Errorf("master down at 0.1 s adverts = %s, want 360.9ms", d)
	}
	if d := Owned.MasterDown(v227); d < 3609*1e6 || d > 3610*1e6 {
		t.Errorf("master down at 1 s adverts = %s, want 3.609s", d)
	}
}

var (
	v227 = keepalived.Version{Major: 2, Minor: 2, Patch: 7}
	v233 = keepalived.Version{Major: 2, Minor: 3, Patch: 3}
)
