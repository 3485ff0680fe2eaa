package runstate

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/vip"
)

// The state file is plain text, one VIP per line of key=value fields:
//
//	vip=192.0.2.100 dev=eth0 action=up ticks=296849 pid=1557 own=1 instance=VI_1 src=192.0.2.11 refresher=40218:296850 at=1795594797408215427
//
// followed by what the hooks saw (seen.go), for fenced to export:
//
//	#instance name=VI_1 state=MASTER ticks=296849 pid=1557 since=1795594797408215427 transitions=BACKUP:1,MASTER:2
//	#hook cmd=up runs=2 failed=0 late=0 sum=4100000 buckets=0,1,1,0,0,0,0,0,0,0
//
// Every hook reads and writes it; encoding/json's first use alone cost a
// hook about 150 µs, this a few.
const stateHeader = "# vipctl state 1: one VIP per line"

// horizonPrefix starts the line that carries State.Horizon.
const horizonPrefix = "#horizon"

// Format writes the state file's contents.
func (s *State) Format() []byte {
	var b bytes.Buffer
	b.WriteString(stateHeader)
	b.WriteByte('\n')
	if !s.Horizon.IsZero() {
		// A comment to older readers, which skip it.
		fmt.Fprintf(&b, "%s ticks=%d pid=%d\n", horizonPrefix, s.Horizon.Ticks, s.Horizon.PID)
	}
	for _, e := range s.Sorted() {
		fmt.Fprintf(&b, "vip=%s dev=%s action=%s ticks=%d pid=%d", e.VIP.Prefix(), e.Dev, e.Action, e.Ticket.Ticks, e.Ticket.PID)
		if e.Own {
			b.WriteString(" own=1")
		}
		if e.Instance != "" {
			b.WriteString(" instance=" + e.Instance)
		}
		if e.Src.IsValid() {
			b.WriteString(" src=" + e.Src.String())
		}
		if e.Refresher != nil {
			fmt.Fprintf(&b, " refresher=%d:%d", e.Refresher.PID, e.Refresher.Start)
		}
		if !e.Announced.IsZero() {
			fmt.Fprintf(&b, " announced=%d", e.Announced.UnixNano())
		}
		fmt.Fprintf(&b, " at=%d\n", e.At.UnixNano())
	}
	s.formatSeen(&b)
	return b.Bytes()
}

// ParseState reads what Format wrote. Unknown keys are skipped, so that an
// older vipctl can read a newer file.
func ParseState(data []byte) (*State, error) {
	st := newState()
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, horizonPrefix+" "); ok {
			h, err := parseHorizon(rest)
			if err != nil {
				return nil, fmt.Errorf("parse state line %d: %w", n+1, err)
			}
			st.Horizon = h
			continue
		}
		if rest, ok := strings.CutPrefix(line, instancePrefix+" "); ok {
			in, err := parseInstance(rest)
			if err != nil {
				return nil, fmt.Errorf("parse state line %d: %w", n+1, err)
			}
			if st.Instances == nil {
				st.Instances = map[string]*Instance{}
			}
			st.Instances[in.Name] = in
			continue
		}
		if rest, ok := strings.CutPrefix(line, hookPrefix+" "); ok {
			cmd, h, err := parseHook(rest)
			if err != nil {
				return nil, fmt.Errorf("parse state line %d: %w", n+1, err)
			}
			if st.Hooks == nil {
				st.Hooks = map[string]*HookStats{}
			}
			st.Hooks[cmd] = h
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("parse state line %d: %w", n+1, err)
		}
		st.Record(e)
	}
	return st, nil
}

func parseEntry(line string) (Entry, error) {
	var e Entry
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return e, fmt.Errorf("field %q is not key=value", f)
		}
		var err error
		switch k {
		case "vip":
			e.VIP, err = vip.Parse(v)
		case "dev":
			e.Dev = v
		case "action":
			e.Action = v
		case "ticks":
			e.Ticket.Ticks, err = strconv.ParseInt(v, 10, 64)
		case "pid":
			e.Ticket.PID, err = strconv.Atoi(v)
		case "own":
			e.Own = v == "1"
		case "instance":
			e.Instance = v
		case "src":
			e.Src, err = netip.ParseAddr(v)
		case "refresher":
			p, s, ok := strings.Cut(v, ":")
			if !ok {
				return e, fmt.Errorf("refresher %q is not PID:START", v)
			}
			var r Proc
			if r.PID, err = strconv.Atoi(p); err == nil {
				r.Start, err = strconv.ParseInt(s, 10, 64)
			}
			e.Refresher = &r
		case "announced":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			e.Announced = time.Unix(0, ns).UTC()
		case "at":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			e.At = time.Unix(0, ns).UTC()
		}
		if err != nil {
			return e, fmt.Errorf("field %s=%q: %w", k, v, err)
		}
	}
	if !e.VIP.IsValid() || e.Action == "" {
		return e, fmt.Errorf("line %q lacks vip or action", line)
	}
	return e, nil
}

func parseHorizon(fields string) (Ticket, error) {
	var t Ticket
	for _, f := range strings.Fields(fields) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "ticks":
			t.Ticks, err = strconv.ParseInt(v, 10, 64)
		case "pid":
			t.PID, err = strconv.Atoi(v)
		}
		if err != nil {
			return t, fmt.Errorf("horizon field %s=%q: %w", k, v, err)
		}
	}
	return t, nil
}
