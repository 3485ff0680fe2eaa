package lab

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/topo"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// paperLab is a Lab with nodes but no network, enough for Vars/Render.
func paperLab(t *testing.T) *Lab {
	t.Helper()
	dir := t.TempDir()
	l := &Lab{Dir: dir, advertInt: "0.1"}
	for i, a := range []string{"192.0.2.11", "192.0.2.12"} {
		name := topo.NodeName(i)
		a4 := netip.MustParseAddr(a)
		nd := filepath.Join(dir, name)
		h := &topo.Host{Name: name, Dev: "eth0", MAC: net.HardwareAddr{2, 0, 192, 0, 2, byte(11 + i)}, Addr4: a4, Addr6: netip.MustParseAddr("2001:db8::" + a[len("192.0.2."):])}
		l.Nodes = append(l.Nodes, &Node{Name: name, Host: h, Priority: 150 - 50*i, Dir: nd,
			StateDir: filepath.Join(nd, "run"), ConfigPath: filepath.Join(nd, "vipkit.toml"), FIFO: filepath.Join(nd, "notify.fifo")})
		if err := os.MkdirAll(filepath.Join(nd, "run"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// Every shipped config renders for each lab node with its own files and
// no placeholder path left; with sub-second adverts (VRRPv3) keepalived
// accepts the keepalived-owned ones and would drop the VRRPv2 vipctl-owned
// ones (no VIPs), which ConfigTest must catch. The -v3 vipctl-owned ones
// (no_virtual_ipaddress) pass on the releases they claim and are dropped
// by older ones.
func TestContribConfigsRenderPerNode(t *testing.T) {
	confs, err := repo.KeepalivedConfs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(repo.Keepalived()); err != nil {
		netnstest.Missing(t, "keepalived not installed: %v", err)
	}
	version, err := repo.KeepalivedVersion(repo.Keepalived())
	if err != nil {
		t.Fatal(err)
	}
	l := paperLab(t)
	for _, path := range confs {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		claim, err := repo.ConfClaim(path)
		if err != nil {
			t.Fatal(err)
		}
		noVIPs := strings.HasPrefix(filepath.Base(path), "vipctl-owned")
		wantDrop := noVIPs && (!strings.Contains(string(text), "no_virtual_ipaddress") || version.Less(claim))
		for _, n := range l.Nodes {
			t.Run(filepath.Base(path)+"/"+n.Name, func(t *testing.T) {
				out, err := l.Render(n, string(text))
				if err != nil {
					t.Fatal(err)
				}
				for _, stale := range []string{"/run/vipkit", "/etc/vipkit/vipkit.toml"} {
					if strings.Contains(out, stale) {
						t.Errorf("placeholder %s left in the rendered config", stale)
					}
				}
				if strings.Contains(string(text), "/run/vipkit") && !strings.Contains(out, n.StateDir) {
					t.Errorf("state dir %s not in the rendered config", n.StateDir)
				}
				for _, want := range []string{"priority " + strconv.Itoa(n.Priority), "notify_fifo " + n.FIFO, "advert_int 0.1", "vrrp_version 3"} {
					if !strings.Contains(out, want) {
						t.Errorf("rendered config lacks %q", want)
					}
				}
				conf := filepath.Join(n.Dir, filepath.Base(path))
				if err := os.WriteFile(conf, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				err = proc.ConfigTest("", conf, conf+".log")
				switch {
				case wantDrop && err == nil:
					t.Errorf("keepalived %s: VRRPv3 with an instance without VIPs passed the config test", version)
				case !wantDrop && err != nil:
					t.Errorf("keepalived %s: %v\n%s", version, err, out)
				}
				if testing.Verbose() && n.Name == "node-b" && strings.HasSuffix(path, "fifo.conf") {
					t.Logf("rendered:\n%s", out)
				}
			})
		}
	}
}
