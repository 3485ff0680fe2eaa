package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// TestPrivilegedKeepalivedVersionOfRunningDaemon: `vipctl check` asks the
// keepalived that runs (the VRRP pid file's process), not the one on PATH;
// a pid file naming another program, or none, falls back to PATH.
func TestPrivilegedKeepalivedVersionOfRunningDaemon(t *testing.T) {
	netnstest.Require(t)
	builds, missing, err := repo.Keepaliveds()
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		netnstest.Missing(t, "keepalived builds missing: %v (make deps keepalived)", missing)
	}
	ctx := context.Background()
	onPath := KeepalivedVersion(ctx, "")
	if onPath == "" {
		t.Fatal("no keepalived version from PATH or /usr/sbin/keepalived")
	}
	var other *repo.KeepalivedBuild
	for i := range builds {
		if builds[i].Version.String() != onPath {
			other = &builds[i]
		}
	}
	if other == nil {
		t.Fatalf("every keepalived build is %s, the one on PATH: nothing to tell apart (%v)", onPath, builds)
	}

	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "eth0", peer, "peer0")
	ns.AddAddr(t, "eth0", "192.0.2.11/24")
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte("vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    virtual_ipaddress {\n        192.0.2.100/32\n    }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "vrrp.pid")
	cctx, cancel := context.WithCancel(ctx)
	cmd := ns.Command(cctx, other.Path, "-P", "-n", "-l", "-f", conf, "-p", filepath.Join(dir, "keepalived.pid"), "-r", pidFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	netnstest.WaitFor(t, 10*time.Second, "keepalived's VRRP pid file", func() bool { return runningKeepalived(pidFile) != "" })

	if got := KeepalivedVersion(ctx, pidFile); got != other.Version.String() {
		t.Errorf("version of the running %s = %q, want %s", other.Path, got, other.Version)
	}
	stale := filepath.Join(dir, "stale.pid")
	if err := os.WriteFile(stale, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, filepath.Join(dir, "absent.pid")} {
		if got := KeepalivedVersion(ctx, p); got != onPath {
			t.Errorf("version with pid file %s = %q, want %s (keepalived on PATH)", filepath.Base(p), got, onPath)
		}
	}
}
