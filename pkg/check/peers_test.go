package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/test/repo"
)

// peerConf is one node's file; the cases edit node b's copy.
const peerConf = `track_file fence_VI_1 {
    file "/run/vipkit/VI_1.fence"
    weight 0
    init_file 1 overwrite
}
vrrp_script chk {
    script "/usr/local/sbin/check"
    weight 0
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    unicast_src_ip 192.0.2.11
    unicast_peer {
        192.0.2.12
    }
    virtual_ipaddress {
        192.0.2.100
    }
    track_file {
        fence_VI_1
    }
    track_script {
        chk
    }
}
`

func peerNodes(t *testing.T, a, b string) []Node {
	t.Helper()
	var nodes []Node
	for i, text := range []string{a, b} {
		name := []string{"node-a.conf", "node-b.conf"}[i]
		c, err := keepalived.ParseConf(name, []byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, Node{Name: name, Conf: c})
	}
	return nodes
}

// nodeB is node a's file as node b would have it: its own source, a's
// address as peer, a lower priority.
func nodeB(text string) string {
	return strings.NewReplacer("unicast_src_ip 192.0.2.11", "unicast_src_ip 192.0.2.12", "        192.0.2.12\n", "        192.0.2.11\n", "priority 150", "priority 100").Replace(text)
}

// TestPeers: one fixture per class of cross-node finding; the clean pair
// has none.
func TestPeers(t *testing.T) {
	tests := []struct {
		name string
		a, b []string // edits of node a's and node b's file
		want []want
	}{
		{name: "clean"},
		{name: "vrid mismatch", b: []string{"virtual_router_id 51", "virtual_router_id 52"},
			want: []want{{Error, "vrrp_instance VI_1", "virtual_router_id is 52 on node-b.conf but 51 on node-a.conf", "node-b.conf:10"}}},
		{name: "advert_int mismatch", b: []string{"advert_int 1", "advert_int 2"},
			want: []want{{Error, "vrrp_instance VI_1", "advert_int is 2s on node-b.conf but 1s on node-a.conf: keepalived drops VRRPv2 adverts", "node-b.conf:10"}}},
		{name: "advert_int mismatch, VRRPv3", a: []string{"    state BACKUP\n", "    state BACKUP\n    version 3\n"}, b: []string{"advert_int 1", "advert_int 2", "    state BACKUP\n", "    state BACKUP\n    version 3\n"},
			want: []want{{Warning, "vrrp_instance VI_1", "with VRRPv3 a backup adopts the master's interval", "node-b.conf:10"}}},
		{name: "auth mismatch", b: []string{"auth_pass s3cret", "auth_pass other"},
			want: []want{{Error, "vrrp_instance VI_1", "authentication differs between node-b.conf", "node-b.conf:10"}}},
		{name: "vip mismatch", b: []string{"        192.0.2.100\n", "        192.0.2.101\n"},
			want: []want{{Error, "vrrp_instance VI_1", "VIPs differ: node-b.conf has 192.0.2.101, node-a.conf has 192.0.2.100", "node-b.conf:10"}}},
		{name: "same vrid, two instances", b: []string{"vrrp_instance VI_1", "vrrp_instance VI_2"},
			want: []want{{Error, "vrrp_instance VI_2", "node-b.conf uses VRID 51 on eth0 like vrrp_instance VI_1 on node-a.conf", "node-b.conf:10"}}},
		{name: "nopreempt with state MASTER", a: []string{"state BACKUP", "state MASTER\n    nopreempt"},
			want: []want{{Warning, "vrrp_instance VI_1", "node-a.conf: nopreempt with state MASTER: keepalived ignores nopreempt", "node-a.conf:10"}}},
		{name: "negative weight smaller than the gap", a: []string{"    weight 0\n}\nvrrp_instance", "    weight -20\n}\nvrrp_instance"},
			want: []want{{Warning, "vrrp_instance VI_1", "track_script chk (weight -20) on node-a.conf: when it fails there, node-a.conf's priority is 130 and the best other node's, with it healthy, 100: the failing node stays MASTER", "node-a.conf:31"}}},
		{name: "positive weight smaller than the gap", a: []string{"    weight 0\n}\nvrrp_instance", "    weight 20\n}\nvrrp_instance"},
			want: []want{{Warning, "vrrp_instance VI_1", "when it fails there, node-a.conf's priority is 150 and the best other node's, with it healthy, 120", "node-a.conf:31"}}},
		{name: "negative weight larger than the gap", a: []string{"    weight 0\n}\nvrrp_instance", "    weight -60\n}\nvrrp_instance"}},
		{name: "unicast peer missing", b: []string{"        192.0.2.11\n", "        192.0.2.13\n"},
			want: []want{{Error, "vrrp_instance VI_1", "unicast_peer on node-b.conf (192.0.2.13) does not name node-a.conf's unicast_src_ip 192.0.2.11", "node-b.conf:10"}}},
		{name: "unicast on one node, multicast on the other", b: []string{"    unicast_peer {\n        192.0.2.11\n    }\n", ""},
			want: []want{{Error, "vrrp_instance VI_1", "node-b.conf uses multicast while its peers use unicast", "node-b.conf:10"}}},
		{name: "fenced on one node only", b: []string{"    track_file {\n        fence_VI_1\n    }\n", ""},
			want: []want{{Error, "vrrp_instance VI_1", "fenced watches the instance on node-a.conf but not on node-b.conf", "node-b.conf:10"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := edited(t, peerConf, tt.a, 1), edited(t, nodeB(peerConf), tt.b, 1)
			checkIssues(t, Peers(peerNodes(t, a, b), PeerOptions{}), tt.want)
		})
	}
}

// TestPeersContribClean: two nodes running a shipped file (the second
// with the lower priority the README tells the operator to set) have
// nothing to fix between them.
func TestPeersContribClean(t *testing.T) {
	confs, err := repo.KeepalivedConfs()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range confs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			b := strings.Replace(string(data), "priority 100", "priority 90", 1)
			checkIssues(t, Peers(peerNodes(t, string(data), b), PeerOptions{}), nil)
		})
	}
}
