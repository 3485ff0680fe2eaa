package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// TestWitnessEtcdMembers: the witness over the three-node lab's 3-member
// etcd cluster. A follower SIGSTOPped for longer than the lease TTL is
// none of the nodes' business (the cluster keeps quorum and a leader):
// node-a keeps the VIPs, its fenced does not fence (track file 0
// throughout, no fence in its log), its keepalived stays MASTER, no other
// node holds them. The leader SIGKILLed (and, longer than the TTL later,
// restarted on its data dir: it rejoins) or SIGSTOPped is an outage until
// a new one is elected: no dual owner, and a fence, when the lab's short
// lease does not ride the election out, before the lease could expire;
// each run logs which it was. Two of the three members stopped (quorum
// lost): every node fails closed (each fenced fences with time left on
// its lease, node-a gives the VIPs up before the lease could expire,
// nobody else takes them), and the lab is steady again once the members
// are thawed.
func TestWitnessEtcdMembers(t *testing.T) {
	ctx := context.Background()
	key, opts := witnessOpts(vipkit.Hooks)
	hold := vipkit.DefaultTTL + 2*time.Second
	t.Run("leader-killed", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		leader := etcdLeader(t, ctx, v)
		logs := fencedLogOffsets(t, v)
		at, err := v.KillEtcdMember(leader)
		if err != nil {
			t.Fatal(err)
		}
		waitLab(t, ctx, v, at+hold)
		back, err := v.RestartEtcdMember(leader)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.RecoverEtcd(ctx); err != nil {
			t.Fatalf("the killed leader did not rejoin: %v", err)
		}
		rejoined := v.TL.Now()
		end := rejoined + time.Second
		waitLab(t, ctx, v, end)
		outcome := leaderLost(t, v, logs, at, end)
		t.Logf("leader %s SIGKILLed at %s, restarted %s later, healthy again %s after the restart; new leader %s; %s",
			v.EtcdMemberName(leader), observe.FormatAt(at), ms(back-at), ms(rejoined-back), v.EtcdMemberName(etcdLeader(t, ctx, v)), outcome)
	})
	// stopped SIGSTOPs member i for hold, thaws it, waits until every
	// member is healthy and a second more; it returns the window.
	stopped := func(t *testing.T, v *vipkit.Lab, i int) (at, end time.Duration) {
		t.Helper()
		at, err := v.PauseEtcdMember(i)
		if err != nil {
			t.Fatal(err)
		}
		waitLab(t, ctx, v, at+hold)
		if _, err := v.ResumeEtcdMember(i); err != nil {
			t.Fatal(err)
		}
		if err := v.RecoverEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		end = v.TL.Now() + time.Second
		waitLab(t, ctx, v, end)
		return at, end
	}
	t.Run("follower-stopped", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		i := (etcdLeader(t, ctx, v) + 1) % v.EtcdMembers()
		logs := fencedLogOffsets(t, v)
		at, end := stopped(t, v, i)
		if ownerKept(t, v, logs, at, end) {
			t.Logf("%s (a follower) SIGSTOPped for %s (TTL %s); node-a kept the VIPs throughout", v.EtcdMemberName(i), ms(hold), ms(vipkit.DefaultTTL))
		}
	})
	t.Run("leader-stopped", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		i := etcdLeader(t, ctx, v)
		logs := fencedLogOffsets(t, v)
		at, end := stopped(t, v, i)
		outcome := leaderLost(t, v, logs, at, end)
		t.Logf("%s (the leader) SIGSTOPped for %s: %s; new leader %s", v.EtcdMemberName(i), ms(hold), outcome, v.EtcdMemberName(etcdLeader(t, ctx, v)))
	})
	t.Run("quorum-lost", func(t *testing.T) {
		v := shared(t, ctx, key, opts)
		leader := etcdLeader(t, ctx, v)
		other := (leader + 1) % v.EtcdMembers()
		logs := fencedLogOffsets(t, v)
		at, err := v.PauseEtcdMember(leader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.PauseEtcdMember(other); err != nil {
			t.Fatal(err)
		}
		waitLab(t, ctx, v, at+hold)
		thaw := v.TL.Now()
		if err := v.RecoverEtcd(ctx); err != nil {
			t.Fatal(err)
		}
		a := v.Nodes[0]
		// The lease's server deadline is at most TTL after its last renewal,
		// which was before the fault.
		mustGo := at + vipkit.DefaultTTL
		for _, ip := range v.VIPs() {
			if d := dualOwner(v, ip, at, thaw); d != 0 {
				t.Errorf("%s: dual-owner %s without quorum", ip, ms(d))
			}
			gone := claimEnd(v.TL, a.Name, ip, at, thaw)
			if gone == observe.None || gone >= mustGo {
				t.Errorf("%s: node-a did not give it up before its lease could expire (claim ended %s, lease expires at the latest %s)", ip, observe.FormatAt(gone), observe.FormatAt(mustGo))
			} else {
				t.Logf("%s: node-a gave it up %s after the quorum went, %s before its lease could expire", ip, ms(gone-at), ms(mustGo-gone))
			}
			for _, n := range v.Nodes[1:] {
				if c := claimed(v, n.Name, ip, at, thaw); c != 0 {
					t.Errorf("%s: %s held it for %s without quorum", ip, n.Name, ms(c))
				}
			}
		}
		for _, n := range v.Nodes {
			fs := fencesSince(t, v, n, logs[n.Name])
			if len(fs) == 0 {
				t.Errorf("%s: fenced did not fence without quorum", n.Name)
				continue
			}
			if fs[0].Msg == lostUnfenced {
				// Still in its hold-down after an earlier fault: fenced
				// already, it only drops the lease.
				t.Logf("%s: fenced was still fenced (hold-down) and lost its lease (%s: %s)", n.Name, fs[0].Reason, fs[0].Detail)
				continue
			}
			if fs[0].Lead <= 0 {
				t.Errorf("%s: fenced fenced %s after its lease's deadline (%s)", n.Name, ms(-fs[0].Lead), fs[0].Reason)
			}
			t.Logf("%s: fenced fenced with %s left on its lease (%s: %s)", n.Name, ms(fs[0].Lead), fs[0].Reason, fs[0].Detail)
		}
		m, err := v.WaitSteady(ctx, thaw, 30*time.Second)
		if err != nil {
			t.Fatalf("no recovery after the quorum came back: %v", err)
		}
		t.Logf("%s and %s SIGSTOPped for %s; steady again (%s MASTER) %s after the thaw", v.EtcdMemberName(leader), v.EtcdMemberName(other), ms(hold), m.Name, ms(v.TL.Now()-thaw))
	})
}

// leaderLost checks what must hold when the etcd leader goes, an outage
// of the whole cluster until the others elect a new one (1 to 2 election
// timeouts, 1 s each by default): no dual owner, and a fence, if the lab's
// lease does not ride the outage out (TTL 3 s, margin 1 s, a renewal every
// second leave 1 to 2 s of validity after the last acknowledged renewal:
// docs/witness.md, "Timing"), before the lease could expire. It returns
// what happened to the owner.
func leaderLost(t *testing.T, v *vipkit.Lab, logs map[string]int64, at, end time.Duration) string {
	t.Helper()
	for _, ip := range v.VIPs() {
		if d := dualOwner(v, ip, at, end); d != 0 {
			t.Errorf("%s: dual-owner %s", ip, ms(d))
		}
	}
	a := v.Nodes[0]
	fs := fencesSince(t, v, a, logs[a.Name])
	for _, f := range fs {
		if f.Msg == "fenced" && f.Lead <= 0 {
			t.Errorf("node-a's fenced fenced %s after its lease's deadline", ms(-f.Lead))
		}
	}
	if len(fs) == 0 {
		return "node-a kept the VIPs, dual-owner 0"
	}
	outcome := fmt.Sprintf("node-a fenced with %s left on its lease (%s)", ms(fs[0].Lead), fs[0].Reason)
	for _, n := range v.Nodes {
		if b := takeover(v, n, at); b != observe.None {
			outcome += fmt.Sprintf("; %s MASTER %s after the fault", n.Name, ms(b-at))
		}
	}
	return outcome + "; dual-owner 0"
}

// etcdLeader is the index of the lab etcd's leader.
func etcdLeader(t *testing.T, ctx context.Context, v *vipkit.Lab) int {
	t.Helper()
	if n := v.EtcdMembers(); n != 3 {
		t.Fatalf("the witness lab runs %d etcd members, want 3", n)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		i, err := v.EtcdLeader(ctx)
		if err == nil {
			return i
		}
		select {
		case <-ctx.Done():
			t.Fatal(err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ownerKept checks that node-a, the owner, kept the VIPs through [from,
// to]: held them the whole time, stayed MASTER, its fence track file
// stayed 0 and its fenced logged no fence; no other node held them. It
// reports whether all of that held.
func ownerKept(t *testing.T, v *vipkit.Lab, logs map[string]int64, from, to time.Duration) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		ok = false
		t.Errorf(format, args...)
	}
	a := v.Nodes[0]
	for _, ip := range v.VIPs() {
		if d := dualOwner(v, ip, from, to); d != 0 {
			fail("%s: dual-owner %s", ip, ms(d))
		}
		if c := claimed(v, a.Name, ip, from, to); c < to-from-time.Millisecond {
			fail("%s: node-a held it only %s of %s", ip, ms(c), ms(to-from))
		}
	}
	if s := v.TL.StateAt(a.Name, lab.Instance, from); s != "MASTER" {
		fail("node-a was %s, not MASTER, when the fault began", s)
	}
	for _, e := range v.TL.Events(func(e observe.Event) bool {
		return e.Host == a.Name && e.At >= from && e.At <= to &&
			((e.Kind == observe.KindState && e.Instance == lab.Instance && e.State != "MASTER") ||
				(e.Kind == observe.KindTrack && e.Key == lab.Instance+".fence" && e.Text != "0"))
	}) {
		fail("node-a at %s: %s", observe.FormatAt(e.At), e)
	}
	if fs := fencesSince(t, v, a, logs[a.Name]); len(fs) > 0 {
		fail("node-a's fenced fenced: %s: %s", fs[0].Reason, fs[0].Detail)
	}
	return ok
}

// fenceLine is fenced's log line for a fence ("fenced", with how long
// before the lease's local deadline it came), or for a lease lost while the
// holder was fenced already (lostUnfenced: in its hold-down).
type fenceLine struct {
	Msg    string        `json:"msg"`
	Reason string        `json:"reason"`
	Detail string        `json:"detail"`
	Lead   time.Duration `json:"lead"`
}

const lostUnfenced = "lease lost before unfencing"

// fencedLogOffsets are the sizes of every node's fenced log now: what
// fencesSince reads after.
func fencedLogOffsets(t *testing.T, v *vipkit.Lab) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, n := range v.Nodes {
		fi, err := os.Stat(filepath.Join(n.Dir, "fenced.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		out[n.Name] = fi.Size()
	}
	return out
}

// fencesSince are the fences node n's fenced logged after offset.
func fencesSince(t *testing.T, v *vipkit.Lab, n *lab.Node, offset int64) []fenceLine {
	t.Helper()
	f, err := os.Open(filepath.Join(n.Dir, "fenced.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []fenceLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l fenceLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Msg == "fenced" || l.Msg == lostUnfenced) && l.Reason != "" {
			out = append(out, l)
		}
	}
	return out
}
