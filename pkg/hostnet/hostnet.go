// Package hostnet reads and changes what the kernel holds for floating
// addresses: the addresses on an interface, and the local-table route that
// decides which source address local clients use to reach a VIP.
//
// The route source hint (DESIGN F1): the kernel gives a VIP the local route
// "local VIP dev IF src VIP". A local client connecting to the VIP then uses
// the VIP as its source and hangs when the VIP moves away. vipkit replaces
// that route with one whose source is the interface's primary address, and
// removes it (or restores the kernel's own) when the host stops holding the
// VIP. Hint routes carry protocol HintProtocol so they are never mistaken
// for the kernel's or keepalived's.
package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vipkit/vipkit/pkg/vip"
)

// HintProtocol is the routing protocol number of every route vipkit
// installs ("proto 86" in ip route output). keepalived uses 18.
const HintProtocol = 86

// Kernel's own routing protocol number (RTPROT_KERNEL).
const kernelProtocol = 2

// Sentinel errors for bad input: callers map them to the usage exit code.
var (
	ErrNoSuchDevice   = errors.New("no such network interface")
	ErrNoPrimary      = errors.New("no primary address")
	ErrVIPIsPrimary   = errors.New("VIP is the interface's own primary address")
	ErrNotAssigned    = errors.New("address not assigned")
	ErrFamilyMismatch = errors.New("address families differ")
)

// Link is a network interface as vipkit needs it.
type Link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	Up    bool
	NoARP bool
}

// Addr is one address on an interface, with the kernel's flags.
type Addr struct {
	Prefix     netip.Prefix
	Secondary  bool
	Deprecated bool
	Tentative  bool
	DADFailed  bool
	// Global is false for link, host and site scoped addresses.
	Global bool
}

// LocalRoute is a host route in the local table.
type LocalRoute struct {
	Dst       netip.Addr
	Dev       string
	LinkIndex int
	Src       netip.Addr // preferred source; invalid when the route has none
	Protocol  int
	Metric    int
}

// View is one link's addresses and the host's local routes, read from the
// kernel once and kept current by the changes made through it. A command or
// a fence takes one View per link and plans every VIP from it, so its cost
// is linear in the VIPs it names (I10); asking the kernel per VIP made it
// quadratic (each netlink dump lists every address and route of the host).
//
// A View is not safe for concurrent use. Callers hold vipctl's lock, so only
// keepalived can change the link meanwhile, and every deletion tolerates
// finding the thing already gone.
type View interface {
	Link() Link
	// Primary picks the hint source for v (PickPrimary).
	Primary(v vip.VIP) (netip.Addr, error)
	// CheckSource validates an operator-chosen hint source.
	CheckSource(v vip.VIP, src netip.Addr) error
	// IsAssigned reports whether v's address is on the link.
	IsAssigned(v vip.VIP) (bool, error)
	AddVIP(v vip.VIP) error
	SetHint(v vip.VIP, src netip.Addr) error
	ClearHint(v vip.VIP) error
	// Release removes v's hint routes, then its address (DESIGN §2).
	Release(v vip.VIP) error
	// ReleaseAll releases many VIPs: every hint route first, then every
	// address, so each VIP still loses its route before its address. The
	// kernel walks the whole IPv6 routing table for every IPv6 address it
	// deletes; with the hints gone first that table is small, and releasing
	// a thousand VIPs stays linear. errs[i] is the error of vs[i].
	ReleaseAll(vs []vip.VIP) (errs []error)
	// Settle finishes what the kernel completes asynchronously: the swap of
	// the IPv6 local routes of freshly added VIPs for their hints. Call it
	// once after a batch of SetHint.
	Settle() error
}

// IsHint reports whether vipkit installed the route.
func (r LocalRoute) IsHint() bool { return r.Protocol == HintProtocol }

// IsKernel reports whether the kernel installed the route for an address.
func (r LocalRoute) IsKernel() bool { return r.Protocol == kernelProtocol }

func (r LocalRoute) String() string {
	s := fmt.Sprintf("local %s dev %s proto %d", r.Dst, r.Dev, r.Protocol)
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

// PickPrimary chooses the source address for a VIP's route hint from the
// interface's addresses, in kernel order: a global, usable address of the
// VIP's family that is not the VIP, preferring one whose subnet holds the
// VIP, then one that is not itself a host (/32, /128) address.
//
// A VIP that is the interface's own primary address (assigned with a subnet
// prefix and not secondary) is refused: releasing it would take the host's
// own address, and with promote_secondaries off, every secondary with it.
func PickPrimary(dev string, addrs []Addr, v vip.VIP) (netip.Addr, error) {
	var inSubnet, nonHost, any netip.Addr
	for _, a := range addrs {
		addr := a.Prefix.Addr()
		if addr.Is4() != v.Addr().Is4() || !a.Global || a.Tentative || a.DADFailed {
			continue
		}
		if addr == v.Addr() {
			if a.Prefix.Bits() < addr.BitLen() && !a.Secondary {
				return netip.Addr{}, fmt.Errorf("%s is the primary %s address of %s (%s), not a floating address: %w", v.Addr(), v.Family(), dev, a.Prefix, ErrVIPIsPrimary)
			}
			continue
		}
		if a.Secondary || a.Deprecated {
			continue
		}
		if !any.IsValid() {
			any = addr
		}
		if !nonHost.IsValid() && a.Prefix.Bits() < addr.BitLen() {
			nonHost = addr
		}
		if !inSubnet.IsValid() && a.Prefix.Bits() < addr.BitLen() && a.Prefix.Contains(v.Addr()) {
			inSubnet = addr
		}
	}
	for _, a := range []netip.Addr{inSubnet, nonHost, any} {
		if a.IsValid() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no primary %s address other than %s to use as the source hint: %w", dev, v.Family(), v.Addr(), ErrNoPrimary)
}

// CheckSource validates an explicitly chosen hint source against the VIP.
func CheckSource(dev string, addrs []Addr, v vip.VIP, src netip.Addr) error {
	if src.Is4() != v.Addr().Is4() {
		return fmt.Errorf("source %s is not an %s address like %s: %w", src, v.Family(), v.Addr(), ErrFamilyMismatch)
	}
	if src == v.Addr() {
		return fmt.Errorf("source %s is the VIP itself: %w", src, ErrVIPIsPrimary)
	}
	for _, a := range addrs {
		if a.Prefix.Addr() == src {
			return nil
		}
	}
	return fmt.Errorf("source %s is not assigned on %s: %w", src, dev, ErrNotAssigned)
}
