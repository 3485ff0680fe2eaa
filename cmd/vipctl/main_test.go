package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hooks"
)

func TestExitCodesForUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"vipctl", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"vipctl", "up", "--no-such-flag"}, exitUsage, "no-such-flag"},
		{[]string{"vipctl", "up", "--config", "/nonexistent/vipkit.toml", "--dev", "eth0", "192.0.2.100"}, exitUsage, "/nonexistent/vipkit.toml"},
		{[]string{"vipctl", "up", "--dev", "eth0"}, exitUsage, "no VIP given"},
		{[]string{"vipctl", "up", "192.0.2.100"}, exitUsage, "--dev INTERFACE"},
		{[]string{"vipctl", "up", "--dev", "eth0", "192.0.2.300"}, exitUsage, `"192.0.2.300"`},
		{[]string{"vipctl", "up", "--dev", "eth0", "--count", "0", "192.0.2.100"}, exitUsage, "count 0"},
		{[]string{"vipctl", "down", "--dev", "bad/name", "192.0.2.100"}, exitUsage, `"bad/name"`},
		{[]string{"vipctl", "notify", "INSTANCE", "VI_1", "MASTER"}, exitUsage, "TYPE NAME STATE PRIORITY"},
		{[]string{"vipctl", "notify", "INSTANCE", "VI_1", "MASTR", "100"}, exitUsage, `"MASTR"`},
		{[]string{"vipctl", "handover"}, exitUsage, "exactly one INSTANCE"},
		{[]string{"vipctl", "fifo"}, exitUsage, "FIFO PATH"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			var stderr bytes.Buffer
			t.Setenv("VIPKIT_STATE_DIR", t.TempDir())
			code := run(context.Background(), tt.args, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			out := stderr.String()
			if !strings.Contains(out, tt.msg) {
				t.Errorf("stderr %q does not name %q", out, tt.msg)
			}
			if lines := strings.Count(strings.TrimRight(out, "\n"), "\n"); lines > 0 && !strings.Contains(out, "Incorrect Usage") {
				t.Errorf("error is not one line: %q", out)
			}
		})
	}
}

// keepalived's verbs reach the holder by name: the two lists must agree.
func TestHookVerbsAreHolderVerbs(t *testing.T) {
	for hv, want := range map[hooks.Verb]holder.Verb{hooks.Up: holder.VerbUp, hooks.Down: holder.VerbDown, hooks.Announce: holder.VerbAnnounce} {
		if holder.Verb(hv) != want {
			t.Errorf("hooks.%s is %q, the holder knows it as %q", hv, hv, want)
		}
	}
}
