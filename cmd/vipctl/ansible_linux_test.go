package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/netnstest"
)

// check --config-only judges a candidate file against the host before it is
// put in place (Ansible's validate:): one line naming file, line and key,
// exit 2, or "FILE: ok" and exit 0.
func TestPrivilegedCheckConfigOnly(t *testing.T) {
	h := newHost(t)
	// eth1 has IPv4 only: an IPv6 VIP there has no source for its hint.
	netnstest.Veth(t, h.ns, "eth1", h.peer, "eth1")
	h.ns.AddAddr(t, "eth1", "198.51.100.11/24")
	dir := t.TempDir()
	file := func(dev, vips string) string {
		p := filepath.Join(dir, "candidate.toml")
		text := "[[instance]]\nname = \"VI_1\"\ndev = \"" + dev + "\"\nvips = [" + vips + "]\n"
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, dev, vips string
		code            int
		want            string
	}{
		{"both families on eth0", "eth0", `"192.0.2.100", "2001:db8::100"`, 0, "candidate.toml: ok"},
		{"IPv4 on eth1", "eth1", `"198.51.100.100"`, 0, "candidate.toml: ok"},
		{"unknown interface", "eth9", `"192.0.2.100"`, 2, `candidate.toml:3: instance[0].dev: interface "eth9": no such network interface`},
		{"IPv6 VIP on an IPv4-only interface", "eth1", `"2001:db8:1::100"`, 2, "candidate.toml:4: instance[0].vips: eth1 has no primary IPv6 address"},
		{"the interface's own address", "eth0", `"192.0.2.11"`, 2, "candidate.toml:4: instance[0].vips: 192.0.2.11 is the primary IPv4 address of eth0"},
		{"not an address", "eth0", `"192.0.2.300"`, 2, "candidate.toml:4: instance[0].vips"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := file(tc.dev, tc.vips)
			r := h.run(t, "check", "--config-only", "--config", p)
			out := strings.TrimSpace(r.stdout + r.stderr)
			if r.code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want exit %d with %q", r.code, out, tc.code, tc.want)
			}
			if lines := strings.Count(out, "\n") + 1; lines != 1 {
				t.Errorf("%d lines, want one: %q", lines, out)
			}
		})
	}
}

// handover --json says whether anything changed: the first handover
// releases the VIP and writes 1, the second finds both done; the same for
// --undo.
func TestPrivilegedHandoverJSONChanged(t *testing.T) {
	h := newHost(t)
	cfg := filepath.Join(t.TempDir(), "vipkit.toml")
	maint := filepath.Join(h.state, "VI_1.maint")
	if err := os.WriteFile(cfg, []byte(`[[instance]]
name = "VI_1"
dev = "eth0"
vips = ["192.0.2.100/32"]
own = true
maintenance_file = "`+maint+`"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ok(t, "up", "--config", cfg, "--instance", "VI_1", "--refresh-for", "0s")
	if !h.assigned(t, "192.0.2.100") {
		t.Fatal("up did not add the VIP")
	}
	type result struct {
		Instance string   `json:"instance"`
		Undo     bool     `json:"undo"`
		Changed  bool     `json:"changed"`
		Released []string `json:"released"`
	}
	for _, step := range []struct {
		args     []string
		changed  bool
		released string
		file     string
	}{
		{[]string{"handover", "--json", "--config", cfg, "VI_1"}, true, "192.0.2.100", "1"},
		{[]string{"handover", "--json", "--config", cfg, "VI_1"}, false, "", "1"},
		{[]string{"handover", "--undo", "--json", "--config", cfg, "VI_1"}, true, "", "0"},
		{[]string{"handover", "--undo", "--json", "--config", cfg, "VI_1"}, false, "", "0"},
	} {
		var r result
		out := h.ok(t, step.args...)
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v: %s", step.args, err, out)
		}
		if r.Changed != step.changed || strings.Join(r.Released, ",") != step.released || r.Instance != "VI_1" {
			t.Errorf("%v: %+v, want changed %v, released %q", step.args, r, step.changed, step.released)
		}
		if b, _ := os.ReadFile(maint); strings.TrimSpace(string(b)) != step.file {
			t.Errorf("%v: maintenance file %q, want %s", step.args, b, step.file)
		}
		if h.assigned(t, "192.0.2.100") {
			t.Errorf("%v: the VIP is still assigned", step.args)
		}
	}
}
