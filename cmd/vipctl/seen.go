package main

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/vip"
)

// started is when this process began running Go code: a hook's duration is
// counted from here to its state write.
var started = time.Now()

// stateReport is one instance's state as a hook reports it.
type stateReport struct{ instance, state string }

// seen is what one run of a state-changing command adds to the state file
// for fenced to export (runstate.State.Report, Hook): in the write the run
// makes anyway, so a hook's cost stays flat.
type seen struct {
	cmd     string
	ticket  runstate.Ticket
	vips    []vip.VIP
	reports []stateReport
	from    time.Time
	names   []string // configured instances: the records kept
	done    bool
}

func newSeen(cmd string, cfg *config.Config, from time.Time) *seen {
	s := &seen{cmd: cmd, from: from}
	for _, in := range cfg.Instances {
		s.names = append(s.names, in.Name)
	}
	return s
}

// record is holder.Holder.Seen: it runs under the lock before the write.
func (s *seen) record(st *runstate.State, err error) {
	if s.done {
		return // an operation of several writes counts once
	}
	s.done = true
	late := false
	for _, v := range s.vips {
		if _, ok := st.Supersedes(v, s.ticket); ok {
			late = true
			break
		}
	}
	now := time.Now()
	for _, r := range s.reports {
		st.Report(r.instance, r.state, s.ticket, now)
	}
	if len(s.names) > 0 {
		st.KeepInstances(s.names)
	}
	st.Hook(s.cmd).Observe(now.Sub(s.from), err != nil, late)
}

// failed records a run that failed before it wrote the state (bad input,
// a lock it did not get): one more lock and write, on the failure path only.
func (s *seen) failed(store *runstate.Store) {
	if s.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	tx, err := store.Lock(ctx)
	if err != nil {
		return
	}
	defer tx.Unlock()
	s.record(tx.State, errFailed)
	_ = tx.Save()
}

var errFailed = errors.New("failed before the state was written")

// watch makes h report to s, and returns a function to call with the
// command's error once it is done.
func (s *seen) watch(h *holder.Holder, e *env) func(error) {
	h.Seen = s.record
	return func(err error) {
		if err != nil {
			// keepalived gives hooks /dev/null for stderr: the journal is
			// where a person finds why VipkitHookFailures fired.
			e.log.Error("vipctl "+s.cmd+" failed: "+oneLine(err), "command", s.cmd, "error", err)
			s.failed(runstate.New(e.stateDir))
		}
	}
}

// instanceOf names the configured instance a --dev command acts on: the one
// on dev holding every VIP named, if there is exactly one.
func instanceOf(cfg *config.Config, t vip.Target) string {
	if t.Instance != "" {
		return t.Instance
	}
	found := ""
	for _, in := range cfg.Instances {
		if in.Dev != t.Dev {
			continue
		}
		all := len(t.VIPs) > 0
		for _, v := range t.VIPs {
			if !slices.Contains(in.VIPs, v) {
				all = false
				break
			}
		}
		if all {
			if found != "" {
				return ""
			}
			found = in.Name
		}
	}
	return found
}
