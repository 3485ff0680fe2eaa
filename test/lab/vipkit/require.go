package vipkit

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// Require stops a test that cannot run a lab here: a skip on a developer
// machine or with -short, a failure under CI=true (netnstest.Missing).
// what names the test in the message ("end-to-end test").
func Require(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip(what + ": skipped with -short")
	}
	netnstest.Require(t)
	var missing []string
	if _, err := os.Stat(repo.Keepalived()); err != nil {
		missing = append(missing, "keepalived ("+repo.Keepalived()+")")
	}
	for _, b := range []string{"vipctl", "fenced", "etcd"} {
		if _, err := proc.FindBinary(b); err != nil {
			missing = append(missing, "bin/"+b)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "ip")
	}
	if len(missing) > 0 {
		netnstest.Missing(t, "%s needs %s (make deps build etcd)", what, strings.Join(missing, ", "))
	}
}
