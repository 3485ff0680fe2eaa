package runstate

import (
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/vip"
)

// A late hook counts its transition but never overwrites the state a
// later-forked hook reported (I6), and what the hooks saw survives the file.
func TestReportFollowsTicketsAndSurvivesTheFile(t *testing.T) {
	st := newState()
	at := time.Unix(1795594797, 0).UTC()
	steps := []struct {
		state string
		tk    Ticket
		want  string
	}{
		{"BACKUP", Ticket{100, 10}, "BACKUP"},
		{"MASTER", Ticket{200, 20}, "MASTER"},
		{"BACKUP", Ticket{150, 15}, "MASTER"}, // forked before the MASTER hook: late
		{StateReleased, Ticket{300, 30}, StateReleased},
	}
	for i, s := range steps {
		st.Report("VI_1", s.state, s.tk, at.Add(time.Duration(i)*time.Second))
		if got := st.Instances["VI_1"].State; got != s.want {
			t.Fatalf("step %d (%s %v): state %s, want %s", i, s.state, s.tk, got, s.want)
		}
	}
	if got := st.Instances["VI_1"].Transitions; got["BACKUP"] != 2 || got["MASTER"] != 1 || got[StateReleased] != 1 {
		t.Fatalf("transitions = %v, want BACKUP:2 MASTER:1 RELEASED:1", got)
	}
	h := st.Hook("notify")
	for _, d := range []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 20 * time.Second} {
		h.Observe(d, d > time.Second, d == 500*time.Microsecond)
	}
	if h.Runs != 4 || h.Failed != 1 || h.Late != 1 || h.Buckets[0] != 1 || h.Buckets[2] != 2 || h.Sum != 20*time.Second+6500*time.Microsecond {
		t.Fatalf("hook stats = %+v", *h)
	}
	st.Record(Entry{VIP: vip.MustParse("192.0.2.100"), Dev: "eth0", Action: ActionUp, Ticket: Ticket{300, 30}, Announced: at, At: at})
	back, err := ParseState(st.Format())
	if err != nil {
		t.Fatal(err)
	}
	in, want := back.Instances["VI_1"], st.Instances["VI_1"]
	if in == nil || in.State != want.State || in.Ticket != want.Ticket || !in.Since.Equal(want.Since) || len(in.Transitions) != 3 || in.Transitions["BACKUP"] != 2 {
		t.Fatalf("instance round trip: %+v, want %+v", in, want)
	}
	if got := back.Hooks["notify"]; got == nil || *got != *h {
		t.Fatalf("hook round trip: %+v, want %+v", got, *h)
	}
	if e := back.Entry(vip.MustParse("192.0.2.100")); e == nil || !e.Announced.Equal(at) {
		t.Fatalf("announced round trip: %+v", e)
	}
	back.KeepInstances([]string{"VI_2"})
	if len(back.Instances) != 0 {
		t.Fatalf("KeepInstances kept %v", back.Instances)
	}
}

func TestParseSeenRejects(t *testing.T) {
	for _, bad := range []string{
		"#instance state=MASTER",
		"#instance name=VI_1 state=MASTER transitions=MASTER",
		"#instance name=VI_1 state=MASTER ticks=x",
		"#hook runs=1",
		"#hook cmd=up buckets=1,2",
		"#hook cmd=up runs=-1",
	} {
		if _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("ParseState(%q) accepted", bad)
		}
	}
}
