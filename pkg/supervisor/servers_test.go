package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/test/etcdtest"
)

// fenced asks every member for its release when a holder starts: a release
// with a known lease bug is recorded (fenced.json, metrics) and, with
// strict_etcd_version, keeps the cluster's instances fenced. Against real
// servers whose version cannot be faked: Debian 12's etcd 3.4.23 and the
// pinned 3.6 build.
func TestIntegrationEtcdReleaseCheck(t *testing.T) {
	tests := []struct {
		binary string
		strict bool
		bugs   []string
		held   bool
	}{
		{"etcd-3.4.23", false, []string{"etcd#15247", "etcd#20615"}, true},
		{"etcd-3.4.23", true, []string{"etcd#15247", "etcd#20615"}, false},
		{"etcd", true, nil, true},
	}
	for _, tt := range tests {
		name := tt.binary
		if tt.strict {
			name += "/strict"
		}
		t.Run(name, func(t *testing.T) {
			srv := etcdtest.Start(t, etcdtest.WithBinary(tt.binary))
			rec, d := newRecorder(), &dialer{clients: map[string][]*clientv3.Client{}}
			s := &Supervisor{Node: "node-a", Actuator: rec, Dial: d.dial, ProgressEvery: 100 * time.Millisecond}
			t.Cleanup(s.Stop)
			doc := "node = \"node-a\"\n" + clusterDoc("main", srv.Endpoints(), "2s")
			if tt.strict {
				doc += "strict_etcd_version = true\n"
			}
			doc += instanceDoc("VI_1", "main", "192.0.2.100")
			if err := s.Apply(context.Background(), cfgOf(t, doc)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the member's release in the snapshot", func() bool {
				c, ok := s.cluster("main")
				return ok && len(c.Servers) == 1 && c.Servers[0].Version != ""
			})
			c, _ := s.cluster("main")
			if got := c.Servers[0].LeaseBugs; !slices.Equal(got, tt.bugs) {
				t.Fatalf("lease bugs of %s (%s) = %v, want %v", tt.binary, c.Servers[0].Version, got, tt.bugs)
			}
			if tt.held {
				waitFor(t, 10*time.Second, "VI_1 unfenced", func() bool { v, _, _ := rec.get("VI_1"); return v == 0 })
				return
			}
			// Strict: well past the hold-down, still fenced, and not hung
			// (the watchdog must not restart fenced for waiting on purpose).
			time.Sleep(3 * time.Second)
			if v, _, _ := rec.get("VI_1"); v != 1 {
				t.Fatalf("strict_etcd_version against %s: VI_1 track file %d, want 1", c.Servers[0].Version, v)
			}
			if !s.Alive(time.Second) {
				t.Fatal("a strict cluster waiting for a fixed release does not count as alive")
			}
			if st := c.Lease.State; !strings.Contains(st, "starting") {
				t.Fatalf("lease state %q: the holder must not have started", st)
			}
		})
	}
}
