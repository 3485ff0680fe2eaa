// Package promtool runs Prometheus's promtool (bin/promtool, taken from
// Debian's prometheus package by `make promtool`) for tests: the metrics
// fenced serves, the alert rules and their unit tests.
package promtool

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// Path finds promtool: $VIPKIT_BIN_DIR/promtool, else the repository's
// bin/promtool. Missing, the test is skipped, or fails under CI=true; with
// -short (make test-unit: no binaries) it is skipped.
func Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs promtool: skipped with -short")
	}
	var dirs []string
	if d := os.Getenv("VIPKIT_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if root, err := repo.Root(); err == nil {
		dirs = append(dirs, filepath.Join(root, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "promtool")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	netnstest.Missing(t, "promtool not found in %s: run make promtool", strings.Join(dirs, ", "))
	return ""
}

// Run runs promtool with args and stdin, returning its combined output and
// whether it exited 0.
func Run(t testing.TB, stdin []byte, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run promtool %v: %v", args, err)
	}
	return string(out), err == nil
}

// CheckMetrics fails the test unless promtool finds nothing to say about
// the exposition text.
func CheckMetrics(t testing.TB, text []byte) {
	t.Helper()
	out, ok := Run(t, text, "check", "metrics")
	if !ok || strings.TrimSpace(out) != "" {
		t.Fatalf("promtool check metrics (ok=%v):\n%s", ok, out)
	}
}
