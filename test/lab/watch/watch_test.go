package watch

import (
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"

	"github.com/vipkit/vipkit/test/lab/observe"
)

var (
	vip  = netip.MustParseAddr("192.0.2.100")
	macB = "02:00:c0:00:02:0c"
)

func TestParseKeepalivedLines(t *testing.T) {
	e, ok := ParseFIFOLine(`INSTANCE "VI_1" MASTER 150`)
	if !ok || e.Instance != "VI_1" || e.State != "MASTER" || e.Priority != 150 || e.Source != "fifo" {
		t.Errorf("fifo line: %+v %v", e, ok)
	}
	if e, ok := ParseFIFOLine(`GROUP "G1" BACKUP 0`); !ok || e.Instance != "group:G1" {
		t.Errorf("group line: %+v %v", e, ok)
	}
	if _, ok := ParseFIFOLine("garbage"); ok {
		t.Error("garbage parsed")
	}
	e, ok = ParseLogLine("Wed Nov 25 08:10:22 2026: (VI_1) Entering BACKUP STATE (init)")
	if !ok || e.Instance != "VI_1" || e.State != "BACKUP" {
		t.Errorf("log line: %+v %v", e, ok)
	}
	if _, ok := ParseLogLine("(VI_1) Receive advertisement timeout"); ok {
		t.Error("non-state log line parsed")
	}
}

func TestParseFrameGARP(t *testing.T) {
	hw, _ := net.ParseMAC(macB)
	p, err := arp.NewPacket(arp.OperationRequest, hw, vip, ethernet.Broadcast, vip)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := p.MarshalBinary()
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: hw, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, _ := f.MarshalBinary()
	e, ok := ParseFrame(fb)
	if !ok || e.Op != observe.OpARPRequest || !e.Gratuitous || e.IP != vip || e.MAC != macB {
		t.Errorf("ParseFrame = %+v %v", e, ok)
	}
}
