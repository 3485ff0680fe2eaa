package report

import (
	"encoding/xml"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
)

var vip = netip.MustParseAddr("192.0.2.100")

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func timeline() *observe.Timeline {
	tl := observe.NewTimeline()
	tl.SetMAC("02:00:c0:00:02:0b", "node-a")
	tl.SetMAC("02:00:c0:00:02:0c", "node-b")
	p := netip.PrefixFrom(vip, 32)
	for _, e := range []observe.Event{
		{At: ms(100), Kind: observe.KindState, Host: "node-a", Instance: "VI_1", State: "MASTER", Priority: 150},
		{At: ms(100), Kind: observe.KindAddr, Host: "node-a", IP: vip, Prefix: p, Present: true},
		{At: ms(100), Kind: observe.KindRoute, Host: "node-a", IP: vip, Src: vip, Proto: 2, Present: true},
		{At: ms(101), Kind: observe.KindNeigh, Host: "router", IP: vip, MAC: "02:00:c0:00:02:0b", Present: true, NeighState: "REACHABLE"},
		{At: ms(101), Kind: observe.KindNeigh, Host: "router", IP: vip, MAC: "02:00:c0:00:02:0b", Present: true, NeighState: "STALE"},
		{At: ms(500), Kind: observe.KindFault, Host: "node-a", Text: "SIGKILL keepalived@node-a"},
		{At: ms(860), Kind: observe.KindState, Host: "node-b", Instance: "VI_1", State: "MASTER", Priority: 100},
		{At: ms(860), Kind: observe.KindAddr, Host: "node-b", IP: vip, Prefix: p, Present: true},
		{At: ms(861), Kind: observe.KindFrame, Host: "switch", Op: observe.OpARPRequest, IP: vip, Target: vip, Gratuitous: true, MAC: "02:00:c0:00:02:0c"},
		{At: ms(861) + 10, Kind: observe.KindFrame, Host: "switch", Op: observe.OpARPRequest, IP: vip, Target: vip, Gratuitous: true, MAC: "02:00:c0:00:02:0c"},
		{At: ms(862), Kind: observe.KindNeigh, Host: "router", IP: vip, MAC: "02:00:c0:00:02:0c", Present: true},
		{At: ms(870), Kind: observe.KindFrame, Host: "switch", Op: observe.OpVRRP, IP: vip, Priority: 100, MAC: "02:00:c0:00:02:0c"},
		{At: ms(900), Kind: observe.KindNote, Host: "x", Text: "<&> escaped"},
	} {
		tl.Add(e)
	}
	for seq, at := 1, 400; at < 1000; seq, at = seq+1, at+10 {
		e := observe.Event{At: ms(at), Kind: observe.KindProbe, Host: "client", IP: vip, Seqno: seq, OK: true, RTT: ms(1), Owner: "node-a"}
		if at >= 700 && at < 860 {
			e.OK, e.Owner = false, ""
		} else if at >= 860 {
			e.Owner = "node-b"
		}
		tl.Add(e)
	}
	return tl
}

func view() View {
	return View{Title: "kill", TL: timeline(), From: ms(0), To: ms(1000), Origin: ms(500), Nodes: []string{"node-a", "node-b"},
		VIPs: []netip.Addr{vip}, Outages: []observe.Span{{From: ms(700), To: ms(861)}}}
}

func TestWriteText(t *testing.T) {
	var b strings.Builder
	if err := WriteText(&b, view()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"   +0.0ms  node-a  EVENT SIGKILL keepalived@node-a",
		"+360.0ms  node-b  VI_1 MASTER (prio 100)",
		"gratuitous ARP for 192.0.2.100 from node-b ×2",
		"neighbour 192.0.2.100 -> 02:00:c0:00:02:0c (node-b)",
		"probes to 192.0.2.100 lost from #31",
		"probes to 192.0.2.100 answered by node-b from #47 (16 lost)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// NUD state changes alone are not news.
	if strings.Count(out, "neighbour 192.0.2.100 -> 02:00:c0:00:02:0b") != 1 {
		t.Errorf("neighbour line repeated:\n%s", out)
	}
}

func TestWriteSVGIsXML(t *testing.T) {
	var b strings.Builder
	if err := WriteSVG(&b, view()); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(b.String()))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{"node-a VI_1", "router neighbour for VIP", "client -&gt; 192.0.2.100", "SIGKILL"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	f := timeline().Failover(observe.FailoverSpec{Fault: ms(500), From: "node-a", VIP: vip, Hosts: []string{"node-a", "node-b"}, End: ms(1000)})
	var b strings.Builder
	if err := WriteSummary(&b, []Column{{Name: "IPv4", F: f}}, [][2]string{{"dual MASTER", "0.0ms"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"takeover", "360.0ms", "node-a -> node-b", "dual MASTER"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
