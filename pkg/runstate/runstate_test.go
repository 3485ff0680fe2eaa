package runstate

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/vip"
)

func TestTicketOrder(t *testing.T) {
	tests := []struct {
		a, b  Ticket
		after bool
	}{
		{Ticket{10, 5}, Ticket{9, 900}, true},         // later tick wins whatever the PID
		{Ticket{10, 5}, Ticket{10, 4}, true},          // same tick: later PID was forked later
		{Ticket{10, 4}, Ticket{10, 5}, false},         //
		{Ticket{10, 5}, Ticket{10, 5}, false},         // equal is not after
		{Ticket{10, nowPID}, Ticket{10, 99999}, true}, // "now" beats forks of its tick
	}
	for _, tt := range tests {
		if got := tt.a.After(tt.b); got != tt.after {
			t.Errorf("%v.After(%v) = %v, want %v", tt.a, tt.b, got, tt.after)
		}
	}
}

func TestSupersedesAndWanted(t *testing.T) {
	st := newState()
	v := vip.MustParse("192.0.2.100")
	w := vip.MustParse("192.0.2.101")
	r := Proc{PID: 42, Start: 7}
	st.Record(Entry{VIP: v, Action: ActionDown, Ticket: Ticket{20, 1}})
	if _, ok := st.Supersedes(v, Ticket{19, 99}); !ok {
		t.Error("a process forked before the recorded one must be superseded")
	}
	if _, ok := st.Supersedes(v, Ticket{21, 1}); ok {
		t.Error("a process forked after the recorded one must not be superseded")
	}
	if _, ok := st.Supersedes(w, Ticket{1, 1}); ok {
		t.Error("an untouched VIP supersedes nothing")
	}
	st.Record(Entry{VIP: w, Action: ActionUp, Refresher: &r})
	st.Record(Entry{VIP: v, Action: ActionDown, Refresher: &r}) // down keeps no refresher in practice; must not be wanted
	got := st.Wanted(r)
	if len(got) != 1 || got[0].VIP != w {
		t.Fatalf("Wanted = %v, want only %s", got, w)
	}
	if rs := st.Refreshers(); len(rs) != 1 || rs[0] != r {
		t.Fatalf("Refreshers = %v", rs)
	}
}

func TestParseStatStart(t *testing.T) {
	line := "1234 (we ird) (name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 10000 100 18446744073709551615"
	got, err := parseStatStart([]byte(line))
	if err != nil || got != 987654 {
		t.Fatalf("parseStatStart = %d, %v; want 987654", got, err)
	}
	if _, err := parseStatStart([]byte("1 (x) S 1")); err == nil {
		t.Fatal("short line accepted")
	}
}

func TestSaveReadRoundTrip(t *testing.T) {
	s := New(t.TempDir())
	tx, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v := vip.MustParse("2001:db8::100")
	tx.State.Record(Entry{VIP: v, Dev: "eth0", Action: ActionUp, Src: netip.MustParseAddr("2001:db8::11"), Ticket: Ticket{5, 6}, Refresher: &Proc{1, 2}})
	if err := tx.Save(); err != nil {
		t.Fatal(err)
	}
	tx.Unlock()
	st, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	e := st.Entry(v)
	if e == nil || e.Dev != "eth0" || e.Src.String() != "2001:db8::11" || e.Ticket != (Ticket{5, 6}) || *e.Refresher != (Proc{1, 2}) {
		t.Fatalf("read back %+v", e)
	}
}

func TestLockExcludesAndTimesOut(t *testing.T) {
	s := New(t.TempDir())
	tx, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held = %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() {
		tx2, err := s.Lock(context.Background())
		if err == nil {
			tx2.Unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Lock returned (%v) while another holder had it", err)
	case <-time.After(30 * time.Millisecond):
	}
	tx.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("Lock after release = %v", err)
	}
	// The abandoned waiter must not keep the lock forever.
	tx3, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tx3.Unlock()
}

func TestForkTicketsFollowForkOrder(t *testing.T) {
	var prev Ticket
	for i := 0; i < 20; i++ {
		cmd := exec.Command("sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		start, err := ProcStart(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		tk := Ticket{Ticks: start, PID: cmd.Process.Pid}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if i > 0 && !tk.After(prev) {
			t.Fatalf("child %d ticket %v is not after the previous child's %v", i, tk, prev)
		}
		prev = tk
	}
	self, err := ForkTicket()
	if err != nil {
		t.Fatal(err)
	}
	now, err := NowTicket()
	if err != nil {
		t.Fatal(err)
	}
	if !now.After(self) {
		t.Fatalf("NowTicket %v is not after this process's fork ticket %v", now, self)
	}
}

func TestStopEndsProcessAndSparesOthers(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	start, err := ProcStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// A record with the wrong start time is a different (recycled) process.
	if err := Stop(Proc{PID: cmd.Process.Pid, Start: start + 1}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !Alive(Proc{PID: cmd.Process.Pid, Start: start}) {
		t.Fatal("Stop signalled a process whose start time did not match")
	}
	p := Proc{PID: cmd.Process.Pid, Start: start}
	if err := Stop(p, time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
		t.Fatal("process still running after Stop")
	}
	if Alive(p) {
		t.Fatal("Alive after Stop")
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	st := newState()
	st.Record(Entry{VIP: vip.MustParse("192.0.2.100"), Dev: "eth0", Action: ActionUp, Ticket: Ticket{296849, 1557}, Own: true, Instance: "VI_1",
		Src: netip.MustParseAddr("192.0.2.11"), Refresher: &Proc{40218, 296850}, At: time.Unix(1795594797, 408215427).UTC()})
	st.Record(Entry{VIP: vip.MustParse("2001:db8::100/64"), Dev: "eth1", Action: ActionDown, Ticket: Ticket{10, nowPID}, At: time.Unix(1, 0).UTC()})
	got, err := ParseState(st.Format())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 2 {
		t.Fatalf("entries = %d", len(got.Entries))
	}
	for k, want := range st.Entries {
		g := got.Entries[k]
		if g == nil || g.VIP != want.VIP || g.Dev != want.Dev || g.Action != want.Action || g.Ticket != want.Ticket || g.Own != want.Own ||
			g.Instance != want.Instance || g.Src != want.Src || !g.At.Equal(want.At) || (g.Refresher == nil) != (want.Refresher == nil) ||
			(g.Refresher != nil && *g.Refresher != *want.Refresher) {
			t.Errorf("%s: got %+v, want %+v", k, g, want)
		}
	}
}

func TestParseStateRejects(t *testing.T) {
	for _, bad := range []string{"vip=192.0.2.1", "action=up", "vip=x action=up", "vip=192.0.2.1 action=up ticks=z", "vip=192.0.2.1 action=up refresher=1", "garbage"} {
		if _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("ParseState(%q) accepted", bad)
		}
	}
	if st, err := ParseState([]byte("# comment\n\nvip=192.0.2.1 action=up future=1\n")); err != nil || len(st.Entries) != 1 {
		t.Errorf("unknown keys and comments: %v %v", st, err)
	}
}

func FuzzParseState(f *testing.F) {
	st := newState()
	st.Record(Entry{VIP: vip.MustParse("192.0.2.100"), Dev: "eth0", Action: ActionUp, Refresher: &Proc{1, 2}})
	st.Report("VI_1", "MASTER", Ticket{1, 2}, time.Unix(1, 0))
	st.Hook("up").Observe(time.Millisecond, false, false)
	f.Add(string(st.Format()))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseState([]byte(s))
		if err != nil {
			return
		}
		// What parses must survive a round trip.
		again, err := ParseState(got.Format())
		if err != nil || len(again.Entries) != len(got.Entries) || len(again.Instances) != len(got.Instances) || len(again.Hooks) != len(got.Hooks) {
			t.Fatalf("round trip of %q: %v, %d vs %d entries", s, err, len(again.Entries), len(got.Entries))
		}
	})
}

// I10 and I6 together: released entries older than PruneAfter are
// forgotten, those that still matter (holding, naming a refresher, recent)
// are kept, and a process forked before a forgotten entry is superseded for
// a VIP without an entry, so pruning never lets a late hook undo a later
// transition.
func TestPruneKeepsWhatMattersAndRefusesTheTooLate(t *testing.T) {
	now := Ticket{Ticks: 10 * PruneAfter, PID: nowPID}
	old, recent := now.Ticks-PruneAfter-1, now.Ticks-PruneAfter+1
	released := vip.MustParse("192.0.2.100")
	tests := []struct {
		e    Entry
		kept bool
	}{
		{Entry{VIP: released, Action: ActionDown, Ticket: Ticket{old, 7}}, false},
		{Entry{VIP: vip.MustParse("192.0.2.101"), Action: ActionFence, Ticket: Ticket{old - 5, 9}}, false},
		{Entry{VIP: vip.MustParse("192.0.2.102"), Action: ActionUp, Ticket: Ticket{old, 1}}, true},                             // holds the VIP
		{Entry{VIP: vip.MustParse("192.0.2.103"), Action: ActionDown, Ticket: Ticket{old, 1}, Refresher: &Proc{PID: 3}}, true}, // names a refresher
		{Entry{VIP: vip.MustParse("192.0.2.104"), Action: ActionDown, Ticket: Ticket{recent, 1}}, true},                        // recent
	}
	st := newState()
	for _, tt := range tests {
		st.Record(tt.e)
	}
	if n := st.Prune(now); n != 2 {
		t.Fatalf("Prune forgot %d entries, want 2", n)
	}
	for _, tt := range tests {
		if got := st.Entry(tt.e.VIP) != nil; got != tt.kept {
			t.Errorf("%s (%s): kept = %v, want %v", tt.e.VIP, tt.e.Action, got, tt.kept)
		}
	}
	if want := (Ticket{old, 7}); st.Horizon != want {
		t.Fatalf("horizon = %v, want the latest pruned ticket %v", st.Horizon, want)
	}
	// A late MASTER hook forked before the forgotten down must not act.
	if by, ok := st.Supersedes(released, Ticket{old, 6}); !ok || by.Action != ActionPruned {
		t.Fatalf("a process forked before a pruned entry: superseded = %v (%+v), want superseded", ok, by)
	}
	// One forked after it acts, as it would have with the entry kept.
	if _, ok := st.Supersedes(released, Ticket{old, 8}); ok {
		t.Fatal("a process forked after the pruned entry must not be superseded")
	}
	// The horizon survives the file.
	back, err := ParseState(st.Format())
	if err != nil {
		t.Fatal(err)
	}
	if back.Horizon != st.Horizon || len(back.Entries) != 3 {
		t.Fatalf("round trip: horizon %v with %d entries, want %v with 3", back.Horizon, len(back.Entries), st.Horizon)
	}
}
