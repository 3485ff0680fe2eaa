package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/repo"
)

// contribExpect is what vipkit.toml says for the instance in a shipped
// file, read from its name: vipctl-owned* own their VIPs (both families),
// *fenced* are guarded by fenced, and every file has the maintenance file.
func contribExpect(name, version string) Expect {
	ei := ExpectedInstance{
		Name:            "VI_1",
		VIPs:            []string{"192.0.2.100"},
		MaintenanceFile: repo.StateDir + "/VI_1.maint",
		Refresh:         true,
	}
	if strings.HasPrefix(name, "vipctl-owned") {
		ei.Own = true
		ei.VIPs = append(ei.VIPs, "2001:db8::100")
	}
	if strings.Contains(name, "-fenced") {
		ei.TrackFile = repo.StateDir + "/VI_1.fence"
	}
	return Expect{
		VipctlPath:        repo.Vipctl,
		FencedPath:        repo.Fenced,
		KeepalivedVersion: version,
		// Debian creates no keepalived_script user.
		ScriptUserExists: func(name string) bool { return name == "root" },
		Instances:        []ExpectedInstance{ei},
	}
}

// contribVersions are the keepalived releases `make test` runs: Debian 12's
// and the one make builds from Debian 13's source package.
var contribVersions = []string{"2.2.7", "2.3.3"}

// TestContribConfigsInspectClean: `vipctl check` has nothing to say about
// the files vipkit ships, read with the expectations their names promise,
// on every release their header claims, except that it recommends the -v3
// form for a VRRPv2 vipctl-owned file where keepalived supports it (2.2.8
// and later). On a release before the claim it reports what would break.
func TestContribConfigsInspectClean(t *testing.T) {
	confs, err := repo.KeepalivedConfs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, path := range confs {
		name := filepath.Base(path)
		names = append(names, name)
		claim, err := repo.ConfClaim(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, version := range contribVersions {
			t.Run(name+"/"+version, func(t *testing.T) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				c, err := keepalived.ParseConf(name, data, nil)
				if err != nil {
					t.Fatal(err)
				}
				v, err := keepalived.ParseVersion(version)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				switch {
				case v.Less(claim):
					want = []string{"error: keepalived " + version + " does not know no_virtual_ipaddress"}
				case strings.HasPrefix(name, "vipctl-owned") && !c.Instances[0].NoVIPs && v.AtLeast(keepalived.NoVIPv3):
					want = []string{"info: keepalived " + version + " runs an instance without VIPs under VRRPv3 when it says no_virtual_ipaddress"}
				}
				issues := Inspect(c, contribExpect(name, version))
				for i, is := range issues {
					if i >= len(want) || !strings.HasPrefix(string(is.Severity)+": "+is.Message, want[i]) {
						t.Errorf("%s", fmtIssue(is))
					}
				}
				if len(issues) < len(want) {
					t.Errorf("%d findings, want %q", len(issues), want)
				}
				for _, want := range []string{repo.Vipctl, "script_user root", "enable_script_security", "interface eth0", "virtual_router_id 51", "vrrp_instance VI_1", "192.0.2.100"} {
					if !strings.Contains(string(data), want) {
						t.Errorf("%s does not contain %q", name, want)
					}
				}
			})
		}
	}
	want := []string{
		"keepalived-owned-fenced-netns.conf", "keepalived-owned-fenced.conf", "keepalived-owned-fifo.conf",
		"keepalived-owned-notify.conf", "keepalived-owned.conf",
		"vipctl-owned-fenced-netns.conf", "vipctl-owned-fenced.conf",
		"vipctl-owned-v3-fenced-netns.conf", "vipctl-owned-v3-fenced.conf", "vipctl-owned-v3.conf",
		"vipctl-owned.conf",
	}
	if !slices.Equal(names, want) {
		t.Errorf("shipped files %q, want %q (update README.md and contribExpect with the list)", names, want)
	}
}
