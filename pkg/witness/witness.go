// Package witness lets etcd decide which node may hold a witnessed
// instance's VIPs (DESIGN F6, I9; docs/witness.md).
//
// Each node whose lease holder is healthy publishes its candidacy for every
// witnessed instance under its lease; the owner of an instance is the node
// whose name is the value of <prefix>/owners/<instance>, a key attached to
// that node's lease. A node's track file for the instance says OK only
// while it holds that key (and its lease holder has not fenced: the holder
// fences at its deadline, before the server can expire the lease and with
// it the key). Every other node stays in FAULT, so keepalived cannot make
// it MASTER, whatever VRRP hears.
//
// The key changes hands in three ways only:
//   - a free key is claimed, with a transaction, by the candidate of highest
//     priority (ties: the lowest node name);
//   - the owner hands it to a candidate (preemption by a returning node of
//     higher priority, or a planned stop), in one transaction, after its VIPs
//     are gone (I3);
//   - the owner's lease ends: revoked after a fence, or expired, which the
//     holder's deadline puts after the fence (I4).
package witness

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Instance is one witnessed keepalived instance as this node sees it.
type Instance struct {
	Name string
	// Priority ranks this node's claim (keepalived's priority on this node).
	Priority int
	// Nopreempt keeps the instance with its owner when a candidate of
	// higher priority appears.
	Nopreempt bool
	// Fast: the VIPs can be removed while keepalived stays MASTER without
	// re-adding them (vipctl-owned VIPs), so a handover lets the successor
	// leave FAULT before the owner resigns, and VRRP's priority-0 advert
	// moves the instance at once. Otherwise the owner resigns first and the
	// successor waits keepalived's master-down interval.
	Fast bool
}

// Offerable says whether the owner of in may pre-grant a planned handover
// to c (docs/witness.md, "The pre-grant"): keepalived-owned VIPs, where
// the owner cannot stay MASTER without them, and a successor of lower
// priority, which as BACKUP keeps hearing the owner's adverts and waits.
// A successor of equal or higher priority would preempt the owner at once.
func Offerable(in Instance, c Candidate) bool { return !in.Fast && c.Priority < in.Priority }

// OwnerKey is where the owner of an instance is recorded, under its lease.
func OwnerKey(prefix, instance string) string {
	return strings.TrimRight(prefix, "/") + "/owners/" + instance
}

// OwnersPrefix holds every owner key.
func OwnersPrefix(prefix string) string { return strings.TrimRight(prefix, "/") + "/owners/" }

// CandidateKey is where node publishes its candidacy for an instance,
// under its lease.
func CandidateKey(prefix, instance, node string) string {
	return CandidatesPrefix(prefix) + instance + "/" + node
}

// OfferKey is where an owner offers a planned handover of an instance to
// its successor, under the owner's lease: the value is the successor's
// node name.
func OfferKey(prefix, instance string) string { return OffersPrefix(prefix) + instance }

// OffersPrefix holds every offer.
func OffersPrefix(prefix string) string { return strings.TrimRight(prefix, "/") + "/offers/" }

// CandidatesPrefix holds every candidacy.
func CandidatesPrefix(prefix string) string {
	return strings.TrimRight(prefix, "/") + "/candidates/"
}

// Candidacy is the JSON value of a candidate key.
type Candidacy struct {
	Priority int `json:"priority"`
	// Holds is set once the node holds the owner key and its track file
	// says OK: what an owner handing over waits for before it resigns.
	Holds bool `json:"holds"`
	// Ready answers an offer addressed to this node: its track file says
	// OK without the key (keepalived BACKUP behind the owner). Only an
	// update written after the offer counts.
	Ready bool `json:"ready,omitempty"`
}

// Encode renders a candidacy.
func (c Candidacy) Encode() string {
	b, _ := json.Marshal(c) // two plain fields: cannot fail
	return string(b)
}

// ParseCandidacy reads a candidate key's value.
func ParseCandidacy(v []byte) (Candidacy, error) {
	var c Candidacy
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("parse candidacy %q: %w", v, err)
	}
	if c.Priority < 1 || c.Priority > 254 {
		return c, fmt.Errorf("parse candidacy %q: priority %d is not between 1 and 254", v, c.Priority)
	}
	return c, nil
}

// Candidate is one node's published candidacy for an instance.
type Candidate struct {
	Node     string
	Priority int
	Lease    int64 // the lease its candidate key is attached to
	Holds    bool
}

// Offer is an owner's offer of a planned handover.
type Offer struct {
	To    string // the successor, "" when there is no offer
	Lease int64  // the lease the offer key is attached to: the owner's
	Rev   int64  // the offer's modification revision
}

// View is what etcd says about one instance.
type View struct {
	// Owner is the owner key's value, "" when the key does not exist.
	Owner      string
	OwnerLease int64
	Candidates []Candidate
	Offer      Offer
}

// Best is the candidate that should hold a free key: the highest priority,
// then the lowest node name, so that every node picks the same one.
func Best(cs []Candidate) (Candidate, bool) {
	if len(cs) == 0 {
		return Candidate{}, false
	}
	return slices.MinFunc(cs, func(a, b Candidate) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return strings.Compare(a.Node, b.Node)
	}), true
}

// Action is what a node does about one instance.
type Action int

const (
	// Wait: another node holds the key or should claim it; stay in FAULT.
	Wait Action = iota
	// Claim the free key.
	Claim
	// Hold: this node holds the key under its current lease.
	Hold
	// HandOver: this node holds the key and must hand it to Decision.To.
	HandOver
	// Accept the owner's offer: leave FAULT (track file OK) without the
	// key, as BACKUP behind an owner of higher priority, for a bounded time.
	Accept
)

func (a Action) String() string {
	return [...]string{"wait", "claim", "hold", "hand-over", "accept"}[a]
}

// Decision is an Action and, for HandOver, the successor.
type Decision struct {
	Action Action
	To     Candidate
}

// Decide applies the claim rules for node self holding lease: a free key
// goes to the best candidate; an owner keeps its key unless a candidate of
// strictly higher priority is there and the instance preempts. A key of
// this node under another lease (a lease lost earlier, not yet expired) is
// not this node's: it waits for it to go.
func Decide(self string, lease int64, in Instance, v View) Decision {
	switch {
	case v.Owner == "":
		if b, ok := Best(v.Candidates); ok && b.Node == self && b.Lease == lease {
			return Decision{Action: Claim}
		}
		return Decision{Action: Wait}
	case v.Owner == self && v.OwnerLease == lease:
		if in.Nopreempt {
			return Decision{Action: Hold}
		}
		others := slices.DeleteFunc(slices.Clone(v.Candidates), func(c Candidate) bool { return c.Node == self })
		if b, ok := Best(others); ok && b.Priority > in.Priority {
			return Decision{Action: HandOver, To: b}
		}
		return Decision{Action: Hold}
	}
	if acceptable(self, lease, in, v) {
		return Decision{Action: Accept}
	}
	return Decision{Action: Wait}
}

// acceptable: the offer names this node and comes from the current owner
// (under the owner's lease), this node's candidacy is published under its
// lease, and the owner's published priority is strictly above this
// node's, so that as BACKUP it keeps hearing the owner and does not
// preempt it.
func acceptable(self string, lease int64, in Instance, v View) bool {
	if in.Fast || v.Owner == "" || v.Owner == self || v.Offer.To != self || v.Offer.Lease != v.OwnerLease {
		return false
	}
	var mine, owner bool
	for _, c := range v.Candidates {
		switch {
		case c.Node == self:
			mine = c.Lease == lease
		case c.Node == v.Owner:
			owner = c.Lease == v.OwnerLease && c.Priority > in.Priority
		}
	}
	return mine && owner
}

// Successor is the candidate a stopping owner hands the key to: the best
// one other than itself.
func Successor(self string, cs []Candidate) (Candidate, bool) {
	return Best(slices.DeleteFunc(slices.Clone(cs), func(c Candidate) bool { return c.Node == self }))
}
