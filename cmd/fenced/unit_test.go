package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/netnstest"
)

// The shipped unit must pass systemd-analyze verify (with this build's
// binary in place of the installed path; man:fenced(8) is checked in the
// package, not on this machine).
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		netnstest.Missing(t, "systemd-analyze not installed (make deps installs systemd)")
	}
	unit, err := os.ReadFile("../../contrib/systemd/fenced.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fenced")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	text := strings.ReplaceAll(string(unit), "/usr/sbin/fenced", bin)
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=always", "ExecStopPost=", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n", "ReadWritePaths=/run/vipkit", "AF_PACKET"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	if strings.Contains(text, "\nRuntimeDirectory=") {
		t.Error("RuntimeDirectory= would delete the track files when fenced stops: keepalived reads a missing file as OK")
	}
	path := filepath.Join(dir, "fenced.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
