package check

import (
	"strings"
	"testing"

	"github.com/vipkit/vipkit/test/kaoracle"
)

// TestOracleNopreemptNeedsStateBackup proves what the nopreempt finding
// says: keepalived ignores nopreempt with state MASTER and honours it with
// state BACKUP.
func TestOracleNopreemptNeedsStateBackup(t *testing.T) {
	kaoracle.Require(t)
	for state, wantPreempt := range map[string]bool{"MASTER": true, "BACKUP": false} {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			conf := "vrrp_instance VI_1 {\n  state " + state + "\n  nopreempt\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.100\n  }\n}\n"
			l, err := kaoracle.Run(t, kaoracle.Input{Main: "/etc/keepalived/keepalived.conf", Files: map[string][]byte{"/etc/keepalived/keepalived.conf": []byte(conf)}, Interfaces: []string{"eth0"}})
			if err != nil {
				t.Fatal(err)
			}
			in := l.Instance("VI_1")
			if in == nil {
				t.Fatalf("no VI_1:\n%s", strings.Join(l.Log, "\n"))
			}
			if in.Preempt != wantPreempt {
				t.Errorf("state %s with nopreempt: keepalived's Preempt = %v, want %v", state, in.Preempt, wantPreempt)
			}
		})
	}
}
