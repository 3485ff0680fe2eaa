package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// maxOrphan bounds a local route outliving its address during the flaps
// (DESIGN I1: a few milliseconds, until fenced's route guard or the hook
// reacts; generous for two shared slow cores, far below "forever").
const maxOrphan = 100 * time.Millisecond

// I6: 50 rapid writes 1/0 to the master's maintenance track file, 20 ms
// apart: keepalived flaps between FAULT, BACKUP and MASTER and its hooks
// (or FIFO lines) overlap and may finish out of order. Once the flaps stop
// (last write 0) and the election settles, exactly one node holds each
// VIP, no local route outlives its address anywhere (during the flaps
// only for moments), and no refresher is left: none on the node that does
// not hold the VIPs, at most one per VIP on the one that does, and
// vipctl's own status agrees.
func TestI6RapidFlaps(t *testing.T) {
	for _, m := range vipkit.Modes {
		t.Run(string(m), func(t *testing.T) {
			key, opts := modeOpts(m)
			v, r := scenario(t, key, opts, vipkit.Flaps)
			end := r.End
			a := node(t, v, "node-a")
			for _, ip := range v.VIPs() {
				if h := v.Holders(ip, end); len(h) != 1 || h[0] != a.Name {
					t.Errorf("%s: held by %v after the flaps, want node-a alone", ip, h)
				}
				for _, n := range v.Nodes {
					for _, s := range v.TL.OrphanSpans(n.Name, ip, end, observe.DefaultTolerance) {
						switch {
						case s.To >= end:
							t.Errorf("%s: %s keeps an orphan local route since %s", ip, n.Name, observe.FormatAt(s.From-r.Fault))
						case s.From >= r.Fault && s.Len() > maxOrphan:
							t.Errorf("%s: %s had an orphan local route for %s", ip, n.Name, ms(s.Len()))
						}
					}
					if n != a && len(observe.Clip(v.TL.ClaimSpans(n.Name, ip, end+1), end, end+1)) > 0 {
						t.Errorf("%s: %s still claims it after the flaps", ip, n.Name)
					}
				}
			}

			// Refreshers, once every hook has finished.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := v.WaitHooksDone(ctx, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			for _, n := range v.Nodes {
				refs, err := vipkit.Refreshers(n)
				if err != nil {
					t.Fatal(err)
				}
				perVIP := map[string]int{}
				for _, args := range refs {
					for _, a := range args {
						if strings.Contains(a, "/") { // VIPs are passed as prefixes
							perVIP[a]++
						}
					}
				}
				if n != a && len(refs) > 0 {
					t.Errorf("%s holds no VIP but runs refreshers: %v", n.Name, refs)
				}
				for vip, c := range perVIP {
					if c > 1 {
						t.Errorf("%s runs %d refreshers for %s: %v", n.Name, c, vip, refs)
					}
				}
				st, err := vipctlStatus(ctx, v, n)
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Orphans) > 0 {
					t.Errorf("%s: vipctl status reports orphan routes %v", n.Name, st.Orphans)
				}
				for _, s := range st.VIPs {
					if s.Orphan {
						t.Errorf("%s: vipctl status: %s is an orphan", n.Name, s.VIP)
					}
					if n != a && (s.Assigned || s.RefresherUp) {
						t.Errorf("%s: vipctl status: %s assigned=%t refresher running=%t", n.Name, s.VIP, s.Assigned, s.RefresherUp)
					}
				}
			}
		})
	}
}

// status is the part of `vipctl status --json` the test reads.
type status struct {
	VIPs []struct {
		VIP         string `json:"vip"`
		Assigned    bool   `json:"assigned"`
		Orphan      bool   `json:"orphan"`
		RefresherUp bool   `json:"refresher_running"`
	} `json:"vips"`
	Orphans []string `json:"orphan_routes"`
}

func vipctlStatus(ctx context.Context, v *vipkit.Lab, n *lab.Node) (status, error) {
	var st status
	out, err := v.Vipctl(ctx, n, "status", "--json")
	if err == nil {
		err = json.Unmarshal([]byte(out), &st)
	}
	return st, err
}
