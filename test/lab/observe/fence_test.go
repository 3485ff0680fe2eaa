package observe

import (
	"net/netip"
	"testing"
)

// A scripted fence: node-a is cut at 1000 ms, removes its hint and address
// at 2300 ms, writes 1 at 2302 ms, reports FAULT at 2303 ms; the server
// deletes its member key at 3400 ms.
func TestFence(t *testing.T) {
	tl := NewTimeline()
	const key = "/vipkit/members/node-a"
	add := func(e Event) { tl.Add(e) }
	add(Event{At: ms(100), Kind: KindAddr, Host: "node-a", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Present: true})
	add(Event{At: ms(100), Kind: KindRoute, Host: "node-a", IP: vip, Src: vip, Proto: 2, Present: true})
	add(Event{At: ms(101), Kind: KindTrack, Host: "node-a", Key: "VI_1.fence", Text: "0"})
	add(Event{At: ms(1000), Kind: KindFault, Host: "node-a", Text: "cut from etcd"})
	add(Event{At: ms(2300), Kind: KindRoute, Host: "node-a", IP: vip, Src: vip, Proto: 2, Present: false})
	add(Event{At: ms(2300), Kind: KindAddr, Host: "node-a", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Present: false})
	add(Event{At: ms(2302), Kind: KindTrack, Host: "node-a", Key: "VI_1.fence", Text: "1"})
	add(Event{At: ms(2303), Kind: KindState, Host: "node-a", Instance: "VI_1", State: "FAULT"})
	add(Event{At: ms(3400), Kind: KindLease, Host: "etcd", Key: key, Text: "delete"})
	add(Event{At: ms(3500), Kind: KindNote, Text: "end"})

	f := tl.Fence(FenceSpec{Host: "node-a", VIPs: []netip.Addr{vip}, Track: "VI_1.fence", Key: key, Since: ms(1000), End: ms(3500)})
	if f.Released != ms(2300) || f.Tracked != ms(2302) || f.Fenced != ms(2302) || f.Fault != ms(2303) || f.Expired != ms(3400) {
		t.Errorf("fence = %+v", f)
	}
	if f.Lead != ms(1098) {
		t.Errorf("lead %s, want 1098ms", FormatDur(f.Lead))
	}
	if got := tl.TrackAt("node-a", "VI_1.fence", ms(2000)); got != "0" {
		t.Errorf("track at 2000 ms = %q, want 0", got)
	}

	// A node that keeps its VIP never fenced, whatever its track file says.
	tl2 := NewTimeline()
	tl2.Add(Event{At: ms(100), Kind: KindAddr, Host: "node-a", IP: vip, Prefix: netip.PrefixFrom(vip, 32), Present: true})
	tl2.Add(Event{At: ms(2302), Kind: KindTrack, Host: "node-a", Key: "VI_1.fence", Text: "1"})
	tl2.Add(Event{At: ms(3400), Kind: KindLease, Host: "etcd", Key: key, Text: "delete"})
	f = tl2.Fence(FenceSpec{Host: "node-a", VIPs: []netip.Addr{vip}, Track: "VI_1.fence", Key: key, Since: ms(1000), End: ms(3500)})
	if f.Released != None || f.Fenced != None || f.Lead != None || f.Expired != ms(3400) {
		t.Errorf("VIP kept: fence = %+v, want no release and no lead", f)
	}
}
