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
func contribExpect(name string) Expect {
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
		KeepalivedVersion: "2.2.7",
		// Debian creates no keepalived_script user.
		ScriptUserExists: func(name string) bool { return name == "root" },
		Instances:        []ExpectedInstance{ei},
	}
}

// TestContribConfigsInspectClean: `vipctl check` has nothing to say about
// the files vipkit ships, read with the expectations their names promise.
func TestContribConfigsInspectClean(t *testing.T) {
	confs, err := repo.KeepalivedConfs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, path := range confs {
		name := filepath.Base(path)
		names = append(names, name)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := keepalived.ParseConf(name, data, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, is := range Inspect(c, contribExpect(name)) {
				t.Errorf("%s", fmtIssue(is))
			}
			for _, want := range []string{repo.Vipctl, "script_user root", "enable_script_security", "interface eth0", "virtual_router_id 51", "vrrp_instance VI_1", "192.0.2.100"} {
				if !strings.Contains(string(data), want) {
					t.Errorf("%s does not contain %q", name, want)
				}
			}
		})
	}
	want := []string{
		"keepalived-owned-fenced-netns.conf", "keepalived-owned-fenced.conf", "keepalived-owned-fifo.conf",
		"keepalived-owned-notify.conf", "keepalived-owned.conf",
		"vipctl-owned-fenced-netns.conf", "vipctl-owned-fenced.conf", "vipctl-owned.conf",
	}
	if !slices.Equal(names, want) {
		t.Errorf("shipped files %q, want %q (update README.md and contribExpect with the list)", names, want)
	}
}
