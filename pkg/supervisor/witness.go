package supervisor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/fence"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/lease"
	"github.com/vipkit/vipkit/pkg/witness"
)

// The witness (pkg/witness, docs/witness.md) runs one session per lease of
// a cluster with witnessed instances: started when the holder turns
// Healthy, cancelled by the cluster's fence (which writes FAULT for every
// instance itself) and when the cluster stops. The cluster's Unfence never
// writes OK for a witnessed instance: only the session does, through
// witnessAct, while it holds the instance's owner key.

// toWitness is the witness's view of a configured instance.
func toWitness(in config.Instance) witness.Instance {
	return witness.Instance{Name: in.Name, Priority: in.Priority, Nopreempt: in.Nopreempt, Fast: in.Own}
}

// witnessed lists the cluster's witnessed instances by name.
func (c *cluster) witnessed() map[string]witness.Instance {
	if p := c.wit.Load(); p != nil {
		return *p
	}
	return nil
}

// plain is the members whose track file follows the lease alone.
func (c *cluster) plain(ins []fence.Instance) []fence.Instance {
	w := c.witnessed()
	var out []fence.Instance
	for _, in := range ins {
		if _, ok := w[in.Instance]; !ok {
			out = append(out, in)
		}
	}
	return out
}

func (c *cluster) member(name string) (fence.Instance, bool) {
	for _, in := range c.memberList() {
		if in.Instance == name {
			return in, true
		}
	}
	return fence.Instance{}, false
}

// startSession starts a witness session for the lease the holder is
// Healthy with, unless one runs for it already. Called with c.mu held.
func (c *cluster) startSession(id int64, held ...string) {
	w := c.witnessed()
	if len(w) == 0 || c.fenced.Load() {
		return
	}
	if c.sess != nil && int64(c.sess.Lease) == id {
		return
	}
	c.stopSession()
	if c.kv == nil {
		c.log.Error("witnessed instances stay in FAULT: the etcd client cannot run transactions")
		return
	}
	ins := make([]witness.Instance, 0, len(w))
	for _, in := range w {
		ins = append(ins, in)
	}
	s := &witness.Session{
		KV: c.kv, Act: witnessAct{c}, Prefix: c.cfg.Prefix, Node: c.node, Lease: clientv3.LeaseID(id),
		Instances: ins, Log: c.log, RequestTimeout: c.cfg.RequestTimeout,
		Ineligible: c.kaGone != nil && c.kaGone.Load(),
	}
	for _, name := range held {
		s.Adopt(name)
	}
	if c.maintOf != nil {
		for name := range w {
			if c.maintOf(name) {
				s.SetMaintenance(name, true)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.sess, c.sessCancel = s, cancel
	c.sessWG.Add(1)
	go func() {
		defer c.sessWG.Done()
		if err := s.Run(ctx); err != nil && !errors.Is(err, witness.ErrDrained) {
			c.log.Error("witness session ended", "error", err)
		}
	}()
}

// stopSession cancels the session without waiting (its Permit waits for
// c.mu, which the caller may hold), after putting the instances it
// pre-granted back into FAULT. Called with c.mu held.
func (c *cluster) stopSession() {
	if c.sess != nil {
		c.endPregrants(c.sess)
	}
	if c.sessCancel != nil {
		c.sessCancel()
	}
	c.sess, c.sessCancel = nil, nil
}

// endPregrants writes FAULT for the instances s accepted an offer of and
// does not hold yet (docs/witness.md, the pre-grant): a stopped session's
// bound would otherwise run on, over what the next session writes.
// Called with c.mu held.
func (c *cluster) endPregrants(s *witness.Session) {
	for _, name := range s.EndPregrants() {
		in, ok := c.member(name)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.Margin, time.Second))
		if err := c.act.Fence(ctx, []fence.Instance{in}, "witness: session ended during a pre-grant"); err != nil {
			c.log.Error("end a pre-grant", "instance", name, "error", err)
		}
		cancel()
	}
}

// drainSession hands the held instances to their successors before a
// planned stop; bounded by timeout.
func (c *cluster) drainSession(timeout time.Duration) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.Drain(ctx)
}

// SetKeepalived tells the witness sessions whether keepalived's VRRP
// process runs (the reaper saw it start, or exit after it had run): a node
// without keepalived hands its witnessed instances over and is no
// candidate until keepalived is back.
func (s *Supervisor) SetKeepalived(running bool) {
	s.kaGone.Store(!running)
	s.mu.Lock()
	cs := s.clusterList()
	s.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		sess := c.sess
		c.mu.Unlock()
		if sess != nil {
			sess.SetEligible(running)
		}
	}
}

// SetMaintenance tells the witness that an instance is in maintenance on
// this node (its maintenance file says 1) or no longer is.
func (s *Supervisor) SetMaintenance(instance string, on bool) {
	s.mu.Lock()
	if s.maint == nil {
		s.maint = map[string]bool{}
	}
	if s.maint[instance] == on {
		s.mu.Unlock()
		return
	}
	s.maint[instance] = on
	s.mu.Unlock()
	if _, sess := s.sessionFor(instance); sess != nil {
		sess.SetMaintenance(instance, on)
	}
}

// sessionFor is the cluster that witnesses instance (nil if none does)
// and its current session (nil while its lease is not healthy).
func (s *Supervisor) sessionFor(instance string) (*cluster, *witness.Session) {
	s.mu.Lock()
	cs := s.clusterList()
	s.mu.Unlock()
	for _, c := range cs {
		if _, ok := c.witnessed()[instance]; ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c, c.sess
		}
	}
	return nil, nil
}

// Handover serves `vipctl handover`'s request id for a witnessed
// instance: the session hands it to its successor now, or refuses (not
// held here, no other candidate), and the answer is recorded for
// fenced.json, where vipctl waits for it. A handover that moved the key,
// or failed half-way, leaves the instance in maintenance here (withdrawn)
// until its maintenance file says 0.
func (s *Supervisor) Handover(ctx context.Context, instance, id string) fencedstate.Handover {
	start := time.Now()
	r := witness.HandoverResult{Outcome: witness.NotHeld}
	switch c, sess := s.sessionFor(instance); {
	case c == nil:
		r.Err = fmt.Errorf("hand over %s: not a witnessed instance of this node", instance)
	case sess == nil:
		r.Err = fmt.Errorf("hand over %s: cluster %s's lease is not healthy (the instance is in FAULT here)", instance, c.cfg.Name)
	default:
		r = sess.Handover(ctx, instance)
	}
	h := fencedstate.Handover{Instance: instance, ID: id, Outcome: string(r.Outcome), To: r.To, SuccessorHeld: r.SuccessorHeld, Took: time.Since(start)}
	if r.Err != nil {
		h.Error = r.Err.Error()
	}
	s.mu.Lock()
	if s.handovers == nil {
		s.handovers = map[string]fencedstate.Handover{}
	}
	s.handovers[instance] = h
	if r.Outcome == witness.HandedOver || r.Outcome == witness.Failed {
		if s.maint == nil {
			s.maint = map[string]bool{}
		}
		s.maint[instance] = true
	}
	s.mu.Unlock()
	s.log().Info("handover requested by vipctl", "instance", instance, "id", id, "outcome", h.Outcome, "to", h.To,
		"successor_held", h.SuccessorHeld, "took", h.Took, "error", h.Error)
	s.changed()
	return h
}

// askFenced reports whether request id (from the request file; "" when
// there is none) still needs an answer, given the last one recorded.
func askFenced(id string, last fencedstate.Handover, answered bool) bool {
	return id != "" && (!answered || last.ID != id)
}

// keptOut is whether a witnessed instance stays out of the running
// here: its maintenance file says so (file), or vipctl's request id was
// answered by a handover that moved the key or resigned trying (vipctl
// writes the file, then removes the request).
func keptOut(file bool, id string, last fencedstate.Handover, answered bool) bool {
	if file {
		return true
	}
	return id != "" && answered && last.ID == id && (last.Outcome == fencedstate.HandedOver || last.Outcome == fencedstate.Failed)
}

// HandoverAnswer is the last answer recorded for instance.
func (s *Supervisor) HandoverAnswer(instance string) (fencedstate.Handover, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.handovers[instance]
	return h, ok
}

func (s *Supervisor) inMaintenance(instance string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maint[instance]
}

// onStatus follows the holder: a session while Healthy, none otherwise.
func (c *cluster) onStatus(st lease.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.State == lease.Healthy {
		c.startSession(int64(st.LeaseID))
	} else {
		c.stopSession()
	}
}

// setWitnessed replaces the witnessed set; a change restarts the session
// (it keeps the keys it holds under the same lease). Called with c.mu held.
func (c *cluster) setWitnessed(w map[string]witness.Instance) {
	if reflect.DeepEqual(w, c.witnessed()) {
		return
	}
	c.wit.Store(&w)
	if old := c.sess; old != nil {
		id := int64(old.Lease)
		c.endPregrants(old)
		// The new session starts from what the old one held (same lease):
		// it keeps what is still its own without a FAULT flap, and resigns
		// at once what is not (a fast handover in progress).
		var held []string
		for name := range w {
			if old.Holds(name) {
				held = append(held, name)
			}
		}
		c.stopSession()
		c.startSession(id, held...)
	}
}

// trackValues reasserts the track files: plain instances follow the lease,
// witnessed ones say OK only where the session holds them.
func (c *cluster) reassert() error {
	ms := c.memberList()
	fenced := c.isFenced()
	var held, out []fence.Instance
	w := c.witnessed()
	for _, in := range ms {
		if _, ok := w[in.Instance]; !ok {
			continue
		}
		if !fenced && c.sess != nil && c.sess.Holds(in.Instance) {
			held = append(held, in)
		} else {
			out = append(out, in)
		}
	}
	return errors.Join(c.act.Reassert(c.plain(ms), fenced), c.act.Reassert(held, false), c.act.Reassert(out, true))
}

// witnessAct is the session's Actuator: every action under the cluster's
// fence lock, so that an OK never follows the cluster's fence.
type witnessAct struct{ c *cluster }

func (w witnessAct) Permit(_ context.Context, s *witness.Session, name string) error {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fenced.Load() || c.sess != s {
		return fmt.Errorf("permit %s: the cluster fenced or the session was superseded", name)
	}
	if !s.Holds(name) {
		// A pre-grant's bound ran out between the session's decision and
		// this lock: its resign comes next and must stay the last word.
		return fmt.Errorf("permit %s: the session no longer holds it", name)
	}
	in, ok := c.member(name)
	if !ok {
		return fmt.Errorf("permit %s: not an instance of cluster %s", name, c.cfg.Name)
	}
	return c.act.Unfence([]fence.Instance{in})
}

func (w witnessAct) Release(ctx context.Context, name string) error {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.member(name)
	if !ok {
		return nil
	}
	return c.act.Release(ctx, []fence.Instance{in})
}

func (w witnessAct) Resign(ctx context.Context, name, reason string) error {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.member(name)
	if !ok {
		return nil
	}
	// Not c.fence: one instance is not the cluster's fence its metrics time.
	ctx, cancel := context.WithTimeout(ctx, max(c.cfg.Margin, time.Second))
	defer cancel()
	if c.fencing != nil {
		c.fencing.Add(1)
		defer c.fencing.Add(-1)
	}
	return c.act.Fence(ctx, []fence.Instance{in}, reason)
}
