package runstate

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What the hooks saw, kept in the same state file for fenced to export:
// hooks are short-lived and fenced is the one long-running reader of the
// state directory. Each hook adds a bounded amount to its one write: one
// record per configured instance it names and one per vipctl command.

// Instance is what the hooks last reported of one keepalived instance.
type Instance struct {
	Name string
	// State is keepalived's state as the latest-forked hook reported it:
	// MASTER, BACKUP, FAULT, STOP or DELETED from `notify` and the FIFO;
	// StateReleased from a per-state down hook, which does not know which
	// of them keepalived entered.
	State string
	// Ticket orders reports as hooks are ordered (I6): a late hook counts,
	// but does not overwrite a later one's state.
	Ticket Ticket
	// Since is when the hook that reported State recorded it.
	Since time.Time
	// Transitions counts the reports by state, late ones included:
	// keepalived made each of those transitions.
	Transitions map[string]uint64
}

// StateReleased is the state a down hook records when it cannot tell which
// non-MASTER state keepalived entered (notify_backup, notify_fault and
// notify_stop run the same command line).
const StateReleased = "RELEASED"

// HookBuckets are the upper bounds of the hook duration histogram.
var HookBuckets = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, time.Second, 10 * time.Second,
}

// HookStats counts the runs of one vipctl command that change state.
type HookStats struct {
	Runs   uint64
	Failed uint64
	// Late counts runs that found a later-forked hook had already acted on
	// one of their VIPs and skipped it (I6).
	Late uint64
	// Buckets[i] counts runs that took at most HookBuckets[i] and more than
	// the bound before it (not cumulative); slower runs are in none.
	Buckets [10]uint64
	Sum     time.Duration
}

// Observe adds one run.
func (h *HookStats) Observe(d time.Duration, failed, late bool) {
	h.Runs++
	if failed {
		h.Failed++
	}
	if late {
		h.Late++
	}
	h.Sum += d
	for i, b := range HookBuckets {
		if d <= b {
			h.Buckets[i]++
			break
		}
	}
}

// Report records a hook's report of an instance's state, taken at t by the
// process with ticket tk.
func (s *State) Report(name, state string, tk Ticket, t time.Time) {
	if s.Instances == nil {
		s.Instances = map[string]*Instance{}
	}
	in := s.Instances[name]
	if in == nil {
		in = &Instance{Name: name}
		s.Instances[name] = in
	}
	if in.Transitions == nil {
		in.Transitions = map[string]uint64{}
	}
	in.Transitions[state]++
	if in.State == "" || !in.Ticket.After(tk) {
		in.State, in.Ticket, in.Since = state, tk, t
	}
}

// Hook returns the stats of command cmd, created if missing.
func (s *State) Hook(cmd string) *HookStats {
	if s.Hooks == nil {
		s.Hooks = map[string]*HookStats{}
	}
	h := s.Hooks[cmd]
	if h == nil {
		h = &HookStats{}
		s.Hooks[cmd] = h
	}
	return h
}

// KeepInstances forgets the records of instances not in names (a
// configuration that no longer has them): the records stay as many as the
// configured instances.
func (s *State) KeepInstances(names []string) {
	for n := range s.Instances {
		if !slices.Contains(names, n) {
			delete(s.Instances, n)
		}
	}
}

// Line prefixes; comments to a vipctl that predates them.
const (
	instancePrefix = "#instance"
	hookPrefix     = "#hook"
)

func (s *State) formatSeen(b *bytes.Buffer) {
	names := make([]string, 0, len(s.Instances))
	for n := range s.Instances {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		in := s.Instances[n]
		fmt.Fprintf(b, "%s name=%s state=%s ticks=%d pid=%d since=%d", instancePrefix, in.Name, in.State, in.Ticket.Ticks, in.Ticket.PID, in.Since.UnixNano())
		ks := make([]string, 0, len(in.Transitions))
		for k := range in.Transitions {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for i, k := range ks {
			sep := ","
			if i == 0 {
				sep = " transitions="
			}
			fmt.Fprintf(b, "%s%s:%d", sep, k, in.Transitions[k])
		}
		b.WriteByte('\n')
	}
	cmds := make([]string, 0, len(s.Hooks))
	for c := range s.Hooks {
		cmds = append(cmds, c)
	}
	sort.Strings(cmds)
	for _, c := range cmds {
		h := s.Hooks[c]
		fmt.Fprintf(b, "%s cmd=%s runs=%d failed=%d late=%d sum=%d buckets=", hookPrefix, c, h.Runs, h.Failed, h.Late, int64(h.Sum))
		for i, n := range h.Buckets {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(n, 10))
		}
		b.WriteByte('\n')
	}
}

func parseInstance(fields string) (*Instance, error) {
	in := &Instance{Transitions: map[string]uint64{}}
	for _, f := range strings.Fields(fields) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "name":
			in.Name = v
		case "state":
			in.State = v
		case "ticks":
			in.Ticket.Ticks, err = strconv.ParseInt(v, 10, 64)
		case "pid":
			in.Ticket.PID, err = strconv.Atoi(v)
		case "since":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			in.Since = time.Unix(0, ns).UTC()
		case "transitions":
			for _, kv := range strings.Split(v, ",") {
				st, n, ok := strings.Cut(kv, ":")
				if !ok || st == "" {
					return nil, fmt.Errorf("instance transitions %q: %q is not STATE:COUNT", v, kv)
				}
				if in.Transitions[st], err = strconv.ParseUint(n, 10, 64); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("instance field %s=%q: %w", k, v, err)
		}
	}
	if in.Name == "" || in.State == "" {
		return nil, fmt.Errorf("instance record %q lacks name or state", fields)
	}
	return in, nil
}

func parseHook(fields string) (string, *HookStats, error) {
	h := &HookStats{}
	var cmd string
	for _, f := range strings.Fields(fields) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "cmd":
			cmd = v
		case "runs":
			h.Runs, err = strconv.ParseUint(v, 10, 64)
		case "failed":
			h.Failed, err = strconv.ParseUint(v, 10, 64)
		case "late":
			h.Late, err = strconv.ParseUint(v, 10, 64)
		case "sum":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			h.Sum = time.Duration(ns)
		case "buckets":
			parts := strings.Split(v, ",")
			if len(parts) != len(h.Buckets) {
				return "", nil, fmt.Errorf("hook buckets %q: %d values, want %d", v, len(parts), len(h.Buckets))
			}
			for i, p := range parts {
				if h.Buckets[i], err = strconv.ParseUint(p, 10, 64); err != nil {
					break
				}
			}
		}
		if err != nil {
			return "", nil, fmt.Errorf("hook field %s=%q: %w", k, v, err)
		}
	}
	if cmd == "" {
		return "", nil, fmt.Errorf("hook record %q lacks cmd", fields)
	}
	return cmd, h, nil
}
