package e2e

import (
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// I5, fail closed. SIGKILL of fenced on the master: keepalived's
// fenced_alive check fails and the instance goes FAULT within 2 s, the
// VIPs leave the master and the backup takes over. SIGKILL of keepalived
// on the master: its VIPs do not stay assigned (fenced's reaper removes
// them when keepalived's VRRP process dies), so the backup's takeover
// makes no second owner. Control: keepalived alone, SIGKILLed, leaves the
// VIP assigned on the dead master (keepalived issue 2361).
func TestI5FailClosed(t *testing.T) {
	for _, m := range []vipkit.Mode{vipkit.Hooks, vipkit.Owned} {
		t.Run(string(m)+"/fenced-killed", func(t *testing.T) {
			key, opts := modeOpts(m)
			v, r := scenario(t, key, opts, vipkit.FencedKill)
			if r.FaultAfter > 2*time.Second {
				t.Errorf("keepalived FAULT %s after fenced was killed, want within 2 s", ms(r.FaultAfter))
			}
			for _, f := range failovers(r.Result, false) {
				if f.To != "node-b" || f.Takeover == observe.None {
					t.Errorf("%s: backup did not take over (to %q, takeover %s)", f.VIP, f.To, ms(f.Takeover))
				}
				if rel := claimEnd(v.TL, r.From, f.VIP, r.Fault, r.End); rel == observe.None {
					t.Errorf("%s: %s still claims the VIP with fenced dead", f.VIP, r.From)
				}
			}
			t.Logf("keepalived FAULT %s after the kill", ms(r.FaultAfter))
		})
		t.Run(string(m)+"/keepalived-killed", func(t *testing.T) {
			key, opts := modeOpts(m)
			v, r := scenario(t, key, opts, vipkit.Crash)
			for _, f := range failovers(r.Result, false) {
				rel := claimEnd(v.TL, r.From, f.VIP, r.Fault, r.End)
				switch {
				case rel == observe.None:
					t.Errorf("%s: the VIP stayed on %s after keepalived was killed", f.VIP, r.From)
				case rel-r.Fault > time.Second:
					t.Errorf("%s: the VIP left %s %s after keepalived was killed, want within 1 s", f.VIP, r.From, ms(rel-r.Fault))
				default:
					t.Logf("%s: released %s after the kill", f.VIP, ms(rel-r.Fault))
				}
				if f.DualOwner != 0 {
					t.Errorf("%s: dual-owner time %s", f.VIP, ms(f.DualOwner))
				}
			}
		})
	}
	t.Run("control/keepalived-killed", func(t *testing.T) {
		key, opts := controlOpts()
		v, r := scenario(t, key, opts, vipkit.Crash)
		for _, f := range failovers(r.Result, false) {
			if claimEnd(v.TL, r.From, f.VIP, r.Fault, r.End) != observe.None {
				t.Errorf("%s: control: the VIP left the killed %s; the failure this test relies on did not happen", f.VIP, r.From)
			}
			if f.DualOwner == 0 {
				t.Errorf("%s: control: no dual ownership after the crash", f.VIP)
			}
			t.Logf("%s: control: %s kept the VIP; dual-owner %s", f.VIP, r.From, ms(f.DualOwner))
		}
	})
}
