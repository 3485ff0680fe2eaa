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
	// ErrNotFloating and ErrLastAddress refuse a deletion (CheckDelete).
	ErrNotFloating = errors.New("not a floating address")
	ErrLastAddress = errors.New("last address of its family")
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
	// CheckRelease decides whether v may be released (see CheckRelease).
	CheckRelease(v vip.VIP, removeAddr, added bool) error
	// IsAssigned reports whether v's address is on the link.
	IsAssigned(v vip.VIP) (bool, error)
	AddVIP(v vip.VIP) error
	SetHint(v vip.VIP, src netip.Addr) error
	ClearHint(v vip.VIP) error
	// Release removes v's hint routes, then its address (DESIGN §2).
	Release(v vip.VIP) error
	// ReleaseAll releases many VIPs: DropRoutes, then DropAddrs, so each
	// VIP still loses its route before its address. The kernel walks the
	// whole IPv6 routing table for every IPv6 address it deletes; with the
	// routes gone first that table is small, and releasing a thousand VIPs
	// stays linear. errs[i] is the error of vs[i].
	ReleaseAll(vs []vip.VIP) (errs []error)
	// DropRoutes deletes the VIPs' hint routes (and an IPv6 /128's kernel
	// prefix route), the first half of a release.
	DropRoutes(vs []vip.VIP) (errs []error)
	// DropAddrs deletes the VIPs' addresses, in the order the kernel lists
	// them; call it only for VIPs whose routes are gone (I1).
	DropAddrs(vs []vip.VIP) (errs []error)
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
// A VIP that is one of the interface's own addresses (see Owned) is
// refused: releasing it would take the host's own address, and with
// promote_secondaries off, every secondary with it.
func PickPrimary(dev string, addrs []Addr, v vip.VIP) (netip.Addr, error) {
	owned, isOwned := Owned(addrs, v.Addr())
	isPrimary := func() (netip.Addr, error) { return netip.Addr{}, errOwned(dev, v, owned) }
	if isOwned && owned.Prefix.Bits() < owned.Prefix.Addr().BitLen() {
		return isPrimary()
	}
	var inSubnet, nonHost, any netip.Addr
	for _, a := range addrs {
		addr := a.Prefix.Addr()
		if addr.Is4() != v.Addr().Is4() || !a.Global || a.Tentative || a.DADFailed || addr == v.Addr() {
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
		if a.IsValid() && isOwned {
			return isPrimary() // a host /32 or /128 of its own, beside others
		}
		if a.IsValid() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no primary %s address other than %s to use as the source hint: %w", dev, v.Family(), v.Addr(), ErrNoPrimary)
}

// usable reports whether a can be the host's own address: global, settled,
// and neither secondary (IPv4) nor deprecated (keepalived and vipkit add
// IPv6 VIPs deprecated, so that the kernel never picks them as a source).
func (a Addr) usable() bool {
	return a.Global && !a.Tentative && !a.DADFailed && !a.Secondary && !a.Deprecated
}

// Owned reports whether addr is one of the interface's own addresses rather
// than a floating one, and returns it as assigned. The interface's own
// addresses of a family are its usable addresses with a subnet prefix; when
// it has none (a host configured with a /32 or /128 of its own), the first
// usable one in kernel order, the address PickPrimary falls back to. vipkit
// never deletes an address it could use as a hint source.
func Owned(addrs []Addr, addr netip.Addr) (Addr, bool) {
	var fallback *Addr
	subnet := false
	for i, a := range addrs {
		if a.Prefix.Addr().Is4() != addr.Is4() || !a.usable() {
			continue
		}
		if a.Prefix.Bits() < a.Prefix.Addr().BitLen() {
			subnet = true
			if a.Prefix.Addr() == addr {
				return a, true
			}
		} else if fallback == nil {
			fallback = &addrs[i]
		}
	}
	if !subnet && fallback != nil && fallback.Prefix.Addr() == addr {
		return *fallback, true
	}
	return Addr{}, false
}

// CheckDelete decides, changing nothing, whether vipkit may delete v's
// address from dev, whose addresses are addrs. It may delete only a
// floating address: never one of the interface's own (Owned), never one
// with a subnet prefix unless vipkit added it (added) or it is named with
// that very prefix, and never the last global address of its family on the
// interface. An address that is not assigned needs no deletion and passes.
func CheckDelete(dev string, addrs []Addr, v vip.VIP, added bool) error {
	var found *Addr
	others := 0
	for i, a := range addrs {
		switch {
		case a.Prefix.Addr().Is4() != v.Addr().Is4():
		case a.Prefix.Addr() == v.Addr():
			found = &addrs[i]
		case a.Global:
			others++
		}
	}
	if found == nil {
		return nil
	}
	if others == 0 {
		return fmt.Errorf("%s (%s) is the last global %s address of %s: vipkit never deletes it: %w", v.Addr(), found.Prefix, v.Family(), dev, ErrLastAddress)
	}
	if a, ok := Owned(addrs, v.Addr()); ok {
		return errOwned(dev, v, a)
	}
	host := found.Prefix.Bits() == found.Prefix.Addr().BitLen()
	if !host && !added && v.Prefix() != found.Prefix {
		return fmt.Errorf("%s on %s is a /%d address that vipkit did not add; name it as %s to delete it: %w", v.Addr(), dev, found.Prefix.Bits(), found.Prefix, ErrNotFloating)
	}
	return nil
}

// CheckRelease decides, changing nothing, whether vipkit may release v on
// dev: with removeAddr the address itself goes (CheckDelete); without it
// only the hint does, and a VIP that is one of the interface's own
// addresses is refused all the same, as up refuses it.
func CheckRelease(dev string, addrs []Addr, v vip.VIP, removeAddr, added bool) error {
	if removeAddr {
		return CheckDelete(dev, addrs, v, added)
	}
	if a, ok := Owned(addrs, v.Addr()); ok {
		return errOwned(dev, v, a)
	}
	return nil
}

func errOwned(dev string, v vip.VIP, a Addr) error {
	return fmt.Errorf("%s is the primary %s address of %s (%s), not a floating address: %w", v.Addr(), v.Family(), dev, a.Prefix, ErrVIPIsPrimary)
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
