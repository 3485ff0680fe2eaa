// Package vip parses and describes floating addresses: the address a host
// takes over, with the prefix it is added with.
package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrInvalid reports a value that is not a usable floating address.
var ErrInvalid = errors.New("invalid VIP")

// VIP is a floating address with the prefix length it is assigned with.
// The zero value is not valid.
type VIP struct {
	prefix netip.Prefix
}

// Parse reads "192.0.2.100", "192.0.2.100/24", "2001:db8::100" or
// "2001:db8::100/64". Without a prefix an IPv4 VIP is a /32 and an IPv6 VIP a
// /128, as keepalived adds them.
func Parse(s string) (VIP, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return VIP{}, fmt.Errorf("parse VIP %q: empty: %w", s, ErrInvalid)
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return VIP{}, fmt.Errorf("parse VIP %q: not an address with a prefix length: %w", s, ErrInvalid)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return VIP{}, fmt.Errorf("parse VIP %q: not an IP address: %w", s, ErrInvalid)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return VIP{}, fmt.Errorf("parse VIP %q: zoned addresses cannot float: %w", s, ErrInvalid)
	case a.Is4In6():
		return VIP{}, fmt.Errorf("parse VIP %q: write IPv4-mapped addresses as IPv4: %w", s, ErrInvalid)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return VIP{}, fmt.Errorf("parse VIP %q: not a unicast address that can float: %w", s, ErrInvalid)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return VIP{}, fmt.Errorf("parse VIP %q: broadcast address: %w", s, ErrInvalid)
	}
	return VIP{prefix: p}, nil
}

// MustParse is Parse for constants in tests and examples; it panics on error.
func MustParse(s string) VIP {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// ParseList parses every string and rejects duplicates.
func ParseList(ss []string) ([]VIP, error) {
	out := make([]VIP, 0, len(ss))
	for _, s := range ss {
		v, err := Parse(s)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o VIP) bool { return o.Addr() == v.Addr() }) {
			return nil, fmt.Errorf("parse VIP %q: listed twice: %w", s, ErrInvalid)
		}
		out = append(out, v)
	}
	return out, nil
}

// Addr is the address itself.
func (v VIP) Addr() netip.Addr { return v.prefix.Addr() }

// Prefix is the address with the prefix length it is assigned with.
func (v VIP) Prefix() netip.Prefix { return v.prefix }

// IsValid reports whether v came from Parse.
func (v VIP) IsValid() bool { return v.prefix.IsValid() }

// Is6 reports whether v is an IPv6 address.
func (v VIP) Is6() bool { return v.prefix.Addr().Is6() }

// Family names the address family for messages: "IPv4" or "IPv6".
func (v VIP) Family() string {
	if v.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// HostRoute is the address as a host prefix (/32 or /128), the destination of
// its local-table route.
func (v VIP) HostRoute() netip.Prefix {
	a := v.prefix.Addr()
	return netip.PrefixFrom(a, a.BitLen())
}

// String prints the address, with the prefix length only when it is not a
// host prefix, so that default VIPs read as operators write them.
func (v VIP) String() string {
	if !v.prefix.IsValid() {
		return "invalid VIP"
	}
	if v.prefix.Bits() == v.prefix.Addr().BitLen() {
		return v.prefix.Addr().String()
	}
	return v.prefix.String()
}

// MarshalText writes String, so VIPs print cleanly in JSON.
func (v VIP) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText is Parse.
func (v *VIP) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
