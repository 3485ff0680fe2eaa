package keepalived

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Version
		bad  bool
	}{
		{in: "2.2.7", want: Version{2, 2, 7}},
		{in: "v2.3.3", want: Version{2, 3, 3}},
		{in: "1:2.2.7-1+b2", want: Version{2, 2, 7}},
		{in: "Keepalived v2.3.3 (03/30,2025)\n\nCopyright(C) 2001-2025 Alexandre Cassen", want: Version{2, 3, 3}},
		{in: "Keepalived v2.2.7 (01/16,2022)\n", want: Version{2, 2, 7}},
		{in: "Keepalived v10.20.30", want: Version{10, 20, 30}},
		{in: "", bad: true},
		{in: "2.2", bad: true},
		{in: "Keepalived", bad: true},
		{in: "keepalived: command not found", bad: true},
		{in: "x2.2.7", bad: true},
	} {
		got, err := ParseVersion(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseVersion(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	order := []Version{{1, 9, 9}, {2, 2, 4}, {2, 2, 7}, NoVIPv3, {2, 2, 10}, {2, 3, 0}, TypedRoutesFixed, {2, 3, 3}, {3, 0, 0}}
	for i, a := range order {
		for j, b := range order {
			if got := a.Less(b); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v", a, b, got)
			}
			if got := a.AtLeast(b); got != (i >= j) {
				t.Errorf("%v.AtLeast(%v) = %v", a, b, got)
			}
		}
	}
	if !(Version{}).IsZero() || NoVIPv3.IsZero() {
		t.Error("IsZero")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"2.2.7", "1:2.2.7-1+b2", "Keepalived v2.3.3 (03/30,2025)", "v99999999999999999999.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		w, err := ParseVersion(v.String())
		if err != nil || w != v {
			t.Fatalf("ParseVersion(%q) = %v, which reads back as %v, %v", s, v, w, err)
		}
	})
}
