package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// F1: a client on the master holds a TCP connection to the VIP; the
// master's keepalived stops (SIGTERM) and the backup takes over. With
// vipkit the connection was made from the interface's primary address
// (the route hint), so its next segment reaches the new owner, which
// resets it: an error within 1 s. Control (keepalived alone): the
// connection's source is the VIP itself, its segments are dropped as
// martians by the new owner, and the client hangs — no answer and no
// error for as long as we wait.
func TestF1LocalClientGetsError(t *testing.T) {
	for _, m := range []vipkit.Mode{vipkit.Hooks, vipkit.Owned} {
		t.Run(string(m), func(t *testing.T) {
			key, opts := modeOpts(m)
			v, r := scenario(t, key, opts, vipkit.LocalClient)
			if len(r.Local) != 2 {
				t.Fatalf("%d local clients, want one per VIP (IPv4, IPv6)", len(r.Local))
			}
			a := node(t, v, "node-a")
			for _, l := range r.Local {
				primary := a.Host.Addr4
				if l.VIP.Is6() {
					primary = a.Host.Addr6
				}
				if l.Src != primary {
					t.Errorf("%s: connection from %s, want the primary address %s (the route hint)", l.VIP, l.Src, primary)
				}
				if l.Takeover == observe.None {
					t.Errorf("%s: no takeover", l.VIP)
					continue
				}
				if l.Failed == observe.None {
					t.Errorf("%s: the client got no error within %s of the takeover (%s)", l.VIP, vipkit.HangWait, l.Outcome())
					continue
				}
				if !strings.HasPrefix(l.Text, "error") {
					t.Errorf("%s: connection ended with %q, want an error", l.VIP, l.Text)
				}
				if d := l.Failed - l.Takeover; d > time.Second {
					t.Errorf("%s: error %s after the takeover, want within 1 s", l.VIP, ms(d))
				} else {
					t.Logf("%s: %s", l.VIP, l.Outcome())
				}
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		key, opts := controlOpts()
		_, r := scenario(t, key, opts, vipkit.LocalClient)
		if len(r.Local) != 2 {
			t.Fatalf("%d local clients, want one per VIP", len(r.Local))
		}
		for _, l := range r.Local {
			if l.Src != l.VIP {
				t.Errorf("%s: control connection from %s, want the VIP itself (no hint)", l.VIP, l.Src)
			}
			if l.Failed != observe.None {
				t.Errorf("%s: control client failed (%s): the hang this test relies on did not happen", l.VIP, l.Text)
			}
			if l.Stalled == observe.None {
				t.Errorf("%s: control client never stalled", l.VIP)
			}
			t.Logf("%s: %s", l.VIP, l.Outcome())
		}
	})
}
