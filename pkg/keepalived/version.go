package keepalived

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
)

// Version is a keepalived release, e.g. 2.2.7.
type Version struct{ Major, Minor, Patch int }

// Releases whose behaviour vipkit depends on.
var (
	// NoVIPv3 is the first release with no_virtual_ipaddress: an instance
	// without VIPs may run VRRPv3 (sub-second adverts), which 2.2.7 refuses.
	NoVIPv3 = Version{2, 2, 8}
	// TypedRoutesFixed is the first release that installs a typed
	// virtual_routes entry (local, blackhole, ...) without `prepend`
	// (keepalived commit 9309a4be).
	TypedRoutesFixed = Version{2, 3, 2}
	// Reader23 is where the reader models keepalived 2.3's parser: a
	// second group list drops its vrrp_sync_group, and a quoted script
	// keeps its backslashes for the one unescaping that splits it into
	// argv. Both are seen in 2.3.3 and not in 2.2.7 (TestOracleVariants
	// on each); the releases in between are assumed to behave like 2.3.3
	// from 2.3.0 on, which no test here covers.
	Reader23 = Version{2, 3, 0}
)

// versionRE is compiled on first use: vipctl hooks import this package and
// would pay for it at every start otherwise.
var versionRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?m)^(?:Keepalived v|v|\d+:)?(\d+)\.(\d+)\.(\d+)`)
})

// ParseVersion reads "2.2.7", "v2.2.7", Debian's "1:2.2.7-1+b2" or the
// first line of `keepalived --version` ("Keepalived v2.3.3 (03/30,2025)").
func ParseVersion(s string) (Version, error) {
	m := versionRE().FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("parse keepalived version %q: want MAJOR.MINOR.PATCH", s)
	}
	var v Version
	for i, p := range []*int{&v.Major, &v.Minor, &v.Patch} {
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return Version{}, fmt.Errorf("parse keepalived version %q: %w", s, err)
		}
		*p = n
	}
	return v, nil
}

// Less reports whether v is an earlier release than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// AtLeast reports whether v is w or later.
func (v Version) AtLeast(w Version) bool { return !v.Less(w) }

// IsZero reports whether v is unknown.
func (v Version) IsZero() bool { return v == Version{} }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }
