package netnstest

import (
	"net"
	"strings"
	"testing"
)

func TestPrivilegedPairCanPing(t *testing.T) {
	a, b := New(t), New(t)
	Veth(t, a, "va", b, "vb")
	a.AddAddr(t, "va", "192.0.2.1/24")
	b.AddAddr(t, "vb", "192.0.2.2/24")
	out := a.Exec(t, "ping", "-c1", "-W2", "192.0.2.2")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping output:\n%s", out)
	}
	// Do really runs inside the namespace: only there does "va" exist.
	err := a.Do(func() error {
		_, err := net.InterfaceByName("va")
		return err
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if _, err := net.InterfaceByName("va"); err == nil {
		t.Fatalf("va is visible in the test's own namespace")
	}
}
