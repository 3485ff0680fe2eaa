package main

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A refresher is started while up ignores SIGTERM; it must start with
// SIGTERM at its default, or a SIGTERM sent before its runtime starts is
// lost. cat reports its own dispositions: it installs no handlers.
func TestRefresherStartsWithSIGTERMDefault(t *testing.T) {
	if os.Getenv("VIPCTL_TEST_SIGNALS") != "1" {
		// Ignoring SIGTERM cannot be undone in a Go process: do it in a
		// copy of this test binary.
		cmd := exec.Command(os.Args[0], "-test.run=^TestRefresherStartsWithSIGTERMDefault$", "-test.v")
		cmd.Env = append(os.Environ(), "VIPCTL_TEST_SIGNALS=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	holdSignals()
	term := uint64(1) << (syscall.SIGTERM - 1)
	if ignored := childIgnored(t); ignored&term == 0 {
		t.Fatalf("a child started while held does not inherit the ignored SIGTERM (SigIgn %#x): the test sees nothing", ignored)
	}
	var ignored uint64
	if err := caughtWhileStarting(func() error { ignored = childIgnored(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if ignored&term != 0 {
		t.Fatalf("a refresher would start with SIGTERM ignored (SigIgn %#x)", ignored)
	}
	if !signal.Ignored(syscall.SIGTERM) {
		t.Fatal("SIGTERM no longer held off after the refresher started")
	}
}

// childIgnored starts cat and returns the SigIgn mask it reports.
func childIgnored(t *testing.T) uint64 {
	t.Helper()
	out, err := exec.Command("cat", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return mask
		}
	}
	t.Fatal("no SigIgn in /proc/self/status")
	return 0
}
