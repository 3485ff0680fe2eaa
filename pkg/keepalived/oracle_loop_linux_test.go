package keepalived_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/kaoracle"
)

// loopFiles is a glob include whose every file includes the glob again:
// keepalived 2.2.7 recurses into it without end.
func loopFiles(n int) map[string][]byte {
	files := map[string][]byte{filepath.Join(confDir, "keepalived.conf"): []byte("include conf.d/*.conf\n" + variantBase)}
	for i := range n {
		files[filepath.Join(confDir, "conf.d", fmt.Sprintf("%02d.conf", i))] = []byte(fmt.Sprintf("include *.conf\nvrrp_script s%d {\n  script \"/usr/local/sbin/x\"\n}\n", i))
	}
	return files
}

// TestOracleIncludeLoop: keepalived never finishes reading a glob that
// includes itself (it reopens the files until it runs out of descriptors),
// and vipkit says so, reading each file once.
func TestOracleIncludeLoop(t *testing.T) {
	requireOracle(t)
	files := loopFiles(8)
	main := filepath.Join(confDir, "keepalived.conf")
	calls := 0
	c, err := keepalived.ParseConf(main, files[main], func(pattern string) ([]keepalived.File, error) {
		calls++
		var out []keepalived.File
		for _, name := range sortedKeys(files) {
			if ok, _ := filepath.Match(pattern, name); ok {
				out = append(out, keepalived.File{Name: name, Data: files[name]})
			}
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := c.Fatal(); f == nil || !strings.Contains(f.Msg, "recurses into it without end") {
		t.Errorf("fatal problem %+v, want the include loop", f)
	}
	l, err := kaoracle.Run(t, kaoracle.Input{Main: main, Files: files, Interfaces: []string{"eth0"}, Timeout: 3 * time.Second})
	if !errors.Is(err, kaoracle.ErrNoDump) {
		t.Fatalf("keepalived loaded the include loop (err %v)", err)
	}
	opened := 0
	for _, line := range l.Log {
		if strings.HasPrefix(line, "Opening file '") {
			opened++
		}
	}
	if opened < 100 {
		t.Errorf("keepalived opened files %d times in 3s, want it recursing", opened)
	}
	t.Logf("keepalived opened files %d times in 3s; vipkit asked for %d include patterns", opened, calls)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
