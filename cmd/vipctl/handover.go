package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/runstate"
	"github.com/vipkit/vipkit/pkg/trackfile"
)

// handoverWait bounds how long vipctl waits for fenced's answer to a
// handover request; fenced gives up after 3 s (handoverAnswerWithin).
const handoverWait = 5 * time.Second

// fencedMaxAge is the heartbeat age beyond which fenced counts as hung,
// as for fenced status --alive.
const fencedMaxAge = 5 * time.Second

// Paths a handover takes, in --json.
const (
	pathFast        = "fast"        // through fenced: the successor BACKUP before this node resigns
	pathMaintenance = "maintenance" // release, then the maintenance file (FAULT)
)

func handoverCommand() *cli.Command {
	return &cli.Command{
		Name:      "handover",
		Usage:     "planned switchover: release the instance's VIPs, then put keepalived into FAULT",
		ArgsUsage: "INSTANCE",
		Description: `Removes the instance's VIPs and route hints (whoever owns the addresses), and only
then writes 1 to its maintenance track file, so keepalived leaves MASTER with no moment
in which two hosts hold the VIP (I3). --undo writes 0: the instance may be elected again.

A witnessed instance (witness = true) held here is handed over through fenced instead
(docs/witness.md), so that the successor's keepalived is BACKUP, not FAULT, when this
node's resigns, and takes over after its skew time instead of its master-down interval.
vipctl-owned (own = true): fenced releases the VIPs in the same order, moves the owner
key to the next candidate, waits until that node left FAULT, then puts this node into
FAULT. keepalived-owned: fenced offers the key to the next candidate (of lower priority),
waits until it left FAULT, then puts this node into FAULT (VIPs removed first) and moves
the key; a successor that does not answer in time waits its master-down interval. vipctl
waits for fenced's answer, then writes the maintenance file. It fails, changing nothing,
when fenced is not running or no other node is a candidate.

The instance's keepalived config must track the maintenance file with weight 0
(see contrib/keepalived).

Examples:
  vipctl handover VI_1
  vipctl handover --undo VI_1`,
		Flags: common(&cli.BoolFlag{Name: "undo", Usage: "end the maintenance: write 0"},
			&cli.BoolFlag{Name: "json", Usage: "print what changed (instance, undo, changed, released VIPs, path, handed_to) as JSON"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("handover takes exactly one INSTANCE")
			}
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			in, ok := e.cfg.InstanceByName(c.Args().First())
			if !ok {
				return usagef("instance %q is not in %s", c.Args().First(), configName(e.cfg))
			}
			res := handoverResult{Instance: in.Name, Undo: c.Bool("undo"), MaintenanceFile: in.MaintenanceFile, Released: []string{}, Path: pathMaintenance}
			want := trackfile.Fault
			if res.Undo {
				want = trackfile.OK
			}
			// changed is honest for Ansible: the file said something else,
			// or a VIP was released.
			cur, exists, rerr := trackfile.Read(in.MaintenanceFile)
			if rerr != nil || !exists || cur != want {
				res.Changed = true
			}
			// Already in maintenance: nothing is held here to hand over.
			inMaint := rerr == nil && exists && cur != trackfile.OK
			if res.Undo {
				if err := trackfile.Write(in.MaintenanceFile, trackfile.OK); err != nil {
					return err
				}
				if in.Witness {
					// A request left by a vipctl that died waiting.
					if err := fencedstate.RemoveRequest(fencedstate.RequestFile(in.MaintenanceFile)); err != nil {
						return err
					}
				}
				e.log.Info("handover undone: instance may be elected again", "instance", in.Name, "track_file", in.MaintenanceFile)
				return printHandover(c, res)
			}
			// The release is idempotent (it reports every VIP it would
			// release): what it changed is what was assigned here before.
			held, err := assignedHere(in)
			if err != nil {
				return err
			}
			if in.Witness && !inMaint {
				done, err := handoverThroughFenced(c, e, in, held, &res)
				if err != nil || done {
					return err
				}
			}
			if err := handoverPlain(c, e, in, held, &res); err != nil {
				return err
			}
			return printHandover(c, res)
		},
	}
}

// handoverPlain releases the VIPs (vipctl's order) and writes the
// maintenance file 1.
func handoverPlain(c *cli.Context, e *env, in config.Instance, held map[netip.Addr]bool, res *handoverResult) error {
	h, ticket, done, err := change(e)
	if err != nil {
		return err
	}
	defer done()
	sn := newSeen(runstate.ActionHandover, e.cfg, started)
	sn.ticket, sn.vips = ticket, in.VIPs
	finish := sn.watch(h, e)
	ctx, cancel := context.WithTimeout(c.Context, lockWait)
	defer cancel()
	out, err := h.Handover(ctx, holder.For(in.Target(), ticket), in.MaintenanceFile)
	report(e, "handover", out)
	finish(err)
	if err != nil {
		return fmt.Errorf("handover %s: %w", in.Name, err)
	}
	for _, o := range out {
		if o.Result == holder.Applied && held[o.VIP.Addr()] {
			res.Released = append(res.Released, o.VIP.String())
			res.Changed = true
		}
	}
	return nil
}

// handoverThroughFenced asks fenced to hand a witnessed instance over on
// the fast path (vipctl-owned) or the pre-grant (keepalived-owned) and
// waits for its answer. done is false
// when the plain path must run instead: this node does not hold the
// instance (it only has to stay out of it).
func handoverThroughFenced(c *cli.Context, e *env, in config.Instance, held map[netip.Addr]bool, res *handoverResult) (done bool, err error) {
	snap, err := fencedstate.Read(e.stateDir)
	if err == nil {
		err = fencedstate.Alive(snap, clock.Boottime(), fencedMaxAge)
	}
	if err != nil {
		return false, fmt.Errorf("handover %s: fenced is not running here (%v): a witnessed instance is handed over through fenced; nothing changed", in.Name, err)
	}
	req := fencedstate.RequestFile(in.MaintenanceFile)
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := fencedstate.WriteRequest(req, id); err != nil {
		return false, fmt.Errorf("handover %s: %w", in.Name, err)
	}
	ctx, cancel := context.WithTimeout(c.Context, handoverWait)
	defer cancel()
	h, err := waitAnswer(ctx, e.stateDir, in.Name, id)
	if err != nil {
		// fenced may still act on the request: the maintenance file
		// keeps this node out whatever it does, and the plain path's
		// release makes sure no VIP stays here.
		if perr := handoverPlain(c, e, in, held, res); perr != nil {
			err = errors.Join(err, perr)
		}
		return true, errors.Join(fmt.Errorf("handover %s: fenced did not answer within %s (%w); released the VIPs and wrote the maintenance file instead: the successor takes over after its master-down interval", in.Name, handoverWait, err),
			fencedstate.RemoveRequest(req))
	}
	step, err := afterAnswer(in.Name, h)
	switch step {
	case stepPlain:
		res.Note = "this node does not hold the owner key: nothing to hand over, it stays out of the instance"
		if h.Error != "" {
			res.Note = "fenced did not hand it over (" + h.Error + "): the maintenance file takes it out of the instance"
		}
		return false, fencedstate.RemoveRequest(req)
	case stepRefused:
		return true, errors.Join(err, fencedstate.RemoveRequest(req))
	}
	// The key moved, or fenced resigned trying: either way this node
	// stays out until --undo, first by the maintenance file, then
	// without the request that kept it out meanwhile.
	if werr := trackfile.Write(in.MaintenanceFile, trackfile.Fault); werr != nil {
		return true, errors.Join(err, werr)
	}
	if rerr := fencedstate.RemoveRequest(req); rerr != nil {
		return true, errors.Join(err, rerr)
	}
	res.Changed = true
	if err != nil {
		return true, err
	}
	res.Path, res.HandedTo = pathFast, h.To
	after, aerr := assignedHere(in)
	if aerr != nil {
		return true, aerr
	}
	for _, v := range in.VIPs {
		if held[v.Addr()] && !after[v.Addr()] {
			res.Released = append(res.Released, v.String())
		}
	}
	if !h.SuccessorHeld {
		res.Note = h.To + " did not say it left FAULT within fenced's bound: this node resigned anyway, " + h.To + " may wait its master-down interval"
	}
	e.log.Info("handover: owner key handed over by fenced", "instance", in.Name, "to", h.To, "successor_held", h.SuccessorHeld, "took", h.Took)
	return true, printHandover(c, *res)
}

// answerStep is what vipctl does with fenced's answer.
type answerStep int

const (
	stepRecord  answerStep = iota // the key moved, or fenced resigned: write the maintenance file
	stepPlain                     // not held here: the plain path (release, maintenance file)
	stepRefused                   // nothing changed: fail
)

// afterAnswer maps fenced's answer to the next step and the error
// vipctl reports.
func afterAnswer(instance string, h fencedstate.Handover) (answerStep, error) {
	switch h.Outcome {
	case fencedstate.HandedOver:
		return stepRecord, nil
	case fencedstate.NotHeld:
		return stepPlain, nil
	case fencedstate.NoSuccessor:
		return stepRefused, fmt.Errorf("handover %s: no other node is a candidate for it (fenced keeps it here); nothing changed", instance)
	case fencedstate.Failed:
		return stepRecord, fmt.Errorf("handover %s: fenced could not hand the owner key to %s: %s; this node resigned (FAULT) and stays out", instance, dash(h.To), h.Error)
	}
	return stepRefused, fmt.Errorf("handover %s: fenced answered %q, which this vipctl does not know; nothing changed", instance, h.Outcome)
}

// waitAnswer polls fenced.json for fenced's answer to request id.
func waitAnswer(ctx context.Context, dir, instance, id string) (fencedstate.Handover, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		// A read can meet the file between fenced's write and rename
		// only as the old file: the rename is atomic.
		if snap, err := fencedstate.Read(dir); err == nil {
			if h, ok := snap.HandoverFor(instance, id); ok {
				return h, nil
			}
		}
		select {
		case <-ctx.Done():
			return fencedstate.Handover{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// handoverResult is handover's --json: what Ansible reports as changed.
type handoverResult struct {
	Instance        string   `json:"instance"`
	Undo            bool     `json:"undo"`
	Changed         bool     `json:"changed"`
	Released        []string `json:"released"`
	MaintenanceFile string   `json:"maintenance_file"`
	// Path is how the instance was handed over: "fast" through fenced
	// (a witnessed instance held here), "maintenance" by
	// the maintenance file alone.
	Path     string `json:"path,omitempty"`
	HandedTo string `json:"handed_to,omitempty"`
	Note     string `json:"note,omitempty"`
}

// assignedHere is the set of the instance's VIPs assigned on its interface.
func assignedHere(in config.Instance) (map[netip.Addr]bool, error) {
	n, err := hostnet.Open()
	if err != nil {
		return nil, err
	}
	defer n.Close()
	held := map[netip.Addr]bool{}
	l, err := n.Link(in.Dev)
	if errors.Is(err, hostnet.ErrNoSuchDevice) {
		return held, nil
	} else if err != nil {
		return nil, err
	}
	for _, v := range in.VIPs {
		ok, err := n.IsAssigned(l, v)
		if err != nil {
			return nil, err
		}
		held[v.Addr()] = ok
	}
	return held, nil
}

func printHandover(c *cli.Context, r handoverResult) error {
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(r)
	}
	if r.Path == pathFast {
		fmt.Fprintf(c.App.Writer, "%s: handed over to %s through fenced (fast path)\n", r.Instance, r.HandedTo)
	}
	if r.Note != "" {
		fmt.Fprintf(c.App.Writer, "%s: %s\n", r.Instance, r.Note)
	}
	return nil
}
