package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fencedstate"
)

// fenced check warns when the margin leaves less than fenceSafety times the
// fence that fenced measured, and only then.
func TestCheckWarnsWhenTheMarginIsTightForTheFence(t *testing.T) {
	tests := []struct {
		took time.Duration
		want string // severity, "" for no finding
	}{
		{600 * time.Millisecond, "warning"}, // 1.5 s < 3 x 600 ms
		{100 * time.Millisecond, "info"},
		{0, ""}, // nothing measured yet
	}
	for _, tt := range tests {
		t.Run(tt.took.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := config.Parse("t.toml", []byte(fmt.Sprintf("state_dir = %q\n[[cluster]]\nname = \"a\"\nendpoints = [\"http://192.0.2.20:2379\"]\nmargin = \"1500ms\"\n", dir)))
			if err != nil {
				t.Fatal(err)
			}
			snap := fencedstate.Snapshot{Clusters: []fencedstate.Cluster{{Name: "a", FenceDuration: tt.took}}}
			b, _ := json.Marshal(snap)
			if err := os.WriteFile(filepath.Join(dir, fencedstate.File), b, 0o644); err != nil {
				t.Fatal(err)
			}
			var got []string
			checkFenceCost(cfg, func(sev, subject, fix, format string, args ...any) {
				got = append(got, sev+": "+fmt.Sprintf(format, args...))
			})
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("findings %q without a measured fence", got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want+": ") {
				t.Fatalf("findings %q, want one %s", got, tt.want)
			}
		})
	}
}
