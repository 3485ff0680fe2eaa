package check

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/repo"
)

// corpusExpect manages every instance of the file, so that every rule of
// Inspect runs on it.
func corpusExpect(c *keepalived.Conf) Expect {
	e := baseExpect()
	e.Instances = nil
	for _, in := range c.Instances {
		ei := ExpectedInstance{Name: in.Name, Group: in.SyncGroup, TrackFile: "/run/vipkit/" + in.Name + ".fence", MaintenanceFile: "/run/vipkit/" + in.Name + ".maint"}
		for _, v := range in.VIPs {
			ei.VIPs = append(ei.VIPs, v.Prefix.Addr().String())
		}
		e.Instances = append(e.Instances, ei)
	}
	return e
}

func corpus(t testing.TB) (string, []string) {
	t.Helper()
	dir, files, err := repo.KeepalivedCorpus()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return dir, files
}

// TestInspectCorpus: vipctl check's judgement of keepalived.conf runs on
// every real-world file without a panic, and every finding has a fix and
// a place. (Whether the reading agrees with keepalived is
// TestOracleCorpus in pkg/keepalived.)
func TestInspectCorpus(t *testing.T) {
	dir, files := corpus(t)
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			c, err := keepalived.LoadConf(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			for _, is := range Inspect(c, corpusExpect(c)) {
				if is.Fix == "" || is.Subject == "" {
					t.Errorf("finding without a fix or subject: %s", fmtIssue(is))
				}
			}
		})
	}
}

// BenchmarkInspectCorpusLargest is vipctl check's reading and judging of
// the largest corpus file; BenchmarkInspectIncludeLoop that of eight files
// that include each other through a glob (34 s and 780 MB before the
// loop was cut at its first repetition).
func BenchmarkInspectCorpusLargest(b *testing.B) {
	dir, files := corpus(b)
	largest, size := "", int64(0)
	for _, rel := range files {
		if fi, err := os.Stat(filepath.Join(dir, rel)); err == nil && fi.Size() > size {
			largest, size = filepath.Join(dir, rel), fi.Size()
		}
	}
	b.Logf("%s (%d bytes)", filepath.Base(largest), size)
	for b.Loop() {
		c, err := keepalived.LoadConf(largest)
		if err != nil {
			b.Fatal(err)
		}
		Inspect(c, corpusExpect(c))
	}
}

func BenchmarkInspectIncludeLoop(b *testing.B) {
	dir := b.TempDir()
	main := filepath.Join(dir, "keepalived.conf")
	os.WriteFile(main, []byte("include conf.d/*.conf\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "conf.d"), 0o755)
	for i := range 8 {
		os.WriteFile(filepath.Join(dir, "conf.d", string(rune('a'+i))+".conf"), []byte("include *.conf\nvrrp_script s {\n script /bin/true\n}\n"), 0o644)
	}
	for b.Loop() {
		c, err := keepalived.LoadConf(main)
		if err != nil {
			b.Fatal(err)
		}
		if c.Fatal() == nil {
			b.Fatal("include loop not reported")
		}
		Inspect(c, corpusExpect(c))
	}
}
