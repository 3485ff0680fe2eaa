package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const full = `
node = "node-a"
state_dir = "/run/vipkit"
log_level = "debug"

[announce]
count = 5
interval = "20ms"
refresh_every = "2s"
refresh_for = "10s"

[fenced]
on_stop = "keep"
metrics = "127.0.0.1:9470"

[[cluster]]
name = "main"
endpoints = ["http://192.0.2.20:2379"]
ttl = "6s"
margin = "1s"

[[cluster]]
name = "dr"
endpoints = ["https://198.51.100.20:2379", "https://198.51.100.21:2379"]
cacert = "/etc/vipkit/ca.pem"
cert = "/etc/vipkit/client.pem"
key = "/etc/vipkit/client-key.pem"
user = "vipkit"
password_file = "/etc/vipkit/etcd.pass"

[[instance]]
name = "VI_1"
dev = "eth0"
vips = ["192.0.2.100", "2001:db8::100"]
cluster = "main"
witness = true
priority = 150
nopreempt = true

[[instance]]
name = "VI_2"
group = "VG_1"
dev = "eth1"
vips = ["198.51.100.100/24"]
own = true
[instance.announce]
count = 1
`

func TestParseFull(t *testing.T) {
	c, err := Parse("vipkit.toml", []byte(full))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Node != "node-a" || c.LogLevel.String() != "DEBUG" || c.Fenced.OnStop != "keep" {
		t.Errorf("top level = %+v", c)
	}
	if c.Announce.Count != 5 || c.Announce.Interval != 20*time.Millisecond || c.Announce.RefreshEvery != 2*time.Second {
		t.Errorf("announce = %+v", c.Announce)
	}
	main, ok := c.ClusterByName("main")
	if !ok || main.TTL != 6*time.Second || main.Margin != time.Second || main.RenewEvery != 2*time.Second || main.RequestTimeout != 2*time.Second || main.Prefix != "/vipkit" {
		t.Errorf("cluster main = %+v", main)
	}
	dr, _ := c.ClusterByName("dr")
	if !dr.TLS.Enabled() || dr.TTL != DefaultTTL || dr.HoldDown != DefaultHoldDown {
		t.Errorf("cluster dr = %+v", dr)
	}
	vi1, ok := c.InstanceByName("VI_1")
	if !ok || len(vi1.VIPs) != 2 || vi1.Own || vi1.TrackFile != "/run/vipkit/VI_1.fence" || vi1.MaintenanceFile != "/run/vipkit/VI_1.maint" || !vi1.Witness || vi1.Priority != 150 || !vi1.Nopreempt {
		t.Errorf("VI_1 = %+v", vi1)
	}
	// An instance inherits the file's schedule and overrides only what it sets.
	if vi1.Announce != c.Announce {
		t.Errorf("VI_1 announce = %+v, want %+v", vi1.Announce, c.Announce)
	}
	vi2, _ := c.InstanceByName("VI_2")
	if !vi2.Own || vi2.Witness || vi2.Priority != 0 || vi2.Announce.Count != 1 || vi2.Announce.RefreshFor != 10*time.Second || vi2.TrackFile != "" {
		t.Errorf("VI_2 = %+v", vi2)
	}
	if g := c.InstancesInGroup("VG_1"); len(g) != 1 || g[0].Name != "VI_2" {
		t.Errorf("InstancesInGroup = %+v", g)
	}
}

func TestParseDefaults(t *testing.T) {
	c := Default()
	if c.StateDir != DefaultStateDir || c.Announce != DefaultAnnounce() || c.Fenced.OnStop != "fault" || c.Fenced.VRRPPIDFile != "/run/vrrp.pid" || !c.Fenced.Defend || c.Fenced.DefendDelay != DefaultDefendDelay {
		t.Errorf("Default() = %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // substring: file, line, key and value
	}{
		{"unknown top key", "nodes = \"a\"\n", `f.toml:1: unknown key "nodes"`},
		{"unknown nested key", "[[instance]]\nname = \"VI_1\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\nbogus = 1\n", `f.toml:5: unknown key "instance.bogus"`},
		{"wrong type", "[announce]\ncount = \"three\"\n", "f.toml:2:"},
		{"syntax", "node = \n", "f.toml:1:"},
		{"bad vip", "[[instance]]\nname = \"VI_1\"\ndev = \"eth0\"\nvips = [\"192.0.2.300\"]\n", `f.toml:4: instance[0].vips: parse VIP "192.0.2.300"`},
		{"second instance line", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\n[[instance]]\nname = \"B\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\n", `f.toml:8: instance[1].vips: 192.0.2.100 is already listed by instance "A"`},
		{"bad duration", "[announce]\nrefresh_every = \"soon\"\n", `f.toml:2: announce.refresh_every: "soon" is not a duration`},
		{"unknown cluster", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\ncluster = \"nope\"\n", `f.toml:5: instance[0].cluster: no [[cluster]] is named "nope"`},
		{"ttl too small", "[[cluster]]\nname = \"c\"\nendpoints = [\"http://192.0.2.20:2379\"]\nttl = \"1s\"\n", `f.toml:4: cluster[0].ttl: 1s is below etcd's minimum`},
		{"margin too big", "[[cluster]]\nname = \"c\"\nendpoints = [\"http://192.0.2.20:2379\"]\nttl = \"3s\"\nmargin = \"2.5s\"\n", `f.toml:5: cluster[0].margin: 2.5s leaves 500ms of validity`},
		{"fractional ttl", "[[cluster]]\nname = \"c\"\nendpoints = [\"http://192.0.2.20:2379\"]\nttl = \"2.5s\"\n", `cluster[0].ttl: 2.5s must be whole seconds`},
		{"bad endpoint", "[[cluster]]\nname = \"c\"\nendpoints = [\"192.0.2.20:2379\"]\n", `cluster[0].endpoints: endpoint "192.0.2.20:2379" is not http(s)://host:port`},
		{"metrics not loopback", "[fenced]\nmetrics = \"0.0.0.0:9470\"\n", `f.toml:2: fenced.metrics: "0.0.0.0:9470" must listen on a loopback address`},
		{"on_stop", "[fenced]\non_stop = \"maybe\"\n", `fenced.on_stop: "maybe" is not`},
		{"defend type", "[fenced]\ndefend = \"yes\"\n", "f.toml:2:"},
		{"defend delay", "[fenced]\ndefend_delay = \"1m\"\n", `f.toml:2: fenced.defend_delay: 1m0s must be at most 5s`},
		{"bad dev", "[[instance]]\nname = \"A\"\ndev = \"a-very-long-interface-name\"\nvips = [\"192.0.2.100\"]\n", `f.toml:3: instance[0].dev:`},
		{"no vips", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\n", `instance[0].vips: at least one VIP`},
		{"relative state dir", "state_dir = \"run\"\n", `f.toml:1: state_dir: "run" must be an absolute path`},
		{"track file without cluster", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\ntrack_file = \"/run/x\"\n", `instance[0].track_file: set only with cluster`},
		{"count out of range", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\n[instance.announce]\ncount = 0\n", `f.toml:6: instance[0].announce.count: 0 must be between 1 and 100`},
		{"duplicate instance", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\n[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.101\"]\n", `f.toml:6: instance[1].name: instance "A" is defined twice`},
		{"witness without cluster", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\nwitness = true\npriority = 100\n", `f.toml:5: instance[0].witness: needs cluster`},
		{"witness without priority", "[[cluster]]\nname = \"c\"\nendpoints = [\"http://192.0.2.20:2379\"]\n[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\ncluster = \"c\"\nwitness = true\n", `instance[0].priority: is required with witness`},
		{"priority out of range", "[[cluster]]\nname = \"c\"\nendpoints = [\"http://192.0.2.20:2379\"]\n[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\ncluster = \"c\"\nwitness = true\npriority = 255\n", `f.toml:10: instance[0].priority: 255 must be between 1 and 254`},
		{"priority without witness", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\npriority = 100\n", `f.toml:5: instance[0].priority: set only with witness`},
		{"nopreempt without witness", "[[instance]]\nname = \"A\"\ndev = \"eth0\"\nvips = [\"192.0.2.100\"]\nnopreempt = true\n", `f.toml:5: instance[0].nopreempt: set only with witness`},
		{"cert without key", "[[cluster]]\nname = \"c\"\nendpoints = [\"https://192.0.2.20:2379\"]\ncert = \"/a.pem\"\n", `cluster[0].cert: cert and key must be given together`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestClusterComplete(t *testing.T) {
	c := Cluster{Endpoints: []string{"http://127.0.0.1:2379"}, TTL: 5 * time.Second, Margin: 1500 * time.Millisecond}
	if err := c.Complete(); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if c.RenewEvery != 5*time.Second/3 || c.Prefix != DefaultPrefix || c.DialTimeout != DefaultDialTimeout {
		t.Errorf("Complete filled %+v", c)
	}
	bad := Cluster{Endpoints: []string{"http://127.0.0.1:2379"}, TTL: 2 * time.Second, Margin: 1900 * time.Millisecond}
	if err := bad.Complete(); err == nil || !strings.Contains(err.Error(), "margin") {
		t.Errorf("Complete(margin 1.9s of 2s) = %v, want margin error", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(full)
	f.Add("[[instance]]\nname=\"x\"\ndev=\"e\"\nvips=[\"192.0.2.1\"]\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse("fuzz.toml", []byte(doc))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for _, in := range c.Instances {
			if len(in.VIPs) == 0 || in.Dev == "" || in.MaintenanceFile == "" {
				t.Fatalf("accepted incomplete instance %+v", in)
			}
		}
	})
}
