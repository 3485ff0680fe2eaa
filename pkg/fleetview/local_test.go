package fleetview

import (
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

func target(t *testing.T) vip.Target {
	t.Helper()
	vs, err := vip.ParseList([]string{"192.0.2.100", "2001:db8::100"})
	if err != nil {
		t.Fatal(err)
	}
	return vip.Target{Instance: "VI_1", Dev: "eth0", VIPs: vs}
}

func TestLocal(t *testing.T) {
	tg := target(t)
	mac, _ := net.ParseMAC("02:00:00:00:00:0a")
	both := Link{MAC: mac, Assigned: map[string]bool{"192.0.2.11": true, "192.0.2.100": true, "2001:db8::100": true}}
	none := Link{MAC: mac, Assigned: map[string]bool{"192.0.2.11": true}}
	up := func(at time.Time, ticks int64) *runstate.State {
		st, _ := runstate.ParseState(nil)
		for _, v := range tg.VIPs {
			st.Record(runstate.Entry{VIP: v, Dev: "eth0", Action: runstate.ActionUp, Ticket: runstate.Ticket{Ticks: ticks, PID: 1}, At: at})
		}
		return st
	}
	down := func(st *runstate.State, at time.Time, ticks int64) *runstate.State {
		for _, v := range tg.VIPs {
			st.Record(runstate.Entry{VIP: v, Dev: "eth0", Action: runstate.ActionDown, Ticket: runstate.Ticket{Ticks: ticks, PID: 1}, At: at})
		}
		return st
	}
	noted := func(st *runstate.State, state string, at time.Time, ticks int64) *runstate.State {
		st.Report("VI_1", state, runstate.Ticket{Ticks: ticks, PID: 2}, at)
		return st
	}
	now := t0.Add(time.Minute)
	tests := []struct {
		name      string
		host      Host
		prev      []fencedstate.InstanceView
		state     string
		from      string
		since     time.Time
		held      []string
		heldSince time.Time
	}{
		{name: "no hook yet", host: Host{Links: map[string]Link{"eth0": none}, Now: now}, held: []string{}},
		{
			name:  "a hook that named no instance, up: MASTER since the hook",
			host:  Host{State: up(t0, 10), Links: map[string]Link{"eth0": both}, Now: now},
			state: "MASTER", from: FromVIPs, since: t0, held: []string{"192.0.2.100", "2001:db8::100"}, heldSince: t0,
		},
		{
			name:  "a hook that named no instance, down: released",
			host:  Host{State: down(up(t0, 10), t0.Add(time.Second), 20), Links: map[string]Link{"eth0": none}, Now: now},
			state: runstate.StateReleased, from: FromVIPs, since: t0.Add(time.Second), held: []string{},
		},
		{
			name:  "the hooks' record of the instance (notify's word)",
			host:  Host{State: noted(up(t0, 10), "BACKUP", t0.Add(2*time.Second), 30), Links: map[string]Link{"eth0": none}, Now: now},
			state: "BACKUP", from: FromHooks, since: t0.Add(2 * time.Second), held: []string{},
		},
		{
			name:  "a later transition of its VIPs wins over an older record",
			host:  Host{State: down(noted(up(t0, 10), "MASTER", t0, 10), t0.Add(3*time.Second), 40), Links: map[string]Link{"eth0": none}, Now: now},
			state: runstate.StateReleased, from: FromVIPs, since: t0.Add(3 * time.Second), held: []string{},
		},
		{
			name:  "fenced: FAULT from the fence, whatever the last hook said",
			host:  Host{State: up(t0, 10), Links: map[string]Link{"eth0": none}, Fenced: true, Now: now},
			state: "FAULT", from: FromFence, since: now, held: []string{},
		},
		{
			name:  "still held: the first time it was seen held stays",
			host:  Host{State: up(t0, 10), Links: map[string]Link{"eth0": both}, Now: now},
			prev:  []fencedstate.InstanceView{{Name: "VI_1", Held: []string{"192.0.2.100"}, HeldSince: t0.Add(-time.Hour)}},
			state: "MASTER", from: FromVIPs, since: t0, held: []string{"192.0.2.100", "2001:db8::100"}, heldSince: t0.Add(-time.Hour),
		},
		{
			name: "held without a MASTER hook (keepalived added it, no hook yet): since this sample",
			host: Host{Links: map[string]Link{"eth0": {MAC: mac, Assigned: map[string]bool{"192.0.2.100": true}}}, Now: now},
			held: []string{"192.0.2.100"}, heldSince: now,
		},
		{
			name:  "unreadable link: nothing held, no MAC",
			host:  Host{State: up(t0, 10), Links: map[string]Link{}, Now: now},
			state: "MASTER", from: FromVIPs, since: t0, held: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Local([]vip.Target{tg}, tt.host, tt.prev)
			if len(out) != 1 {
				t.Fatalf("views %+v", out)
			}
			iv := out[0]
			if iv.State != tt.state || iv.StateFrom != tt.from || !iv.Since.Equal(tt.since) {
				t.Errorf("state %q from %q since %s, want %q from %q since %s", iv.State, iv.StateFrom, iv.Since, tt.state, tt.from, tt.since)
			}
			if !reflect.DeepEqual(iv.Held, tt.held) || !iv.HeldSince.Equal(tt.heldSince) {
				t.Errorf("held %v since %s, want %v since %s", iv.Held, iv.HeldSince, tt.held, tt.heldSince)
			}
			if _, ok := tt.host.Links["eth0"]; ok && iv.MAC != "02:00:00:00:00:0a" {
				t.Errorf("MAC %q", iv.MAC)
			}
			if !reflect.DeepEqual(iv.VIPs, []string{"192.0.2.100", "2001:db8::100"}) {
				t.Errorf("VIPs %v", iv.VIPs)
			}
		})
	}
}
