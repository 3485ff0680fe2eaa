package topo

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/netnstest"
)

func requirePrivileged(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged lab test: skipped with -short")
	}
	netnstest.Require(t)
}

func TestPrivilegedTopoBuildAndClose(t *testing.T) {
	requirePrivileged(t)
	topo, err := Build(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = topo.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Both families route from the client through the router to a node.
	for _, dst := range []string{"192.0.2.11", "2001:db8::12", "192.0.2.20"} {
		if out, err := topo.Client.NS.Run(ctx, "ping", "-c1", "-W2", dst); err != nil {
			t.Errorf("ping %s from client: %v\n%s", dst, err, out)
		}
	}
	// The node-side interface is eth0 with the planned MAC.
	l, err := topo.Nodes[1].NS.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Attrs().HardwareAddr.String(); got != "02:00:c0:00:02:0c" {
		t.Errorf("node-b MAC = %s", got)
	}
	for key, want := range map[string]string{
		"net.ipv4.conf.all.arp_ignore":           "1",
		"net.ipv4.conf.eth0.arp_announce":        "2",
		"net.ipv4.conf.eth0.promote_secondaries": "1",
	} {
		if got, err := topo.Nodes[0].NS.ReadSysctl(key); err != nil || got != want {
			t.Errorf("node-a %s = %q (%v), want %s", key, got, err, want)
		}
	}
	if got, _ := topo.Router.NS.ReadSysctl("net.ipv4.ip_forward"); got != "1" {
		t.Errorf("router ip_forward = %q", got)
	}

	// Port isolation separates the nodes but keeps the router.
	if err := topo.IsolatePorts(true, "node-a", "node-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := topo.Nodes[0].NS.Run(ctx, "ping", "-c1", "-W1", "192.0.2.12"); err == nil {
		t.Error("isolated node-a still reaches node-b")
	}
	if out, err := topo.Nodes[0].NS.Run(ctx, "ping", "-c1", "-W2", "192.0.2.1"); err != nil {
		t.Errorf("isolated node-a lost the router: %v\n%s", err, out)
	}
	if err := topo.IsolatePorts(false, "node-a", "node-b"); err != nil {
		t.Fatal(err)
	}

	// Both cut methods stop node-a from reaching etcd, and restore works.
	for _, m := range []CutMethod{CutBlackhole, CutNeighbour} {
		if err := topo.CutEtcd("node-a", m); err != nil {
			t.Fatal(err)
		}
		if _, err := topo.Nodes[0].NS.Run(ctx, "ping", "-c1", "-W1", "192.0.2.20"); err == nil {
			t.Errorf("%s: node-a still reaches etcd", m)
		}
		if err := topo.RestoreEtcd("node-a"); err != nil {
			t.Fatal(err)
		}
		if out, err := topo.Nodes[0].NS.Run(ctx, "ping", "-c1", "-W2", "192.0.2.20"); err != nil {
			t.Errorf("%s: node-a does not reach etcd after restore: %v\n%s", m, err, out)
		}
	}

	names := topo.Namespaces()
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if _, err := os.Stat(ns.Path()); err == nil {
			t.Errorf("namespace %s left behind", ns.Name)
		}
	}
}

func TestPrivilegedCleanupStale(t *testing.T) {
	requirePrivileged(t)
	// A prefix whose owner PID cannot exist stands for a crashed run.
	prefix := PrefixBase + "999999999x0bad"
	ns, err := newNS(prefix+"-node-a", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.delete() })
	// This PID with another start time: the PID was reused, the run that
	// made the namespace is gone.
	ticks, err := startTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	reused := fmt.Sprintf("%s%ds%dx0bad", PrefixBase, os.Getpid(), ticks+1)
	rns, err := newNS(reused+"-node-a", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rns.delete() })
	live, err := newNS(NewPrefix()+"-node-a", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.delete() })
	if !strings.Contains(live.Name, fmt.Sprintf("s%dx", ticks)) {
		t.Fatalf("prefix %s does not carry this process's start ticks %d", live.Name, ticks)
	}

	deleted, err := CleanupStale(PrefixBase)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{prefix, reused} {
		if !strings.Contains(strings.Join(deleted, " "), p) {
			t.Errorf("CleanupStale deleted %v, want %s among them", deleted, p)
		}
	}
	if _, err := os.Stat(live.Path()); err != nil {
		t.Errorf("CleanupStale removed the live run's namespace %s", live.Name)
	}
}
