package main

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/netnstest"
)

// echoServer answers every line on port 7000 in ns until the test ends.
func echoServer(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":7000"); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(c, c)
		}
	}()
}

// f1Run moves vip from A to B under a client on A that is connected to the
// VIP, and returns how long after the move the client saw an error (or
// limit if it never did) and its source address.
func f1Run(t *testing.T, vip string, withVipctl bool, limit time.Duration) (time.Duration, string, error) {
	t.Helper()
	a := newHost(t)
	b := &host{ns: a.peer, peer: a.ns, state: t.TempDir()}
	t.Cleanup(func() { b.killRefreshers(t) })
	plen := "/32"
	if strings.Contains(vip, ":") {
		plen = "/128"
	}
	echoServer(t, a.ns)
	echoServer(t, b.ns)
	if withVipctl {
		a.ok(t, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", vip)
	} else {
		a.ns.Exec(t, "ip", "addr", "add", vip+plen, "dev", "eth0", "nodad")
	}
	var c net.Conn
	if err := a.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(vip, "7000"), 2*time.Second)
		return
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	src := c.LocalAddr().(*net.TCPAddr).IP.String()
	buf := make([]byte, 5)
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("echo before failover: %v", err)
	}
	// Failover: the old owner releases, the new one takes over.
	if withVipctl {
		a.ok(t, "down", "--own", "--dev", "eth0", vip)
		b.ok(t, "up", "--own", "--refresh-for", "0s", "--dev", "eth0", vip)
	} else {
		a.ns.Exec(t, "ip", "addr", "del", vip+plen, "dev", "eth0")
		b.ns.Exec(t, "ip", "addr", "add", vip+plen, "dev", "eth0", "nodad")
	}
	moved := time.Now()
	for time.Since(moved) < limit {
		c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := c.Write([]byte("ping\n"))
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return time.Since(moved), src, err
		}
	}
	return limit, src, nil
}

// F1: a client on the old owner, connected to the VIP, gets an error within
// a second of the failover with vipctl; without it (the control) it hangs.
func TestPrivilegedLocalClientResetAfterFailover(t *testing.T) {
	for _, tc := range []struct{ vip, primary string }{{"192.0.2.100", "192.0.2.11"}, {"2001:db8::100", "2001:db8::11"}} {
		t.Run(tc.vip, func(t *testing.T) {
			took, src, err := f1Run(t, tc.vip, true, 3*time.Second)
			if src != tc.primary {
				t.Fatalf("with vipctl the local client's source is %s, want the primary %s", src, tc.primary)
			}
			if took >= time.Second {
				t.Fatalf("with vipctl the local client saw no error within %s of the failover", took)
			}
			// The new owner does not know the connection: it resets it.
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("with vipctl the client got %v, want a reset from the new owner", err)
			}
			ctl, ctlSrc, _ := f1Run(t, tc.vip, false, 3*time.Second)
			if ctlSrc != tc.vip {
				t.Fatalf("control: source %s, want the VIP (the kernel's default)", ctlSrc)
			}
			if ctl < 3*time.Second {
				t.Fatalf("control: the client failed after %s without vipctl; the failure F1 prevents did not reproduce", ctl)
			}
			t.Logf("F1 %s: reset after %s with vipctl; control still hanging after %s", tc.vip, took.Round(time.Microsecond), ctl)
		})
	}
}
