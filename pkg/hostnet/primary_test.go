package hostnet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipkit/vipkit/pkg/vip"
)

func addr(p string, mod ...func(*Addr)) Addr {
	a := Addr{Prefix: netip.MustParsePrefix(p), Global: true}
	for _, m := range mod {
		m(&a)
	}
	return a
}

func secondary(a *Addr)  { a.Secondary = true }
func deprecated(a *Addr) { a.Deprecated = true }
func tentative(a *Addr)  { a.Tentative = true }
func linkScope(a *Addr)  { a.Global = false }

func TestPickPrimary(t *testing.T) {
	tests := []struct {
		name  string
		addrs []Addr
		vip   string
		want  string
		err   error
	}{
		{"host address beside keepalived VIP", []Addr{addr("192.0.2.11/24"), addr("192.0.2.100/32")}, "192.0.2.100", "192.0.2.11", nil},
		{"VIP added before the host address", []Addr{addr("192.0.2.100/32"), addr("192.0.2.11/24")}, "192.0.2.100", "192.0.2.11", nil},
		{"prefers the VIP's subnet", []Addr{addr("203.0.113.5/24"), addr("192.0.2.11/24")}, "192.0.2.100", "192.0.2.11", nil},
		{"other subnet when none holds the VIP", []Addr{addr("203.0.113.5/24")}, "192.0.2.100", "203.0.113.5", nil},
		{"prefers subnet address over host address", []Addr{addr("198.51.100.7/32"), addr("203.0.113.5/24")}, "192.0.2.100", "203.0.113.5", nil},
		{"only host addresses", []Addr{addr("198.51.100.7/32")}, "192.0.2.100", "198.51.100.7", nil},
		{"skips secondaries", []Addr{addr("192.0.2.11/24"), addr("192.0.2.12/24", secondary)}, "192.0.2.100", "192.0.2.11", nil},
		{"VIP assigned as secondary", []Addr{addr("192.0.2.11/24"), addr("192.0.2.100/24", secondary)}, "192.0.2.100", "192.0.2.11", nil},
		{"VIP is the primary", []Addr{addr("192.0.2.11/24")}, "192.0.2.11", "", ErrVIPIsPrimary},
		{"no address", nil, "192.0.2.100", "", ErrNoPrimary},
		{"only the VIP", []Addr{addr("192.0.2.100/32")}, "192.0.2.100", "", ErrNoPrimary},
		{"wrong family only", []Addr{addr("192.0.2.11/24")}, "2001:db8::100", "", ErrNoPrimary},
		{"IPv6 skips link-local", []Addr{addr("fe80::1/64", linkScope), addr("2001:db8::11/64")}, "2001:db8::100", "2001:db8::11", nil},
		{"IPv6 skips deprecated and tentative", []Addr{addr("2001:db8::12/64", deprecated), addr("2001:db8::13/64", tentative), addr("2001:db8::11/64")}, "2001:db8::100", "2001:db8::11", nil},
		{"IPv6 keepalived VIP is deprecated /128", []Addr{addr("2001:db8::100/128", deprecated), addr("2001:db8::11/64")}, "2001:db8::100", "2001:db8::11", nil},
		{"IPv6 VIP with a subnet prefix is deprecated", []Addr{addr("2001:db8::11/64"), addr("2001:db8::100/64", deprecated)}, "2001:db8::100", "2001:db8::11", nil},
		{"host /32 of its own beside a VIP", []Addr{addr("198.51.100.7/32"), addr("198.51.100.100/32")}, "198.51.100.7", "", ErrVIPIsPrimary},
		{"VIP beside a host /32 of its own", []Addr{addr("198.51.100.7/32"), addr("198.51.100.100/32")}, "198.51.100.100", "198.51.100.7", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PickPrimary("eth0", tt.addrs, vip.MustParse(tt.vip))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("PickPrimary error = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("PickPrimary = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestCheckSource(t *testing.T) {
	addrs := []Addr{addr("192.0.2.11/24"), addr("2001:db8::11/64")}
	v := vip.MustParse("192.0.2.100")
	if err := CheckSource("eth0", addrs, v, netip.MustParseAddr("192.0.2.11")); err != nil {
		t.Errorf("assigned source rejected: %v", err)
	}
	if err := CheckSource("eth0", addrs, v, netip.MustParseAddr("2001:db8::11")); !errors.Is(err, ErrFamilyMismatch) {
		t.Errorf("IPv6 source for IPv4 VIP: %v, want ErrFamilyMismatch", err)
	}
	if err := CheckSource("eth0", addrs, v, netip.MustParseAddr("192.0.2.12")); !errors.Is(err, ErrNotAssigned) {
		t.Errorf("unassigned source: %v, want ErrNotAssigned", err)
	}
	if err := CheckSource("eth0", addrs, v, v.Addr()); !errors.Is(err, ErrVIPIsPrimary) {
		t.Errorf("VIP as its own source: %v, want ErrVIPIsPrimary", err)
	}
}

func TestCheckDelete(t *testing.T) {
	tests := []struct {
		name  string
		addrs []Addr
		vip   string
		added bool
		err   error
	}{
		{"keepalived /32 VIP", []Addr{addr("192.0.2.11/24"), addr("192.0.2.100/32")}, "192.0.2.100", false, nil},
		{"not assigned: nothing to delete", []Addr{addr("192.0.2.11/24")}, "192.0.2.100", false, nil},
		{"IPv6 /128 VIP", []Addr{addr("fe80::1/64", linkScope), addr("2001:db8::11/64"), addr("2001:db8::100/128", deprecated)}, "2001:db8::100", false, nil},
		{"the primary", []Addr{addr("192.0.2.11/24"), addr("192.0.2.100/32")}, "192.0.2.11", false, ErrVIPIsPrimary},
		{"the primary named with its prefix", []Addr{addr("192.0.2.11/24"), addr("192.0.2.100/32")}, "192.0.2.11/24", true, ErrVIPIsPrimary},
		{"a second subnet's primary", []Addr{addr("192.0.2.11/24"), addr("203.0.113.5/24")}, "203.0.113.5/24", false, ErrVIPIsPrimary},
		{"IPv6 primary", []Addr{addr("2001:db8::11/64"), addr("2001:db8::100/128", deprecated)}, "2001:db8::11", false, ErrVIPIsPrimary},
		{"host /32 of its own", []Addr{addr("198.51.100.7/32"), addr("198.51.100.100/32")}, "198.51.100.7", false, ErrVIPIsPrimary},
		{"VIP beside a host /32 of its own", []Addr{addr("198.51.100.7/32"), addr("198.51.100.100/32")}, "198.51.100.100", false, nil},
		{"secondary named without its prefix", []Addr{addr("192.0.2.11/24"), addr("192.0.2.50/24", secondary)}, "192.0.2.50", false, ErrNotFloating},
		{"secondary named with another prefix", []Addr{addr("192.0.2.11/24"), addr("192.0.2.50/24", secondary)}, "192.0.2.50/25", false, ErrNotFloating},
		{"secondary named with its prefix", []Addr{addr("192.0.2.11/24"), addr("192.0.2.50/24", secondary)}, "192.0.2.50/24", false, nil},
		{"secondary vipkit added", []Addr{addr("192.0.2.11/24"), addr("192.0.2.50/24", secondary)}, "192.0.2.50", true, nil},
		{"the only address", []Addr{addr("192.0.2.100/32")}, "192.0.2.100", false, ErrLastAddress},
		{"the only address, vipkit added", []Addr{addr("192.0.2.100/32")}, "192.0.2.100", true, ErrLastAddress},
		{"only link-local beside it", []Addr{addr("fe80::1/64", linkScope), addr("2001:db8::100/128", deprecated)}, "2001:db8::100", false, ErrLastAddress},
		{"other family does not count", []Addr{addr("2001:db8::11/64"), addr("192.0.2.100/32")}, "192.0.2.100", false, ErrLastAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDelete("eth0", tt.addrs, vip.MustParse(tt.vip), tt.added)
			if tt.err == nil && err != nil {
				t.Fatalf("CheckDelete(%s) = %v, want nil", tt.vip, err)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("CheckDelete(%s) = %v, want %v", tt.vip, err, tt.err)
			}
			if err != nil && !strings.Contains(err.Error(), vip.MustParse(tt.vip).Addr().String()) {
				t.Errorf("error %q does not name the address", err)
			}
		})
	}
}
