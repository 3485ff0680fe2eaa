package check

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/hostnet"
)

const cfgDoc = `
[[instance]]
name = "VI_1"
dev = "eth0"
vips = ["192.0.2.100", "2001:db8::100"]
`

func goodFacts() Facts {
	p := func(s string) hostnet.Addr { return hostnet.Addr{Prefix: netip.MustParsePrefix(s), Global: true} }
	return Facts{
		Sysctl: map[string]string{
			"net/ipv4/conf/all/arp_ignore": "0", "net/ipv4/conf/eth0/arp_ignore": "1",
			"net/ipv4/conf/all/arp_announce": "2", "net/ipv4/conf/eth0/arp_announce": "0",
			"net/ipv4/conf/all/promote_secondaries": "1", "net/ipv4/conf/eth0/promote_secondaries": "0",
		},
		Links:    map[string]LinkFacts{"eth0": {Up: true, Addrs: []hostnet.Addr{p("192.0.2.11/24"), p("2001:db8::11/64")}}},
		StateDir: PathFacts{Path: "/run/vipkit", Exists: true, Mode: 0o700, IsDir: true},
		Binaries: []PathChain{{Path: "/usr/local/sbin/vipctl", Chain: []PathFacts{
			{Path: "/usr/local/sbin/vipctl", Exists: true, Mode: 0o755},
			{Path: "/usr/local/sbin", Exists: true, Mode: 0o755, IsDir: true},
			{Path: "/usr/local", Exists: true, Mode: 0o755, IsDir: true},
			{Path: "/usr", Exists: true, Mode: 0o755, IsDir: true},
			{Path: "/", Exists: true, Mode: 0o755, IsDir: true},
		}}},
	}
}

func mustCfg(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse("vipkit.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func find(r Report, check, subjectPart string) *Finding {
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Check == check && strings.Contains(f.Subject+" "+f.Message, subjectPart) {
			return f
		}
	}
	return nil
}

func TestCleanHost(t *testing.T) {
	r := Evaluate(mustCfg(t, cfgDoc), goodFacts())
	if !r.OK || r.Errors != 0 || r.Warnings != 0 {
		t.Fatalf("clean host: %+v", r)
	}
}

func TestFindings(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Facts)
		doc      string
		sev      Severity
		check    string
		contains string
	}{
		{"missing interface", func(f *Facts) { delete(f.Links, "eth0") }, "", Error, "interface", "eth0 does not exist"},
		{"no IPv6 primary", func(f *Facts) {
			l := f.Links["eth0"]
			l.Addrs = l.Addrs[:1]
			f.Links["eth0"] = l
		}, "", Error, "primary-address", "no primary IPv6 address"},
		{"VIP is the primary", nil, "[[instance]]\nname=\"VI_1\"\ndev=\"eth0\"\nvips=[\"192.0.2.11\"]\n", Error, "primary-address", "is the primary IPv4 address"},
		{"arp_ignore", func(f *Facts) { f.Sysctl["net/ipv4/conf/eth0/arp_ignore"] = "0" }, "", Warning, "sysctl", "arp_ignore"},
		{"arp_announce from all counts", func(f *Facts) { f.Sysctl["net/ipv4/conf/all/arp_announce"] = "1" }, "", Warning, "sysctl", "arp_announce"},
		{"promote_secondaries", func(f *Facts) { f.Sysctl["net/ipv4/conf/all/promote_secondaries"] = "0" }, "", Warning, "sysctl", "promote_secondaries"},
		{"orphan route", func(f *Facts) {
			f.Orphans = []hostnet.LocalRoute{{Dst: netip.MustParseAddr("192.0.2.100"), Dev: "eth0", Protocol: hostnet.HintProtocol, Src: netip.MustParseAddr("192.0.2.11")}}
		}, "", Error, "orphan-route", "not assigned here"},
		{"F1 risk", func(f *Facts) {
			f.LocalRoutes = []hostnet.LocalRoute{{Dst: netip.MustParseAddr("192.0.2.100"), Dev: "eth0", Protocol: 2, Src: netip.MustParseAddr("192.0.2.100")}}
		}, "", Warning, "route-hint", "local clients connected to it will hang"},
		{"binary not root-owned", func(f *Facts) { f.Binaries[0].Chain[0].UID = 1000 }, "", Error, "binary", "owned by uid 1000"},
		{"world-writable directory above", func(f *Facts) { f.Binaries[0].Chain[2].Mode = 0o777 }, "", Error, "binary", "/usr/local is writable by everyone"},
		{"missing binary", func(f *Facts) { f.Binaries[0].Chain[0].Exists = false }, "", Error, "binary", "does not exist"},
		{"state dir missing", func(f *Facts) { f.StateDir.Exists = false }, "", Warning, "state-dir", "does not exist"},
		{"state dir writable", func(f *Facts) { f.StateDir.Mode = 0o777 }, "", Error, "state-dir", "writable by others"},
		{"keepalived.conf unreadable", func(f *Facts) { f.KeepalivedErr = errors.New("open /etc/keepalived/keepalived.conf: no such file") }, "", Error, "keepalived-conf", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := goodFacts()
			if tt.mutate != nil {
				tt.mutate(&f)
			}
			doc := cfgDoc
			if tt.doc != "" {
				doc = tt.doc
			}
			r := Evaluate(mustCfg(t, doc), f)
			got := find(r, tt.check, tt.contains)
			if got == nil {
				t.Fatalf("no %s finding containing %q in %+v", tt.check, tt.contains, r.Findings)
			}
			if got.Severity != tt.sev || got.Fix == "" {
				t.Fatalf("finding %+v: want severity %s and a fix", got, tt.sev)
			}
			if (tt.sev == Error) == r.OK {
				t.Fatalf("OK = %v with %d errors", r.OK, r.Errors)
			}
		})
	}
}

func TestSticky(t *testing.T) {
	f := goodFacts()
	f.Binaries[0].Chain[2].Mode = 0o1777 // sticky like /tmp: keepalived accepts it
	if r := Evaluate(mustCfg(t, cfgDoc), f); !r.OK {
		t.Fatalf("sticky directory flagged: %+v", r.Findings)
	}
}
