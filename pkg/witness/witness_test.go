package witness

import "testing"

func TestDecide(t *testing.T) {
	a := Candidate{Node: "node-a", Priority: 150, Lease: 1}
	b := Candidate{Node: "node-b", Priority: 100, Lease: 2}
	c := Candidate{Node: "node-c", Priority: 100, Lease: 3}
	all := []Candidate{c, b, a}
	offerB := Offer{To: "node-b", Lease: 1, Rev: 7}
	tests := []struct {
		name  string
		self  string
		lease int64
		in    Instance
		view  View
		want  Action
		to    string
	}{
		{"free key, best claims", "node-a", 1, Instance{Priority: 150}, View{Candidates: all}, Claim, ""},
		{"free key, others wait", "node-b", 2, Instance{Priority: 100}, View{Candidates: all}, Wait, ""},
		{"tie goes to the lowest name", "node-b", 2, Instance{Priority: 100}, View{Candidates: []Candidate{c, b}}, Claim, ""},
		{"tie, the other waits", "node-c", 3, Instance{Priority: 100}, View{Candidates: []Candidate{c, b}}, Wait, ""},
		{"candidacy under an old lease does not claim", "node-a", 9, Instance{Priority: 150}, View{Candidates: all}, Wait, ""},
		{"no candidacy published yet", "node-a", 1, Instance{Priority: 150}, View{}, Wait, ""},
		{"owner keeps against lower", "node-a", 1, Instance{Priority: 150}, View{Owner: "node-a", OwnerLease: 1, Candidates: all}, Hold, ""},
		{"owner hands to a returning higher priority", "node-b", 2, Instance{Priority: 100}, View{Owner: "node-b", OwnerLease: 2, Candidates: all}, HandOver, "node-a"},
		{"nopreempt keeps it", "node-b", 2, Instance{Priority: 100, Nopreempt: true}, View{Owner: "node-b", OwnerLease: 2, Candidates: all}, Hold, ""},
		{"equal priority does not preempt", "node-c", 3, Instance{Priority: 100}, View{Owner: "node-c", OwnerLease: 3, Candidates: []Candidate{b, c}}, Hold, ""},
		{"own key under an old lease is not ours", "node-a", 1, Instance{Priority: 150}, View{Owner: "node-a", OwnerLease: 7, Candidates: all}, Wait, ""},
		{"another's key", "node-a", 1, Instance{Priority: 150}, View{Owner: "node-b", OwnerLease: 2, Candidates: all}, Wait, ""},
		// The pre-grant: node-a (150) offers to node-b (100).
		{"offer accepted", "node-b", 2, Instance{Priority: 100}, View{Owner: "node-a", OwnerLease: 1, Candidates: all, Offer: offerB}, Accept, ""},
		{"offer to another node", "node-c", 3, Instance{Priority: 100}, View{Owner: "node-a", OwnerLease: 1, Candidates: all, Offer: offerB}, Wait, ""},
		{"offer on a vipctl-owned instance", "node-b", 2, Instance{Priority: 100, Fast: true}, View{Owner: "node-a", OwnerLease: 1, Candidates: all, Offer: offerB}, Wait, ""},
		{"offer under another lease than the owner's", "node-b", 2, Instance{Priority: 100}, View{Owner: "node-a", OwnerLease: 1, Candidates: all, Offer: Offer{To: "node-b", Lease: 9, Rev: 7}}, Wait, ""},
		{"offer without an owner", "node-b", 2, Instance{Priority: 100}, View{Candidates: []Candidate{b, c}, Offer: offerB}, Claim, ""},
		{"offer while this node's candidacy is under an old lease", "node-b", 5, Instance{Priority: 100}, View{Owner: "node-a", OwnerLease: 1, Candidates: all, Offer: offerB}, Wait, ""},
		{"offer from an owner without candidacy", "node-b", 2, Instance{Priority: 100}, View{Owner: "node-a", OwnerLease: 1, Candidates: []Candidate{b, c}, Offer: offerB}, Wait, ""},
		{"offer from an owner of equal priority", "node-c", 3, Instance{Priority: 100}, View{Owner: "node-b", OwnerLease: 2, Candidates: all, Offer: Offer{To: "node-c", Lease: 2, Rev: 7}}, Wait, ""},
		{"offer from an owner of lower priority (a preemption)", "node-a", 1, Instance{Priority: 150}, View{Owner: "node-b", OwnerLease: 2, Candidates: all, Offer: Offer{To: "node-a", Lease: 2, Rev: 7}}, Wait, ""},
		{"the key came with the offer still there", "node-b", 2, Instance{Priority: 100}, View{Owner: "node-b", OwnerLease: 2, Candidates: []Candidate{b, c}, Offer: offerB}, Hold, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.self, tt.lease, tt.in, tt.view)
			if d.Action != tt.want || d.To.Node != tt.to {
				t.Errorf("Decide = %v to %q, want %v to %q", d.Action, d.To.Node, tt.want, tt.to)
			}
		})
	}
}

func TestOfferable(t *testing.T) {
	for _, tt := range []struct {
		in   Instance
		to   int
		want bool
	}{
		{Instance{Priority: 150}, 100, true},
		{Instance{Priority: 150}, 150, false},
		{Instance{Priority: 100}, 150, false},
		{Instance{Priority: 150, Fast: true}, 100, false},
	} {
		if got := Offerable(tt.in, Candidate{Node: "s", Priority: tt.to}); got != tt.want {
			t.Errorf("Offerable(%+v, priority %d) = %v, want %v", tt.in, tt.to, got, tt.want)
		}
	}
}

func TestSuccessor(t *testing.T) {
	cs := []Candidate{{Node: "node-a", Priority: 150}, {Node: "node-c", Priority: 50}, {Node: "node-b", Priority: 100}}
	if s, ok := Successor("node-a", cs); !ok || s.Node != "node-b" {
		t.Errorf("Successor(node-a) = %v %v, want node-b", s, ok)
	}
	if _, ok := Successor("node-a", cs[:1]); ok {
		t.Error("Successor with nobody else found one")
	}
}

func TestCandidacyRoundTrip(t *testing.T) {
	for _, c := range []Candidacy{{Priority: 1}, {Priority: 254, Holds: true}, {Priority: 100, Ready: true}} {
		got, err := ParseCandidacy([]byte(c.Encode()))
		if err != nil || got != c {
			t.Errorf("round trip of %+v = %+v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "{", `{"priority":0}`, `{"priority":255}`, `"x"`} {
		if _, err := ParseCandidacy([]byte(bad)); err == nil {
			t.Errorf("ParseCandidacy(%q) succeeded", bad)
		}
	}
}

func FuzzParseCandidacy(f *testing.F) {
	f.Add([]byte(`{"priority":100,"holds":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCandidacy(b)
		if err == nil && (c.Priority < 1 || c.Priority > 254) {
			t.Errorf("accepted priority %d", c.Priority)
		}
	})
}
