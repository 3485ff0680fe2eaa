// Package etcdversion knows which etcd server releases break the rule that
// fenced is built on: an acknowledged renewal proves the lease alive until
// its send time + TTL (DESIGN F4, docs/fencing.md). Two server bugs void it;
// a server with either can let two hosts hold one VIP however well fenced
// keeps its deadline.
package etcdversion

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an etcd server release, as the Status RPC reports it.
type Version struct {
	Major, Minor, Patch int
	// Pre marks a pre-release ("3.6.5-rc.0"): it orders before the
	// release, so it does not count as having that release's fixes.
	Pre bool
}

// Parse reads "3.4.23", "v3.6.16" or "3.6.5-rc.0".
func Parse(s string) (Version, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	t, _, _ = strings.Cut(t, "+") // build metadata
	t, pre, _ := strings.Cut(t, "-")
	parts := strings.Split(t, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("parse etcd version %q: want MAJOR.MINOR.PATCH", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("parse etcd version %q: %q is not a number", s, p)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2], pre != ""}, nil
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre {
		s += "-pre"
	}
	return s
}

// Less orders releases.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	if v.Patch != o.Patch {
		return v.Patch < o.Patch
	}
	return v.Pre && !o.Pre
}

func (v Version) sameLine(o Version) bool { return v.Major == o.Major && v.Minor == o.Minor }

// Bug is a server defect that voids a lease holder's deadline.
type Bug struct {
	Issue   string // "etcd#15247"
	Summary string
	// Fixed is the first fixed release of each maintained line, oldest
	// line first. Lines older than the first are affected; lines newer
	// than the last were released with the fix.
	Fixed []Version
}

// LeaseBugs are the known server defects that let an acknowledged renewal
// lie (sources: etcd's CHANGELOG-3.4/3.5/3.6; reference/fencing.md §1.5).
var LeaseBugs = []Bug{
	{
		Issue:   "etcd#15247",
		Summary: "a leader stuck in fdatasync answered keepalives after it had lost leadership, and revoked leases it no longer owned",
		Fixed:   []Version{release(3, 4, 31), release(3, 5, 13), release(3, 6, 0)},
	},
	{
		Issue:   "etcd#20615",
		Summary: "a renewal could succeed for a lease that was being revoked, after its keys were deleted",
		Fixed:   []Version{release(3, 4, 38), release(3, 5, 23), release(3, 6, 5)},
	},
}

func release(major, minor, patch int) Version {
	return Version{Major: major, Minor: minor, Patch: patch}
}

// Affects reports whether release v has the bug.
func (b Bug) Affects(v Version) bool {
	for _, f := range b.Fixed {
		if f.sameLine(v) {
			return v.Less(f)
		}
	}
	return v.Less(b.Fixed[0])
}

// FixedIn is the first release on v's line that has the fix, or the first
// fixed release of the oldest line that has one.
func (b Bug) FixedIn(v Version) Version {
	for _, f := range b.Fixed {
		if f.sameLine(v) {
			return f
		}
	}
	return b.Fixed[0]
}

// Check lists the lease bugs release v has.
func Check(v Version) []Bug {
	var out []Bug
	for _, b := range LeaseBugs {
		if b.Affects(v) {
			out = append(out, b)
		}
	}
	return out
}

// Advice describes, for an operator, the bugs release v has ("etcd 3.4.23
// has etcd#15247 (…; fixed in 3.4.31) and …") and the release to upgrade
// to. ok is false when v has none of them.
func Advice(v Version) (problem string, upgrade Version, ok bool) {
	bugs := Check(v)
	if len(bugs) == 0 {
		return "", Version{}, false
	}
	var what []string
	for _, b := range bugs {
		f := b.FixedIn(v)
		if upgrade.Less(f) {
			upgrade = f
		}
		what = append(what, fmt.Sprintf("%s (%s; fixed in %s)", b.Issue, b.Summary, f))
	}
	return fmt.Sprintf("etcd %s has %s", v, strings.Join(what, " and ")), upgrade, true
}
