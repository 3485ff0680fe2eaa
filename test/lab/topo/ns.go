package topo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NS is one named network namespace of the lab. Its netlink handle is bound
// to the namespace, so configuring it never moves a thread; only socket
// creation (Do, Dial, ListenPacket) briefly enters it on a locked thread.
type NS struct {
	Name   string // full name under /run/netns, e.g. vkl4242x1a2b-node-a
	Role   string // short name in the lab, e.g. node-a
	handle netns.NsHandle
	nl     *netlink.Handle
}

// newNS creates a named namespace with loopback up. The creating thread
// is switched back to the original namespace; if that fails the goroutine
// exits with the thread locked, so the runtime discards it rather than
// reuse it inside the new namespace.
func newNS(name, role string) (*NS, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if serr := netns.Set(orig); serr != nil {
			// Stuck in another namespace: stay locked.
			if err == nil {
				h.Close()
				_ = netns.DeleteNamed(name)
			}
			done <- result{err: errors.Join(err, fmt.Errorf("return to original netns: %w", serr))}
			return
		}
		runtime.UnlockOSThread()
		done <- result{h, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, r.err)
	}
	ns := &NS{Name: name, Role: role, handle: r.h}
	nl, err := netlink.NewHandleAt(r.h)
	if err != nil {
		ns.delete()
		return nil, fmt.Errorf("netlink handle in netns %s: %w", name, err)
	}
	ns.nl = nl
	if err := ns.LinkUp("lo"); err != nil {
		ns.delete()
		return nil, err
	}
	return ns, nil
}

// Handle is a netlink handle bound to the namespace.
func (ns *NS) Handle() *netlink.Handle { return ns.nl }

// NsHandle is the namespace's file handle, for netlink subscriptions.
func (ns *NS) NsHandle() netns.NsHandle { return ns.handle }

// Path is the namespace's bind mount, usable with setns(2) or nsenter.
func (ns *NS) Path() string { return filepath.Join("/run/netns", ns.Name) }

// Do runs fn on a locked OS thread inside the namespace. Sockets fn opens
// stay in the namespace after Do returns. If the thread cannot be switched
// back, the goroutine exits locked and the runtime discards the thread.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.handle); err != nil {
			// The thread may be half-switched: do not unlock it.
			errc <- fmt.Errorf("enter netns %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", ns.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Command prepares a command that runs inside the namespace through
// `ip netns exec`, which also gives it a /sys of the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := ns.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("run %s %s in netns %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Sysctl writes a net.* sysctl of the namespace, e.g.
// Sysctl("net.ipv4.conf.all.arp_ignore", "1"). /proc/sys/net is resolved
// against the writing thread's namespace, so the write happens in Do.
func (ns *NS) Sysctl(key, value string) error {
	if !strings.HasPrefix(key, "net.") {
		return fmt.Errorf("set sysctl %s in netns %s: only net.* keys are per namespace", key, ns.Name)
	}
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s in netns %s: %w", key, value, ns.Name, err)
	}
	return nil
}

// ReadSysctl reads a net.* sysctl of the namespace.
func (ns *NS) ReadSysctl(key string) (string, error) {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in netns %s: %w", key, ns.Name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// DialContext opens a connection from inside the namespace; the socket is
// created there, the rest of the connection runs on ordinary goroutines.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from netns %s: %w", network, addr, ns.Name, err)
	}
	return c, nil
}

// ListenPacket opens a packet socket inside the namespace. control, when
// set, runs on the raw socket before bind (e.g. to set IP_FREEBIND).
func (ns *NS) ListenPacket(network, addr string, control func(network, address string, c syscall.RawConn) error) (net.PacketConn, error) {
	var pc net.PacketConn
	err := ns.Do(func() error {
		lc := net.ListenConfig{Control: control}
		var err error
		pc, err = lc.ListenPacket(context.Background(), network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in netns %s: %w", network, addr, ns.Name, err)
	}
	return pc, nil
}

// LinkUp brings a link of the namespace up.
func (ns *NS) LinkUp(name string) error {
	l, err := ns.nl.LinkByName(name)
	if err == nil {
		err = ns.nl.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("bring up %s in netns %s: %w", name, ns.Name, err)
	}
	return nil
}

// Link returns a link of the namespace by name.
func (ns *NS) Link(name string) (netlink.Link, error) {
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find link %s in netns %s: %w", name, ns.Name, err)
	}
	return l, nil
}

// Pids lists the processes whose network namespace is this one, the way
// `ip netns pids` does: by comparing namespace inodes.
func (ns *NS) Pids() ([]int, error) { return pidsInNetns(ns.Path()) }

// delete kills what still runs in the namespace and removes it.
func (ns *NS) delete() error {
	var errs []error
	if err := killNetnsPids(ns.Path()); err != nil {
		errs = append(errs, err)
	}
	if ns.nl != nil {
		ns.nl.Close()
	}
	if ns.handle.IsOpen() {
		ns.handle.Close()
	}
	if err := netns.DeleteNamed(ns.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("delete netns %s: %w", ns.Name, err))
	}
	return errors.Join(errs...)
}
