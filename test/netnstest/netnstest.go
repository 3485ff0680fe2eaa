// Package netnstest gives privileged tests their own network namespaces.
//
// Every namespace is named with a per-process prefix, is created for one
// test and deleted in t.Cleanup, so a failing test leaves nothing behind and
// two test runs never collide. Code runs inside a namespace only on a locked
// OS thread that is switched back before it is unlocked.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Require stops a test that needs root and network namespaces when the
// machine cannot provide them: a skip on a developer machine, a failure
// under CI=true, where privileged tests must run.
func Require(t testing.TB) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root"
	} else if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		reason = "no network namespace support: " + err.Error()
	} else if _, err := exec.LookPath("ip"); err != nil {
		reason = "needs iproute2 (ip) for the test topology"
	}
	if reason == "" {
		return
	}
	Missing(t, "privileged test: %s", reason)
}

// Missing stops a test that needs something this machine lacks (a
// capability, a binary): a skip on a developer machine, a failure under
// CI=true, where every test must run.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run under CI=true: %s", msg)
	}
	t.Skip(msg)
}

var (
	runID   = newRunID()
	counter atomic.Int64
)

func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Prefix is the name prefix of every namespace this process creates.
func Prefix() string { return "vkt" + runID }

// NS is a named network namespace owned by one test.
type NS struct {
	Name   string
	handle netns.NsHandle
	nl     *netlink.Handle
}

// New creates an empty namespace with loopback up.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	name := fmt.Sprintf("%s-%d", Prefix(), counter.Add(1))
	h, err := newNamed(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	ns := &NS{Name: name, handle: h}
	t.Cleanup(func() { ns.destroy(t) })
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	ns.nl = nl
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bring up lo in %s: %v", name, err)
	}
	return ns
}

func newNamed(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		return 0, err
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: keep it locked so the
		// runtime throws it away instead of reusing it.
		runtime.LockOSThread()
		return 0, fmt.Errorf("return to original netns: %w", err)
	}
	return h, nil
}

func (ns *NS) destroy(t testing.TB) {
	// Kill whatever a test left running in the namespace first; a process
	// holding it would otherwise keep its links alive.
	if out, err := exec.Command("ip", "netns", "pids", ns.Name).Output(); err == nil {
		for _, pid := range strings.Fields(string(out)) {
			_ = exec.Command("kill", "-9", pid).Run()
		}
	}
	if ns.nl != nil {
		ns.nl.Close()
	}
	ns.handle.Close()
	if err := netns.DeleteNamed(ns.Name); err != nil {
		t.Logf("delete netns %s: %v", ns.Name, err)
	}
}

// Handle is a netlink handle bound to the namespace.
func (ns *NS) Handle() *netlink.Handle { return ns.nl }

// NsHandle is the namespace's file descriptor handle.
func (ns *NS) NsHandle() netns.NsHandle { return ns.handle }

// Do runs fn on a locked OS thread inside the namespace. Sockets fn opens
// stay in the namespace after Do returns.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.handle); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns.Name, err)
			runtime.UnlockOSThread()
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the goroutine exits and the runtime
			// terminates the thread rather than reuse it in this namespace.
			errc <- fmt.Errorf("leave netns %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Exec runs a command inside the namespace (ip netns exec) and returns its
// combined output; it fails the test on error.
func (ns *NS) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

// Command prepares a command that runs inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Veth links two namespaces with a veth pair, both ends up.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	la := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(int(b.handle))}
	if err := a.nl.LinkAdd(la); err != nil {
		t.Fatalf("add veth %s(%s)-%s(%s): %v", aName, a.Name, bName, b.Name, err)
	}
	for _, side := range []struct {
		ns   *NS
		name string
	}{{a, aName}, {b, bName}} {
		l, err := side.ns.nl.LinkByName(side.name)
		if err == nil {
			err = side.ns.nl.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("bring up %s in %s: %v", side.name, side.ns.Name, err)
		}
	}
}

// AddAddr assigns an address (CIDR) to a link in the namespace. IPv6
// addresses skip duplicate address detection so they are usable at once.
func (ns *NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	l, err := ns.nl.LinkByName(dev)
	if err != nil {
		t.Fatalf("link %s in %s: %v", dev, ns.Name, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatalf("parse %s: %v", cidr, err)
	}
	if a.IP.To4() == nil {
		a.Flags |= 0x02 // IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(l, a); err != nil {
		t.Fatalf("add %s to %s in %s: %v", cidr, dev, ns.Name, err)
	}
}

// WaitFor polls cond every few milliseconds until it holds or the deadline
// passes; it fails the test with what when it does not.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
