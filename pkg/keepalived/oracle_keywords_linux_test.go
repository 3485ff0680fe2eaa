package keepalived

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/kaoracle"
)

// keywordFile writes every keyword of the reader's tables in its context,
// each with a parameter (and an empty block where it opens one).
func keywordFile(skip map[string]bool) string {
	var b strings.Builder
	block := func(ctx, indent string) {
		for _, kw := range sortedKW(keywords[ctx]) {
			if skip[kw] {
				continue
			}
			switch spec := keywords[ctx][kw]; spec.kind {
			case kwPlain:
				fmt.Fprintf(&b, "%s%s 1\n", indent, kw)
			case kwValue, kwOpaque:
				fmt.Fprintf(&b, "%s%s {\n%s}\n", indent, kw, indent)
			case kwSub:
				fmt.Fprintf(&b, "%s%s {\n", indent, kw)
				for _, sub := range sortedKW(keywords[spec.sub]) {
					fmt.Fprintf(&b, "%s  %s 1\n", indent, sub)
				}
				fmt.Fprintf(&b, "%s}\n", indent)
			}
		}
	}
	for _, ctx := range []string{"vrrp_script", "track_file", "vrrp_track_process"} {
		fmt.Fprintf(&b, "%s k_%s {\n", ctx, ctx)
		block(ctx, "  ")
		b.WriteString("}\n")
	}
	b.WriteString("vrrp_instance VI_1 {\n")
	block("vrrp_instance", "  ")
	b.WriteString("}\nvrrp_sync_group G {\n")
	block("vrrp_sync_group", "  ")
	b.WriteString("}\n")
	return b.String()
}

// oracleVersion is the release of the keepalived the oracle runs.
func oracleVersion(t *testing.T) Version {
	t.Helper()
	out, err := exec.Command(kaoracle.Binary(), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v", kaoracle.Binary(), err)
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sortedKW(m map[string]kwSpec) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestOracleKeywords: keepalived knows every keyword the reader's tables
// list, in the context they list it (no "Unknown keyword"), and refuses a
// file with a keyword the tables say needs a parameter given without one.
func TestOracleKeywords(t *testing.T) {
	kaoracle.Require(t)
	// lvs_sync_daemon_interface makes keepalived start IPVS, which this
	// kernel may lack; the top level's roots are read by every other test.
	skip := map[string]bool{"lvs_sync_daemon_interface": true}
	// Keywords newer than the keepalived under test are unknown to it.
	v := oracleVersion(t)
	for kw, since := range keywordSince {
		if v.Less(since) {
			skip[kw] = true
		}
	}
	l, err := kaoracle.Run(t, kaoracle.Input{Main: "/etc/keepalived/keepalived.conf", Files: map[string][]byte{"/etc/keepalived/keepalived.conf": []byte(keywordFile(skip))}, Interfaces: []string{"eth0"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(l.Log, "\n"))
	}
	for _, line := range l.Log {
		if strings.Contains(line, "Unknown keyword") || strings.Contains(line, "Unexpected '{'") || strings.Contains(line, "missing from beginning of block") {
			t.Errorf("keepalived: %s", line)
		}
	}
	for _, ctx := range []string{"vrrp_instance", "vrrp_script", "track_file"} {
		for _, kw := range sortedKW(keywords[ctx]) {
			if !keywords[ctx][kw].arg || skip[kw] {
				continue
			}
			t.Run(ctx+"/"+kw, func(t *testing.T) {
				t.Parallel()
				conf := fmt.Sprintf("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n}\n%s X {\n  %s\n}\n", ctx, kw)
				if ctx == "vrrp_instance" {
					conf = fmt.Sprintf("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  %s\n}\n", kw)
				}
				c, err := ParseConf("/etc/keepalived/keepalived.conf", []byte(conf), nil)
				if err != nil || c.Fatal() == nil {
					t.Fatalf("vipkit: no fatal problem for a bare %s (%v)", kw, err)
				}
				l, err := kaoracle.Run(t, kaoracle.Input{Main: "/etc/keepalived/keepalived.conf", Files: map[string][]byte{"/etc/keepalived/keepalived.conf": []byte(conf)}, Interfaces: []string{"eth0"}})
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Instances) != 0 || !slices.ContainsFunc(l.Log, func(s string) bool { return strings.Contains(s, "permanent error CONFIG") }) {
					t.Errorf("keepalived ran a file with a bare %s:\n%s", kw, strings.Join(l.Log, "\n"))
				}
			})
		}
	}
}
