package vip

// Target is one keepalived instance's VIPs on one link: the unit a hook, a
// fence and vipctl's state act on. The configuration produces it for a named
// instance ([[instance]]), vipctl's flags for --dev and VIP arguments.
type Target struct {
	// Instance is the keepalived instance's name; empty from flags alone.
	Instance string
	Dev      string
	VIPs     []VIP
	// Own: vipkit adds and removes the addresses itself (vipctl-owned);
	// otherwise keepalived does (keepalived-owned).
	Own bool
}
