package keepalived

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadConf reads real files: includes resolve against the including
// file's directory, glob in order, skip patterns that match nothing, and
// positions name the file each line came from.
func TestLoadConf(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) string {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	main := write("keepalived.conf", "global_defs {\n script_user root\n}\ninclude conf.d/*.conf\n")
	write("conf.d/20-b.conf", "vrrp_instance VI_B {\n interface eth1\n virtual_router_id 2\n}\n")
	write("conf.d/10-a.conf", "vrrp_instance VI_A {\n interface eth0\n virtual_router_id 1\n include ../vips/a.inc\n}\n")
	write("vips/a.inc", "virtual_ipaddress {\n 192.0.2.100\n}\n")
	if err := os.Mkdir(filepath.Join(dir, "conf.d", "sub.conf"), 0o755); err != nil {
		t.Fatal(err)
	}

	c, err := LoadConf(main)
	if err != nil {
		t.Fatal(err)
	}
	if names := []string{c.Instances[0].Name, c.Instances[1].Name}; !slices.Equal(names, []string{"VI_A", "VI_B"}) {
		t.Errorf("instances %q, want glob order VI_A, VI_B", names)
	}
	vip := c.Instance("VI_A").VIPs
	if len(vip) != 1 || vip[0].Pos.String() != filepath.Join(dir, "vips/a.inc")+":2" {
		t.Errorf("VIPs %+v, want 192.0.2.100 at vips/a.inc:2", vip)
	}
	if c.Global.ScriptUser != "root" || len(c.Problems) != 0 {
		t.Errorf("global %+v, problems %+v", c.Global, c.Problems)
	}

	if _, err := LoadConf(filepath.Join(dir, "missing.conf")); err == nil || !strings.HasPrefix(err.Error(), "load keepalived config: open ") || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("missing file: error %v, want it to name the file", err)
	}
}
