// Package hooks turns keepalived's notifications into what vipctl does:
// MASTER holds the instance's VIPs, BACKUP, FAULT, STOP and DELETED release
// them, and a master that hears a lower priority (a split brain healing)
// announces again.
package hooks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/keepalived"
)

// ErrUnknownInstance reports an event for an instance (or group) the
// configuration does not describe.
var ErrUnknownInstance = errors.New("instance not in the vipkit configuration")

// Verb is what to do with an instance's VIPs.
type Verb string

const (
	Up       Verb = "up"
	Down     Verb = "down"
	Announce Verb = "announce"
)

// Action applies Verb to one configured instance.
type Action struct {
	Verb     Verb
	Instance config.Instance
}

// Plan maps an event to actions; priority-change events map to none.
func Plan(cfg *config.Config, ev keepalived.Event) ([]Action, error) {
	var verb Verb
	switch ev.State {
	case keepalived.StateMaster:
		verb = Up
	case keepalived.StateBackup, keepalived.StateFault, keepalived.StateStop, keepalived.StateDeleted:
		verb = Down
	case keepalived.StateMasterRxLowerPri:
		verb = Announce
	default:
		return nil, nil
	}
	var targets []config.Instance
	switch ev.Kind {
	case keepalived.KindGroup:
		targets = cfg.InstancesInGroup(ev.Name)
	default:
		if in, ok := cfg.InstanceByName(ev.Name); ok {
			targets = []config.Instance{in}
		}
	}
	if len(targets) == 0 {
		where := cfg.Path
		if where == "" {
			where = "the configuration"
		}
		return nil, fmt.Errorf("plan %s: %s %q is not in %s: %w", ev.State, ev.Kind, ev.Name, where, ErrUnknownInstance)
	}
	out := make([]Action, len(targets))
	for i, in := range targets {
		out[i] = Action{Verb: verb, Instance: in}
	}
	return out, nil
}

// FIFO reads keepalived's notify FIFO. keepalived writes without blocking
// and drops lines when the pipe is full, so reading and applying are
// decoupled: a reader goroutine queues every line as soon as it arrives,
// and lines are applied one at a time, in order.
type FIFO struct {
	// Apply handles one line; errors are the caller's to log.
	Apply func(ctx context.Context, line string)
	// Drain is how long to keep reading after the stop signal: keepalived
	// signals its FIFO script before it writes the STOP lines.
	Drain time.Duration
	// Quiet ends the drain early once no line has come for this long.
	Quiet time.Duration
}

// Run reads r until stop is closed and the drain is over, or r fails. The
// caller opens the FIFO read-write, so that it never sees end of file, and
// closes it after Run returns, which ends the reader goroutine.
func (f *FIFO) Run(ctx context.Context, r io.Reader, stop <-chan struct{}) error {
	var (
		mu      sync.Mutex
		queue   []string
		arrived = make(chan struct{}, 1)
		readErr = make(chan error, 1)
	)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			queue = append(queue, sc.Text())
			mu.Unlock()
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		readErr <- err
	}()
	pop := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(queue) == 0 {
			return "", false
		}
		l := queue[0]
		queue = queue[1:]
		return l, true
	}
	drainAll := func() {
		for l, ok := pop(); ok; l, ok = pop() {
			f.Apply(ctx, l)
		}
	}
	var drainEnd <-chan time.Time
	var quiet *time.Timer
	quietEnd := func() <-chan time.Time {
		if quiet == nil {
			return nil
		}
		return quiet.C
	}
	for {
		if l, ok := pop(); ok {
			f.Apply(ctx, l)
			continue
		}
		select {
		case <-arrived:
			if quiet != nil {
				quiet.Reset(f.Quiet)
			}
		case <-stop:
			stop = nil
			drainEnd = time.After(f.Drain)
			quiet = time.NewTimer(f.Quiet)
		case <-drainEnd:
			drainAll()
			return nil
		case <-quietEnd():
			drainAll()
			return nil
		case err := <-readErr:
			drainAll()
			return err
		}
	}
}
