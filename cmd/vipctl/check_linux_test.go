package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/check"
)

func exitOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// vipctl check on a host set up as contrib describes reports no error; the
// same host with a classic mistake reports it, with exit 1.
func TestPrivilegedCheckShippedSetup(t *testing.T) {
	h := newHost(t)
	for _, s := range []string{"arp_ignore=1", "arp_announce=2", "promote_secondaries=1"} {
		h.ns.Exec(t, "sysctl", "-qw", "net.ipv4.conf.all."+s)
	}
	// keepalived refuses scripts in a directory others can write: install
	// the binaries root-owned, 0755, in a root-only directory.
	sbin, err := os.MkdirTemp("/var/tmp", "vipkit-sbin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sbin) })
	os.Chmod(sbin, 0o755)
	b, _ := os.ReadFile(vipctlBin)
	os.WriteFile(filepath.Join(sbin, "vipctl"), b, 0o755)
	os.WriteFile(filepath.Join(sbin, "fenced"), b, 0o755) // only its path and permissions are checked
	state := filepath.Join(sbin, "run")
	os.Mkdir(state, 0o700)
	conf, err := os.ReadFile("../../contrib/keepalived/keepalived-owned-fenced.conf")
	if err != nil {
		t.Fatal(err)
	}
	render := func(text string) string {
		return strings.NewReplacer("/usr/local/sbin", sbin, "/run/vipkit", state, "/etc/vipkit/vipkit.toml", filepath.Join(sbin, "vipkit.toml")).Replace(text)
	}
	kconf := filepath.Join(sbin, "keepalived.conf")
	os.WriteFile(kconf, []byte(render(string(conf))), 0o644)
	cfg := filepath.Join(sbin, "vipkit.toml")
	os.WriteFile(cfg, []byte(render(`state_dir = "/run/vipkit"
[[cluster]]
name = "main"
endpoints = ["http://192.0.2.20:2379"]
[[instance]]
name = "VI_1"
dev = "eth0"
vips = ["192.0.2.100"]
cluster = "main"
`)), 0o600)
	run := func(conf string, extra ...string) (check.Report, int) {
		t.Helper()
		c := h.ns.Command(context.Background(), filepath.Join(sbin, "vipctl"), append([]string{"check", "--json", "--config", cfg, "--keepalived-conf", conf}, extra...)...)
		out, err := c.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		var r check.Report
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("check --json: %v\n%s", err, out)
		}
		return r, code
	}
	r, code := run(kconf)
	if code != 0 || !r.OK {
		t.Fatalf("the shipped setup: exit %d, findings %+v", code, r.Findings)
	}
	// Across nodes: the peer as the README says (a lower priority) is
	// clean; a peer with another VRID is an error; an unreadable one a
	// usage error.
	peer := func(name, from, to string) string {
		p := filepath.Join(sbin, name)
		os.WriteFile(p, []byte(strings.Replace(render(string(conf)), from, to, 1)), 0o644)
		return p
	}
	if r, code := run(kconf, "--peer", peer("peer-ok.conf", "priority 100", "priority 90")); code != 0 || !r.OK {
		t.Errorf("a matching peer: exit %d, findings %+v", code, r.Findings)
	}
	r, code = run(kconf, "--peer", peer("peer-vrid.conf", "virtual_router_id 51", "virtual_router_id 52"))
	if code != 1 || !strings.Contains(fmt.Sprint(r.Findings), "virtual_router_id is 52 on "+filepath.Join(sbin, "peer-vrid.conf")) {
		t.Errorf("a peer with another VRID: exit %d, findings %+v", code, r.Findings)
	}
	if out, err := h.ns.Command(context.Background(), filepath.Join(sbin, "vipctl"), "check", "--config", cfg, "--keepalived-conf", kconf, "--peer", filepath.Join(sbin, "absent.conf")).CombinedOutput(); exitOf(err) != 2 || !strings.Contains(string(out), "absent.conf") {
		t.Errorf("an unreadable peer: exit %d, output %s", exitOf(err), out)
	}
	// Classic mistakes, one at a time.
	for _, tc := range []struct{ name, from, to, want string }{
		{"no script_user", "    script_user root\n", "", "script_user"},
		{"track file weight", "    file \"" + state + "/VI_1.fence\"\n    weight 0\n", "    file \"" + state + "/VI_1.fence\"\n", "weight"},
		{"hook calls another binary", sbin + "/vipctl up", "/usr/bin/vipctl up", "vipctl is installed as"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := render(string(conf))
			if !strings.Contains(text, tc.from) {
				t.Fatalf("the shipped config no longer contains %q", tc.from)
			}
			bad := filepath.Join(sbin, "bad.conf")
			os.WriteFile(bad, []byte(strings.Replace(text, tc.from, tc.to, 1)), 0o644)
			r, code := run(bad)
			if code != 1 || r.OK {
				t.Fatalf("exit %d, ok %v for %s", code, r.OK, tc.name)
			}
			found := false
			for _, f := range r.Findings {
				found = found || (f.Severity == check.Error && strings.Contains(f.Message+f.Fix, tc.want) && f.Fix != "")
			}
			if !found {
				t.Fatalf("no error mentioning %q: %+v", tc.want, r.Findings)
			}
		})
	}
}
