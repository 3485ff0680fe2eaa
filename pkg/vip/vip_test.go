package vip

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in     string
		prefix string
		str    string
	}{
		{"192.0.2.100", "192.0.2.100/32", "192.0.2.100"},
		{" 192.0.2.100 ", "192.0.2.100/32", "192.0.2.100"},
		{"192.0.2.100/24", "192.0.2.100/24", "192.0.2.100/24"},
		{"192.0.2.100/32", "192.0.2.100/32", "192.0.2.100"},
		{"2001:db8::100", "2001:db8::100/128", "2001:db8::100"},
		{"2001:db8::100/64", "2001:db8::100/64", "2001:db8::100/64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if got := v.Prefix().String(); got != tt.prefix {
				t.Errorf("Prefix() = %s, want %s", got, tt.prefix)
			}
			if got := v.String(); got != tt.str {
				t.Errorf("String() = %s, want %s", got, tt.str)
			}
			if got := v.HostRoute(); got.Bits() != got.Addr().BitLen() || got.Addr() != v.Addr() {
				t.Errorf("HostRoute() = %s, not a host prefix of %s", got, v.Addr())
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", "not-an-ip", "192.0.2.300", "192.0.2.1/33", "2001:db8::1/129",
		"0.0.0.0", "::", "127.0.0.1", "::1", "224.0.0.18", "ff02::1", "fe80::1",
		"fe80::1%eth0", "::ffff:192.0.2.1", "255.255.255.255", "192.0.2.1/", "/24",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := Parse(in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error = %v, want ErrInvalid", in, err)
			}
		})
	}
}

func TestParseListRejectsDuplicates(t *testing.T) {
	_, err := ParseList([]string{"192.0.2.100", "192.0.2.100/24"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("ParseList duplicate error = %v, want ErrInvalid", err)
	}
	vs, err := ParseList([]string{"192.0.2.100", "2001:db8::100"})
	if err != nil || len(vs) != 2 || vs[0].Is6() || !vs[1].Is6() {
		t.Fatalf("ParseList = %v, %v", vs, err)
	}
}

func TestTextRoundTrip(t *testing.T) {
	v := MustParse("2001:db8::100")
	b, _ := v.MarshalText()
	var w VIP
	if err := w.UnmarshalText(b); err != nil || w != v {
		t.Fatalf("round trip %s -> %q -> %v, %v", v, b, w, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"192.0.2.100", "2001:db8::100/64", "x", "1.2.3.4/0", "::ffff:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses must print back to something that parses to the same VIP.
		w, err := Parse(v.String())
		if err != nil || w != v {
			t.Fatalf("Parse(%q) = %v; reparse of %q = %v, %v", s, v, v.String(), w, err)
		}
		if !v.Addr().IsValid() || v.Prefix().Bits() < 0 || v.Addr() != netip.MustParsePrefix(v.Prefix().String()).Addr() {
			t.Fatalf("inconsistent VIP %v", v)
		}
	})
}
