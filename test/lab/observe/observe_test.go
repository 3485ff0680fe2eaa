package observe

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

var (
	vip   = netip.MustParseAddr("192.0.2.100")
	macA  = "02:00:c0:00:02:0b"
	macB  = "02:00:c0:00:02:0c"
	msDur = time.Millisecond
)

func ms(n int) time.Duration { return time.Duration(n) * msDur }

// failoverTimeline is a scripted SIGKILL failover: node-a holds the VIP,
// is killed at 1000 ms and keeps the address; node-b takes over at
// 1350 ms; the router follows node-b's GARP; probes are lost from 1300
// to 1360 ms.
func failoverTimeline() *Timeline {
	tl := NewTimeline()
	tl.SetMAC(macA, "node-a")
	tl.SetMAC(macB, "node-b")
	add := func(e Event) { tl.Add(e) }
	add(Event{At: ms(100), Kind: KindState, Host: "node-a", Instance: "VI_1", State: "MASTER"})
	add(Event{At: ms(100), Kind: KindState, Host: "node-b", Instance: "VI_1", State: "BACKUP"})
	add(Event{At: ms(101), Kind: KindAddr, Host: "node-a", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Dev: "eth0", Present: true})
	add(Event{At: ms(101), Kind: KindRoute, Host: "node-a", IP: vip, Src: vip, Proto: 2, Dev: "eth0", Present: true})
	add(Event{At: ms(102), Kind: KindNeigh, Host: "router", IP: vip, MAC: macA, Present: true})
	add(Event{At: ms(1000), Kind: KindFault, Host: "node-a", Text: "SIGKILL keepalived"})
	add(Event{At: ms(1001), Kind: KindState, Host: "node-a", Instance: "VI_1", State: "DEAD"})
	for seq, at := 1, 900; at < 1500; seq, at = seq+1, at+10 {
		e := Event{At: ms(at), Kind: KindProbe, Host: "client", IP: vip, Seqno: seq, OK: true, RTT: ms(1)}
		switch {
		case at < 1300:
			e.Owner = "node-a"
		case at < 1360:
			e.OK, e.RTT = false, 0
		default:
			e.Owner = "node-b"
		}
		add(e)
	}
	// node-b: route notified before the address (kernel order), then the
	// GARP, then the MASTER line.
	add(Event{At: ms(1350), Kind: KindRoute, Host: "node-b", IP: vip, Src: vip, Proto: 2, Dev: "eth0", Present: true})
	add(Event{At: ms(1350) + 20*time.Microsecond, Kind: KindAddr, Host: "node-b", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Dev: "eth0", Present: true})
	add(Event{At: ms(1351), Kind: KindFrame, Op: OpARPRequest, IP: vip, Target: vip, MAC: macB, Gratuitous: true})
	add(Event{At: ms(1352), Kind: KindNeigh, Host: "router", IP: vip, MAC: macB, Present: true})
	add(Event{At: ms(1353), Kind: KindState, Host: "node-b", Instance: "VI_1", State: "MASTER"})
	// A stale answer from node-b's peer that lost the address: foreign.
	add(Event{At: ms(1400), Kind: KindRoute, Host: "node-a", IP: vip, Src: vip, Proto: 2, Dev: "eth0", Present: false})
	add(Event{At: ms(1400), Kind: KindAddr, Host: "node-a", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Dev: "eth0", Present: false})
	add(Event{At: ms(1450), Kind: KindFrame, Op: OpARPReply, IP: vip, Target: netip.MustParseAddr("192.0.2.1"), MAC: macA})
	return tl
}

func TestFailoverMetrics(t *testing.T) {
	tl := failoverTimeline()
	f := tl.Failover(FailoverSpec{Fault: ms(1000), From: "node-a", VIP: vip, Hosts: []string{"node-a", "node-b"}, End: ms(1500)})
	check := func(name string, got, want time.Duration) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if f.To != "node-b" {
		t.Fatalf("To = %q", f.To)
	}
	check("NewMaster", f.NewMaster, ms(1353))
	check("VIPAdded", f.VIPAdded, ms(1350)+20*time.Microsecond)
	check("FirstAnnounce", f.FirstAnnounce, ms(1351))
	check("Takeover", f.Takeover, ms(350)+20*time.Microsecond)
	check("FirstLost", f.FirstLost, ms(1300))
	check("FirstNewAnswer", f.FirstNewAnswer, ms(1361))
	check("Outage", f.Outage, ms(61))
	check("ClientSwitch", f.ClientSwitch, ms(361))
	// The router's entry moved with node-b's GARP (kernel-stamped, 1351),
	// not when the observer read the neighbour event (1352).
	check("RouterSeen", f.RouterSeen, ms(1352))
	check("RouterConverged", f.RouterConverged, ms(1351))
	check("RouterConvergence", f.RouterConvergence, ms(1)-20*time.Microsecond)
	// Both claim from node-b's route (1350) to node-a's release (1400).
	check("DualOwner", f.DualOwner, ms(50))
	check("Orphan node-b", f.Orphan["node-b"], 0) // 20 µs is below the tolerance
	if f.LostProbes != 6 || f.OldAnswers != 30 {
		t.Errorf("LostProbes %d OldAnswers %d, want 6 and 30", f.LostProbes, f.OldAnswers)
	}
	if f.ForeignAnnounce != 1 {
		t.Errorf("ForeignAnnounce = %d, want 1 (node-a's reply after its release)", f.ForeignAnnounce)
	}
}

func TestFailoverNothingHappened(t *testing.T) {
	tl := NewTimeline()
	f := tl.Failover(FailoverSpec{Fault: ms(10), From: "node-a", VIP: vip, Hosts: []string{"node-a"}, End: ms(20)})
	for name, d := range map[string]time.Duration{"Takeover": f.Takeover, "Outage": f.Outage, "RouterConvergence": f.RouterConvergence} {
		if d != None {
			t.Errorf("%s = %v, want None", name, d)
		}
	}
	if FormatDur(None) != "-" {
		t.Errorf("FormatDur(None) = %q", FormatDur(None))
	}
}

func TestOrphanSpans(t *testing.T) {
	tl := NewTimeline()
	p := netip.PrefixFrom(vip, 32)
	tl.Add(Event{At: ms(10), Kind: KindAddr, Host: "n", IP: vip, Prefix: p, Present: true})
	tl.Add(Event{At: ms(10), Kind: KindRoute, Host: "n", IP: vip, Src: netip.MustParseAddr("192.0.2.11"), Proto: 86, Present: true})
	tl.Add(Event{At: ms(20), Kind: KindAddr, Host: "n", IP: vip, Prefix: p, Present: false})
	tl.Add(Event{At: ms(35), Kind: KindRoute, Host: "n", IP: vip, Src: netip.MustParseAddr("192.0.2.11"), Proto: 86, Present: false})
	got := tl.OrphanSpans("n", vip, ms(50), time.Millisecond)
	if len(got) != 1 || got[0] != (Span{ms(20), ms(35)}) {
		t.Errorf("OrphanSpans = %v", got)
	}
	if c := tl.ClaimSpans("n", vip, ms(50)); len(c) != 1 || c[0] != (Span{ms(10), ms(35)}) {
		t.Errorf("ClaimSpans = %v", c)
	}
}

func TestSpanAlgebra(t *testing.T) {
	a := []Span{{ms(0), ms(10)}, {ms(20), ms(30)}}
	b := []Span{{ms(5), ms(25)}}
	if got := Intersect(a, b); len(got) != 2 || Total(got) != ms(10) {
		t.Errorf("Intersect = %v", got)
	}
	if got := Subtract(a, b); Total(got) != ms(10) || len(got) != 2 {
		t.Errorf("Subtract = %v", got)
	}
	if got := Union(a, b); len(got) != 1 || got[0] != (Span{0, ms(30)}) {
		t.Errorf("Union = %v", got)
	}
	if got := AtLeast(2, a, b, []Span{{ms(8), ms(9)}}); Total(got) != ms(10) {
		t.Errorf("AtLeast = %v (%v)", got, Total(got))
	}
	if got := Clip(a, ms(5), ms(25)); Total(got) != ms(10) {
		t.Errorf("Clip = %v", got)
	}
}

func TestStateSpansIgnoreEvents(t *testing.T) {
	tl := NewTimeline()
	for _, e := range []Event{
		{At: ms(1), State: "BACKUP"}, {At: ms(5), State: "MASTER"},
		{At: ms(6), State: "MASTER_RX_LOWER_PRI"}, {At: ms(9), State: "FAULT"},
	} {
		e.Kind, e.Host, e.Instance = KindState, "n", "VI_1"
		tl.Add(e)
	}
	got := tl.StateSpans("n", "VI_1", ms(20))
	want := []StateSpan{{Span{ms(1), ms(5)}, "BACKUP"}, {Span{ms(5), ms(9)}, "MASTER"}, {Span{ms(9), ms(20)}, "FAULT"}}
	if len(got) != len(want) {
		t.Fatalf("StateSpans = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("span %d = %v, want %v", i, got[i], want[i])
		}
	}
	if s := tl.StateAt("n", "VI_1", ms(7)); s != "MASTER" {
		t.Errorf("StateAt = %q", s)
	}
}

func TestWaitForWakesOnEvents(t *testing.T) {
	tl := NewTimeline()
	tl.Add(Event{Kind: KindNote, Text: "old"})
	go func() {
		time.Sleep(20 * time.Millisecond)
		tl.Add(Event{Kind: KindNote, Text: "new"})
	}()
	e, err := tl.WaitFor(context.Background(), func(e Event) bool { return e.Text == "new" }, 5*time.Second)
	if err != nil || e.Text != "new" || e.Seq != 2 {
		t.Errorf("WaitFor = %+v, %v", e, err)
	}
	// Already recorded events count.
	if _, err := tl.WaitFor(context.Background(), func(e Event) bool { return e.Text == "old" }, time.Millisecond); err != nil {
		t.Errorf("WaitFor on history: %v", err)
	}
	if _, err := tl.WaitFor(context.Background(), func(e Event) bool { return false }, 10*time.Millisecond); err == nil {
		t.Error("WaitFor without a match returned no error")
	}
}

// Without a frame the router applies at once (only an ARP reply, which
// the kernel may hold back during its lock time), convergence is when
// the observer saw the entry move.
func TestRouterConvergedWithoutOverridingFrame(t *testing.T) {
	tl := NewTimeline()
	tl.SetMAC(macA, "node-a")
	tl.SetMAC(macB, "node-b")
	tl.Add(Event{At: ms(100), Kind: KindState, Host: "node-a", Instance: "VI_1", State: "MASTER"})
	tl.Add(Event{At: ms(100), Kind: KindState, Host: "node-b", Instance: "VI_1", State: "BACKUP"})
	tl.Add(Event{At: ms(101), Kind: KindAddr, Host: "node-a", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Dev: "eth0", Present: true})
	tl.Add(Event{At: ms(102), Kind: KindNeigh, Host: "router", IP: vip, MAC: macA, Present: true})
	tl.Add(Event{At: ms(1000), Kind: KindFault, Host: "node-a", Text: "fault"})
	tl.Add(Event{At: ms(1001), Kind: KindState, Host: "node-a", Instance: "VI_1", State: "DEAD"})
	tl.Add(Event{At: ms(1349), Kind: KindState, Host: "node-b", Instance: "VI_1", State: "MASTER"})
	tl.Add(Event{At: ms(1350), Kind: KindAddr, Host: "node-b", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Dev: "eth0", Present: true})
	tl.Add(Event{At: ms(1351), Kind: KindFrame, Op: OpARPReply, IP: vip, Target: netip.MustParseAddr("192.0.2.1"), MAC: macB})
	tl.Add(Event{At: ms(1360), Kind: KindNeigh, Host: "router", IP: vip, MAC: macB, Present: true})
	f := tl.Failover(FailoverSpec{Fault: ms(1000), From: "node-a", VIP: vip, Hosts: []string{"node-a", "node-b"}, End: ms(1500)})
	if f.RouterConverged != ms(1360) || f.RouterSeen != ms(1360) {
		t.Fatalf("RouterConverged %v RouterSeen %v, want both 1.36s", f.RouterConverged, f.RouterSeen)
	}
}
