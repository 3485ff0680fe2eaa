package keepalived

import (
	"path/filepath"
	"testing"
)

// contribDir holds the keepalived.conf files vipkit ships.
const contribDir = "../../contrib/keepalived"

// The placeholders every shipped file uses; the lab and the privileged test
// replace them by plain string substitution.
const (
	contribVipctl   = "/usr/local/sbin/vipctl"
	contribFenced   = "/usr/local/sbin/fenced"
	contribStateDir = "/run/vipkit"
)

// contribFiles lists the shipped configs and fails if there are none, so a
// moved directory cannot make the tests pass vacuously.
func contribFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(contribDir, "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped configs in %s: %v", contribDir, err)
	}
	return files
}
