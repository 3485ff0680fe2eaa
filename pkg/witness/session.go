package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/fencedstate"
)

// KV is the part of clientv3 a session uses; *clientv3.Client has it.
type KV interface {
	Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error)
	Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error)
	Txn(ctx context.Context) clientv3.Txn
	Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan
}

var _ KV = (*clientv3.Client)(nil)

// Actuator acts on this host for one instance (the runtime implements it
// with pkg/fence, under the cluster's fence lock).
type Actuator interface {
	// Permit writes OK to the instance's track file. It must refuse (return
	// an error, write nothing) once the cluster has fenced or the session
	// was superseded, or when s.Holds(instance) is false at the write (a
	// pre-grant's bound ran out meanwhile and its resign is next).
	Permit(ctx context.Context, s *Session, instance string) error
	// Release removes the instance's VIPs and route hints and leaves
	// keepalived as it is.
	Release(ctx context.Context, instance string) error
	// Resign removes the VIPs, then writes FAULT to the track file.
	Resign(ctx context.Context, instance, reason string) error
}

// DefaultHandoverWait bounds how long an owner that handed the key over on
// the fast path waits for the successor to say it holds it before it
// resigns. It must stay below keepalived's master-down interval
// (docs/witness.md, checked by fenced check).
const DefaultHandoverWait = 100 * time.Millisecond

// DefaultPregrantBound (W) bounds how long a successor that accepted an
// offer keeps its track file OK without the owner key: then it writes
// FAULT again. keepalived's master-down interval of the instance
// (3 × advert_int + skew) must be more than twice W (fenced check), so a
// successor whose owner's adverts stop reaching it is in FAULT again
// before it could elect itself (docs/witness.md, "The pre-grant").
const DefaultPregrantBound = 150 * time.Millisecond

// Session runs the witness for one lease of one cluster: it exists while
// the cluster's lease holder is healthy, and ends (its context cancelled)
// when the holder fences, which writes FAULT for every instance itself.
type Session struct {
	KV        KV
	Act       Actuator
	Prefix    string
	Node      string
	Lease     clientv3.LeaseID
	Instances []Instance
	Log       *slog.Logger
	// RequestTimeout bounds each etcd request.
	RequestTimeout time.Duration
	// HandoverWait: DefaultHandoverWait when zero. It also bounds how long
	// an owner waits for a successor to accept its offer.
	HandoverWait time.Duration
	// PregrantBound: DefaultPregrantBound when zero.
	PregrantBound time.Duration
	// Ineligible starts the session without candidacies: keepalived is
	// known to be gone (SetEligible).
	Ineligible bool

	mu    sync.Mutex
	holds map[string]bool // instances whose track file this session set to OK
	pre   map[string]*pregrant
	taken map[string]int64 // by instance, the revision of the last offer accepted
	tasks sync.WaitGroup   // the pre-grants' bounds

	drain    chan chan struct{}
	hand     chan handoverReq
	eligible chan struct{} // poked (buffered) when want or maint changed
	want     atomic.Int32  // 0 unknown (Ineligible decides), 1 eligible, 2 not
	maint    map[string]bool
}

// SetMaintenance says whether an instance is in maintenance on this node
// (its maintenance file, what `vipctl handover` writes, says 1): the node
// hands it over and withdraws its candidacy for it until it says 0. It
// never blocks.
func (s *Session) SetMaintenance(instance string, on bool) {
	s.mu.Lock()
	if s.maint == nil {
		s.maint = map[string]bool{}
	}
	s.maint[instance] = on
	s.mu.Unlock()
	s.poke()
}

func (s *Session) inMaintenance(instance string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maint[instance]
}

func (s *Session) poke() {
	select {
	case s.eligibleCh() <- struct{}{}:
	default:
	}
}

// SetEligible says whether this node can serve the instances: false once
// keepalived's VRRP process is gone (fenced's reaper released its VIPs),
// true when a new one runs. An ineligible node hands what it holds to its
// successors, withdraws its candidacies and claims nothing; otherwise a
// dead keepalived would keep the key, and the instance, with nobody.
// It never blocks.
func (s *Session) SetEligible(ok bool) {
	v := int32(2)
	if ok {
		v = 1
	}
	s.want.Store(v)
	s.poke()
}

func (s *Session) eligibleCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eligible == nil {
		s.eligible = make(chan struct{}, 1)
	}
	return s.eligible
}

// Holds reports whether this session holds the instance's key and told
// keepalived so, or accepted an offer of it (a pre-grant, bounded): the
// track file's right value is OK exactly then.
func (s *Session) Holds(instance string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holds[instance]
}

// Adopt marks an instance as held before Run, when a session replaces
// another of the same lease (a reload): Run keeps it if the owner key is
// still this node's under the lease, and resigns it otherwise.
func (s *Session) Adopt(instance string) { s.setHolds(instance, true) }

func (s *Session) setHolds(instance string, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds == nil {
		s.holds = map[string]bool{}
	}
	s.holds[instance] = v
}

// ErrDrained ends Run after Drain.
var ErrDrained = errors.New("witness: drained")

// Drain hands every held instance to its successor (a planned stop) and
// ends Run; it returns when that is done, ctx ends or Run has returned.
func (s *Session) Drain(ctx context.Context) {
	done := make(chan struct{})
	select {
	case s.drainCh() <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Session) drainCh() chan chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drain == nil {
		s.drain = make(chan chan struct{})
	}
	return s.drain
}

// Outcome is what a requested handover (Session.Handover) came to.
type Outcome string

const (
	// HandedOver: the key moved to To and this node withdrew; on the fast
	// path it resigned once To held the instance (SuccessorHeld) or at the
	// bound.
	HandedOver Outcome = fencedstate.HandedOver
	// NotHeld: this node does not hold the instance; nothing changed.
	NotHeld Outcome = fencedstate.NotHeld
	// NoSuccessor: no other node is a candidate; nothing changed.
	NoSuccessor Outcome = fencedstate.NoSuccessor
	// Failed: the key did not move (the successor's candidacy changed, or
	// etcd failed); this node resigned and withdrew, so the key is free
	// or goes with its lease.
	Failed Outcome = fencedstate.Failed
)

// HandoverResult is the answer to Session.Handover.
type HandoverResult struct {
	Outcome Outcome
	To      string
	// SuccessorHeld: the successor said it holds the instance (its track
	// file OK: keepalived BACKUP) before this node resigned.
	SuccessorHeld bool
	// Took is from the request to this node's resign.
	Took time.Duration
	Err  error
}

type handoverReq struct {
	instance string
	reply    chan HandoverResult
}

// Handover hands a held instance to its successor now and withdraws this
// node's candidacy for it, as a planned stop does for every instance
// (`vipctl handover`): the VIPs go first (released on the fast path),
// then the key moves, then, once the successor holds or at the bound,
// this node resigns. It refuses, changing nothing, when this node does
// not hold the instance or no other node is a candidate. The instance
// stays withdrawn (SetMaintenance true) until SetMaintenance(false).
func (s *Session) Handover(ctx context.Context, instance string) HandoverResult {
	req := handoverReq{instance: instance, reply: make(chan HandoverResult, 1)}
	select {
	case s.handCh() <- req:
	case <-ctx.Done():
		return HandoverResult{Outcome: NotHeld, Err: fmt.Errorf("hand over %s: the witness session is busy: %w", instance, ctx.Err())}
	}
	select {
	case r := <-req.reply:
		return r
	case <-ctx.Done():
		return HandoverResult{Outcome: Failed, Err: fmt.Errorf("hand over %s: no answer: %w", instance, ctx.Err())}
	}
}

func (s *Session) handCh() chan handoverReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hand == nil {
		s.hand = make(chan handoverReq)
	}
	return s.hand
}

// handOverNow serves one Handover request inside Run.
func (s *Session) handOverNow(ctx context.Context, sts map[string]*state, name string) HandoverResult {
	start := time.Now()
	st := sts[name]
	if st == nil {
		return HandoverResult{Outcome: NotHeld, Err: fmt.Errorf("hand over %s: not a witnessed instance of this session", name)}
	}
	if !s.Holds(name) || st.view.Owner != s.Node || st.view.OwnerLease != int64(s.Lease) {
		return HandoverResult{Outcome: NotHeld}
	}
	c, ok := Successor(s.Node, st.view.Candidates)
	if !ok {
		return HandoverResult{Outcome: NoSuccessor}
	}
	// Out before the key moves: the next step must neither publish this
	// node's candidacy again nor take the instance back.
	s.SetMaintenance(name, true)
	s.log().Info("witness: handing the owner key over on request", "instance", name, "to", c.Node)
	err := s.handOver(ctx, st, c, true, true)
	if err == nil && st.view.Owner != c.Node {
		err = fmt.Errorf("hand over %s to %s: its candidacy changed meanwhile; resigned, the key is free", name, c.Node)
	}
	if err != nil {
		// The candidacy may still be there (a failed request): the next
		// step withdraws it, and frees a key still ours.
		return HandoverResult{Outcome: Failed, To: c.Node, Took: time.Since(start), Err: err}
	}
	st.withdrawn = true // the transaction deleted the candidacy
	held := s.settle(ctx, sts)
	return HandoverResult{Outcome: HandedOver, To: c.Node, SuccessorHeld: held[name] || st.accepted, Took: time.Since(start)}
}

// pregrant is an accepted offer: the track file says OK without the key
// until the key comes, the offer ends, or the bound runs out.
type pregrant struct {
	rev   int64
	timer *time.Timer
}

// accept records the pre-grant and arms its bound before the track file
// is written: the bound counts from before keepalived can leave FAULT.
// The bound's resign runs on its own (a timer), so that a session busy
// with a slow etcd request still keeps it.
func (s *Session) accept(ctx context.Context, name string, rev int64) *pregrant {
	p := &pregrant{rev: rev}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pre == nil {
		s.pre, s.taken = map[string]*pregrant{}, map[string]int64{}
	}
	if s.holds == nil {
		s.holds = map[string]bool{}
	}
	s.pre[name], s.taken[name], s.holds[name] = p, rev, true
	s.tasks.Add(1)
	p.timer = time.AfterFunc(s.PregrantBound, func() {
		defer s.tasks.Done()
		if !s.endPregrant(name, p, false) {
			return
		}
		s.log().Warn("witness: the owner key did not come within the pre-grant's bound; back to FAULT", "instance", name, "bound", s.PregrantBound)
		if err := s.Act.Resign(context.WithoutCancel(ctx), name, "witness: pre-grant expired"); err != nil {
			s.log().Error("witness: resign after the pre-grant's bound", "instance", name, "error", err)
		}
		s.poke()
	})
	return p
}

// endPregrant ends p if it is still the instance's pre-grant: the key
// came (keep: the holding stays) or it did not (the holding ends; the
// caller resigns). False when it ended already (the bound resigned).
func (s *Session) endPregrant(name string, p *pregrant, keep bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pre[name] != p {
		return false
	}
	delete(s.pre, name)
	if !keep {
		s.holds[name] = false
	}
	if p.timer.Stop() {
		s.tasks.Done()
	}
	return true
}

// EndPregrants ends every pre-grant at once and returns their instances,
// whose track files the caller must set to FAULT: the session is being
// stopped (a fence, a lease no longer healthy, a reload), and its
// successor must not inherit an OK without the key, nor this session's
// bound fire over what the next one writes.
func (s *Session) EndPregrants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, p := range s.pre {
		delete(s.pre, name)
		s.holds[name] = false
		if p.timer.Stop() {
			s.tasks.Done()
		}
		out = append(out, name)
	}
	return out
}

func (s *Session) pregrantOf(name string) *pregrant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pre[name]
}

func (s *Session) offerTaken(name string, rev int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken[name] == rev
}

// pending is a fast handover waiting for the successor.
type pending struct {
	to    string
	until time.Time
}

// Run publishes the candidacies and follows the owner keys until ctx ends.
// Errors from etcd are retried (the instances stay as they are: a held
// instance stays held while the lease does, which the holder enforces).
func (s *Session) Run(ctx context.Context) error {
	if s.RequestTimeout <= 0 {
		s.RequestTimeout = 2 * time.Second
	}
	if s.HandoverWait <= 0 {
		s.HandoverWait = DefaultHandoverWait
	}
	if s.PregrantBound <= 0 {
		s.PregrantBound = DefaultPregrantBound
	}
	// A pre-grant's bound outlives no Run: it fires (or was stopped).
	defer s.tasks.Wait()
	drain := s.drainCh()
	s.eligibleCh()
	s.handCh()
	if w := s.want.Load(); w != 0 {
		s.Ineligible = w == 2
	}
	for {
		err := s.run(ctx, drain)
		if ctx.Err() != nil || errors.Is(err, ErrDrained) {
			return err
		}
		s.log().Warn("witness: etcd request failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// state is one instance's view, kept current by the watch.
type state struct {
	in        Instance
	view      View
	pending   *pending
	withdrawn bool // this node's candidacy is withdrawn (out)
	accepted  bool // the successor accepted this node's last offer
}

// out reports whether this node cannot serve the instance now.
func (s *Session) out(instance string) bool {
	return s.Ineligible || s.inMaintenance(instance)
}

func (s *Session) run(ctx context.Context, drain chan chan struct{}) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sts := map[string]*state{}
	for _, in := range s.Instances {
		sts[in.Name] = &state{in: in}
		if s.out(in.Name) {
			s.withdraw(ctx, in.Name)
			sts[in.Name].withdrawn = true
			continue
		}
		if err := s.publish(ctx, in, s.Holds(in.Name)); err != nil {
			return err
		}
	}
	rev, err := s.load(ctx, sts)
	if err != nil {
		return err
	}
	// One watch over the whole prefix (member and fleet keys are ignored):
	// a handover moves the owner key and deletes a candidacy in one
	// transaction, and only one watch delivers both in one response. Two
	// watches could show the new owner before the withdrawn candidacy, and
	// the new owner would hand the key straight back.
	events := s.KV.Watch(wctx, strings.TrimRight(s.Prefix, "/")+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := time.Now().Add(time.Hour)
		for _, name := range s.names() {
			st := sts[name]
			if err := s.step(ctx, st); err != nil {
				return err
			}
			if st.pending != nil && st.pending.until.Before(next) {
				next = st.pending.until
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil
		case done := <-drain:
			s.drainAll(ctx, sts)
			close(done)
			return ErrDrained
		case req := <-s.hand:
			req.reply <- s.handOverNow(ctx, sts, req.instance)
		case <-s.eligible:
			// step hands over and withdraws, or publishes again.
			if w := s.want.Load(); w != 0 && (w == 2) != s.Ineligible {
				s.Ineligible = w == 2
				s.log().Info("witness: keepalived's VRRP process", "running", !s.Ineligible)
			}
		case <-timer.C:
		case wr, ok := <-events:
			if err := s.apply(sts, wr, ok); err != nil {
				return err
			}
		}
	}
}

func (s *Session) names() []string {
	out := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		out[i] = in.Name
	}
	return out
}

// load reads every owner and candidate key at one revision.
func (s *Session) load(ctx context.Context, sts map[string]*state) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	resp, err := s.KV.Txn(rctx).Then(
		clientv3.OpGet(OwnersPrefix(s.Prefix), clientv3.WithPrefix()),
		clientv3.OpGet(CandidatesPrefix(s.Prefix), clientv3.WithPrefix()),
		clientv3.OpGet(OffersPrefix(s.Prefix), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("witness: read owners and candidates under %s: %w", s.Prefix, err)
	}
	for _, st := range sts {
		st.view = View{}
	}
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			s.set(sts, string(kv.Key), kv.Value, kv.Lease, kv.ModRevision, false)
		}
	}
	return resp.Header.Revision, nil
}

// apply folds watch events into the views.
func (s *Session) apply(sts map[string]*state, wr clientv3.WatchResponse, ok bool) error {
	if !ok {
		return errors.New("witness: watch closed")
	}
	if err := wr.Err(); err != nil {
		return fmt.Errorf("witness: watch under %s: %w", s.Prefix, err)
	}
	for _, ev := range wr.Events {
		s.set(sts, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.Lease, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete)
	}
	return nil
}

// set records one key's value (or its deletion) in the view it belongs to.
func (s *Session) set(sts map[string]*state, key string, value []byte, lease, rev int64, deleted bool) {
	if rest, ok := strings.CutPrefix(key, OwnersPrefix(s.Prefix)); ok {
		st := sts[rest]
		if st == nil {
			return
		}
		if deleted {
			st.view.Owner, st.view.OwnerLease = "", 0
		} else {
			st.view.Owner, st.view.OwnerLease = string(value), lease
		}
		return
	}
	if rest, ok := strings.CutPrefix(key, OffersPrefix(s.Prefix)); ok {
		if st := sts[rest]; st != nil {
			st.view.Offer = Offer{}
			if !deleted {
				st.view.Offer = Offer{To: string(value), Lease: lease, Rev: rev}
			}
		}
		return
	}
	rest, ok := strings.CutPrefix(key, CandidatesPrefix(s.Prefix))
	if !ok {
		return
	}
	inst, node, ok := strings.Cut(rest, "/")
	st := sts[inst]
	if !ok || st == nil {
		return
	}
	cs := st.view.Candidates[:0:0]
	for _, c := range st.view.Candidates {
		if c.Node != node {
			cs = append(cs, c)
		}
	}
	if !deleted {
		c, err := ParseCandidacy(value)
		if err != nil {
			s.log().Warn("witness: ignoring a candidacy", "key", key, "error", err)
		} else {
			cs = append(cs, Candidate{Node: node, Priority: c.Priority, Lease: lease, Holds: c.Holds})
		}
	}
	st.view.Candidates = cs
}

// step acts on one instance's view.
func (s *Session) step(ctx context.Context, st *state) error {
	name := st.in.Name
	if p := st.pending; p != nil {
		// A fast handover: resign once the successor holds, or at the bound.
		done := time.Now().After(p.until) || successorHolds(st.view, p.to)
		if st.view.Owner != p.to {
			done = true // the successor lost it already: resign at once
		}
		if !done {
			return nil
		}
		st.pending = nil
		if err := s.resign(ctx, name, "witness: handed over to "+p.to); err != nil {
			s.log().Error("witness: resign after handover", "instance", name, "error", err)
		}
	}
	if p := s.pregrantOf(name); p != nil {
		// An accepted offer: the key comes (hold), or the offer stays
		// as it was (wait, the bound runs), or it ended without the key
		// (FAULT again at once).
		d := Decide(s.Node, int64(s.Lease), st.in, st.view)
		switch {
		case d.Action == Hold || d.Action == HandOver:
			if s.endPregrant(name, p, true) {
				s.log().Info("witness: the offered owner key came", "instance", name)
				if err := s.publish(ctx, st.in, true); err != nil {
					return err
				}
			}
		case d.Action == Accept && st.view.Offer.Rev == p.rev && !s.out(name):
			return nil
		default:
			if s.endPregrant(name, p, false) {
				s.log().Warn("witness: the offer ended without the owner key; back to FAULT", "instance", name, "owner", st.view.Owner)
				if err := s.Act.Resign(ctx, name, "witness: offer withdrawn"); err != nil {
					s.log().Error("witness: resign", "instance", name, "error", err)
				}
			}
		}
	}
	if s.out(name) {
		// Withdrawn first: nobody hands the instance back meanwhile.
		if !st.withdrawn {
			s.log().Warn("witness: cannot serve the instance (keepalived gone or maintenance); handing over and withdrawing", "instance", name)
			s.withdraw(ctx, name)
			st.withdrawn = true
		}
		return s.giveUp(ctx, st)
	}
	if st.withdrawn {
		s.log().Info("witness: candidate again", "instance", name)
		if err := s.publish(ctx, st.in, false); err != nil {
			return err
		}
		st.withdrawn = false
	}
	d := Decide(s.Node, int64(s.Lease), st.in, st.view)
	held := s.Holds(name)
	if d.Action == Accept && (held || s.offerTaken(name, st.view.Offer.Rev)) {
		// Held without a pre-grant (a session adopting another's) or an
		// offer accepted once already: nothing to accept.
		d.Action = Wait
	}
	switch d.Action {
	case Accept:
		s.log().Info("witness: accepting the owner's offer: out of FAULT as BACKUP, bounded", "instance", name, "owner", st.view.Owner, "bound", s.PregrantBound)
		p := s.accept(ctx, name, st.view.Offer.Rev)
		if err := s.Act.Permit(ctx, s, name); err != nil {
			s.endPregrant(name, p, false)
			s.log().Warn("witness: not permitted", "instance", name, "error", err)
			return nil
		}
		key := CandidateKey(s.Prefix, name, s.Node)
		rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
		defer cancel()
		if _, err := s.KV.Put(rctx, key, Candidacy{Priority: st.in.Priority, Ready: true}.Encode(), clientv3.WithLease(s.Lease)); err != nil {
			return fmt.Errorf("witness: say ready in %s: %w", key, err)
		}
	case Wait:
		if held {
			// The key is gone or another's while we held it: give up now.
			if err := s.resign(ctx, name, "witness: owner key lost"); err != nil {
				s.log().Error("witness: resign", "instance", name, "error", err)
			}
			s.log().Warn("witness: owner key lost; resigned", "instance", name, "owner", st.view.Owner)
			return s.publish(ctx, st.in, false)
		}
	case Claim:
		won, err := s.claim(ctx, name)
		if err != nil || !won {
			return err // not won: the watch brings the winner
		}
		st.view.Owner, st.view.OwnerLease = s.Node, int64(s.Lease)
		s.log().Info("witness: claimed the owner key", "instance", name)
		return s.permit(ctx, st)
	case Hold:
		if !held {
			return s.permit(ctx, st) // a key we hold under this lease (adopted, or claimed before a retry)
		}
	case HandOver:
		s.log().Info("witness: handing the owner key over", "instance", name, "to", d.To.Node, "to_priority", d.To.Priority, "priority", st.in.Priority)
		return s.handOver(ctx, st, d.To, false, false)
	}
	return nil
}

// permit records the holding first: the runtime's reassertion of the
// track files (under the same lock as Permit) must not undo the OK.
func (s *Session) permit(ctx context.Context, st *state) error {
	s.setHolds(st.in.Name, true)
	if err := s.Act.Permit(ctx, s, st.in.Name); err != nil {
		s.setHolds(st.in.Name, false)
		s.log().Warn("witness: not permitted", "instance", st.in.Name, "error", err)
		return nil
	}
	return s.publish(ctx, st.in, true)
}

// resign stops holding first, so that no reassertion writes OK back, then
// releases the VIPs and writes FAULT.
func (s *Session) resign(ctx context.Context, name, reason string) error {
	s.setHolds(name, false)
	return s.Act.Resign(ctx, name, reason)
}

// giveUp frees a key this ineligible node still holds: to the successor
// if there is one, else by deleting it, so that whoever comes can claim.
func (s *Session) giveUp(ctx context.Context, st *state) error {
	if st.view.Owner != s.Node || st.view.OwnerLease != int64(s.Lease) {
		return nil
	}
	if c, ok := Successor(s.Node, st.view.Candidates); ok {
		return s.handOver(ctx, st, c, true, false)
	}
	if err := s.resign(ctx, st.in.Name, "witness: keepalived is gone"); err != nil {
		return fmt.Errorf("witness: resign %s: %w", st.in.Name, err)
	}
	key := OwnerKey(s.Prefix, st.in.Name)
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	if _, err := s.KV.Txn(rctx).If(clientv3.Compare(clientv3.Value(key), "=", s.Node), clientv3.Compare(clientv3.LeaseValue(key), "=", s.Lease)).
		Then(clientv3.OpDelete(key)).Commit(); err != nil {
		return fmt.Errorf("witness: free %s: %w", key, err)
	}
	st.view.Owner, st.view.OwnerLease = "", 0
	return nil
}

// claim takes the free key in one transaction.
func (s *Session) claim(ctx context.Context, name string) (bool, error) {
	key := OwnerKey(s.Prefix, name)
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	resp, err := s.KV.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, s.Node, clientv3.WithLease(s.Lease))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("witness: claim %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// handOver moves the key to c: the VIPs go first (I3), then the key moves
// in one transaction that holds only if this node still owns it under its
// lease and c's candidacy is still under the lease it was read with. With
// withdraw (a planned stop) this node's candidacy goes in the same
// transaction: the successor must not hand it straight back.
//
// With offer (a planned handover: fenced's stop, `vipctl handover`) to a
// successor of lower priority on a keepalived-owned instance, the owner
// first offers the key (the pre-grant) and waits, within HandoverWait,
// for the successor to leave FAULT: then its resign's priority-0 advert
// reaches a BACKUP, which takes over after its skew time. Without the
// successor's answer it goes on as without an offer.
func (s *Session) handOver(ctx context.Context, st *state, c Candidate, withdraw, offer bool) error {
	name := st.in.Name
	st.accepted = false
	if offer && Offerable(st.in, c) {
		st.accepted = s.offer(ctx, st, c)
	}
	var err error
	if st.in.Fast {
		// Still "held" for the track file: keepalived stays MASTER without
		// VIPs until the successor is ready (pending, below).
		err = s.Act.Release(ctx, name)
	} else {
		err = s.resign(ctx, name, "witness: handing over to "+c.Node)
	}
	if err != nil {
		// Not sure the VIPs are gone: keep the key (the holder's fence
		// and the lease cover a host that cannot release). An accepted
		// offer ends with the offer, or at the successor's bound.
		s.dropOffer(ctx, name)
		return fmt.Errorf("witness: release %s before handing it to %s: %w", name, c.Node, err)
	}
	key, ckey := OwnerKey(s.Prefix, name), CandidateKey(s.Prefix, name, c.Node)
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	okey := OfferKey(s.Prefix, name)
	then := []clientv3.Op{clientv3.OpPut(key, c.Node, clientv3.WithLease(clientv3.LeaseID(c.Lease))), clientv3.OpDelete(okey)}
	if withdraw {
		then = append(then, clientv3.OpDelete(CandidateKey(s.Prefix, name, s.Node)))
	}
	resp, err := s.KV.Txn(rctx).
		If(clientv3.Compare(clientv3.Value(key), "=", s.Node),
			clientv3.Compare(clientv3.LeaseValue(key), "=", s.Lease),
			clientv3.Compare(clientv3.LeaseValue(ckey), "=", c.Lease)).
		Then(then...).
		Else(clientv3.OpTxn([]clientv3.Cmp{
			clientv3.Compare(clientv3.Value(key), "=", s.Node),
			clientv3.Compare(clientv3.LeaseValue(key), "=", s.Lease)},
			[]clientv3.Op{clientv3.OpDelete(key)}, nil), clientv3.OpDelete(okey)).
		Commit()
	if err != nil || !resp.Succeeded {
		// The successor went, or the request failed: make sure keepalived is
		// out, then the key is free (deleted in the Else) or ours to retry.
		if rerr := s.resign(ctx, name, "witness: handover to "+c.Node+" did not happen"); rerr != nil {
			s.log().Error("witness: resign", "instance", name, "error", rerr)
		}
		if err != nil {
			return fmt.Errorf("witness: hand %s to %s: %w", key, c.Node, err)
		}
		if withdraw {
			return nil
		}
		return s.publish(ctx, st.in, false)
	}
	st.view.Owner, st.view.OwnerLease = c.Node, c.Lease
	if st.in.Fast {
		st.pending = &pending{to: c.Node, until: time.Now().Add(s.HandoverWait)}
	}
	if withdraw {
		return nil
	}
	return s.publish(ctx, st.in, false)
}

// offer pre-grants the handover to c, under this node's lease and only
// while it owns the key and c's candidacy is under the lease it was read
// with, and waits up to HandoverWait for c to say it is ready.
func (s *Session) offer(ctx context.Context, st *state, c Candidate) bool {
	name := st.in.Name
	key, okey, ckey := OwnerKey(s.Prefix, name), OfferKey(s.Prefix, name), CandidateKey(s.Prefix, name, c.Node)
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	resp, err := s.KV.Txn(rctx).
		If(clientv3.Compare(clientv3.Value(key), "=", s.Node),
			clientv3.Compare(clientv3.LeaseValue(key), "=", s.Lease),
			clientv3.Compare(clientv3.LeaseValue(ckey), "=", c.Lease)).
		Then(clientv3.OpPut(okey, c.Node, clientv3.WithLease(s.Lease))).
		Commit()
	if err != nil || !resp.Succeeded {
		s.log().Warn("witness: could not offer the handover; handing over without it", "instance", name, "to", c.Node, "error", err)
		return false
	}
	wctx, wcancel := context.WithTimeout(ctx, s.HandoverWait)
	defer wcancel()
	for wr := range s.KV.Watch(wctx, ckey, clientv3.WithRev(resp.Header.Revision+1)) {
		if wr.Err() != nil {
			break
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete || ev.Kv.Lease != c.Lease {
				return false
			}
			if cd, err := ParseCandidacy(ev.Kv.Value); err == nil && cd.Ready {
				s.log().Info("witness: the successor accepted the offer", "instance", name, "to", c.Node)
				return true
			}
		}
	}
	s.log().Warn("witness: the successor did not accept the offer in time; handing over without it", "instance", name, "to", c.Node, "wait", s.HandoverWait)
	return false
}

// dropOffer deletes this node's offer (best effort: it goes with the
// lease, and the successor's bound ends an accepted one anyway).
func (s *Session) dropOffer(ctx context.Context, name string) {
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	if _, err := s.KV.Txn(rctx).Then(clientv3.OpDelete(OfferKey(s.Prefix, name))).Commit(); err != nil {
		s.log().Warn("witness: withdraw the offer", "instance", name, "error", err)
	}
}

// drainAll hands every held instance to its successor, for a planned stop.
func (s *Session) drainAll(ctx context.Context, sts map[string]*state) {
	for _, name := range s.names() {
		st := sts[name]
		c, ok := Successor(s.Node, st.view.Candidates)
		if !s.Holds(name) || !ok {
			// Not held, or nobody to hand to (the stop's fence releases
			// it): withdraw, so that nobody hands it to this node.
			s.withdraw(ctx, name)
			continue
		}
		if err := s.handOver(ctx, st, c, true, true); err != nil {
			s.log().Error("witness: hand over on stop", "instance", name, "error", err)
		}
	}
	s.settle(ctx, sts)
}

// settle waits for the fast handovers' successors, within their bound:
// step resigns each once its successor holds, and the rest at the bound.
// It reports, by instance, the handovers whose successor said it held
// the instance before this node resigned.
func (s *Session) settle(ctx context.Context, sts map[string]*state) map[string]bool {
	held := map[string]bool{}
	check := func() {
		for name, st := range sts {
			if p := st.pending; p != nil && st.view.Owner == p.to && successorHolds(st.view, p.to) {
				held[name] = true
			}
			if st.pending != nil {
				_ = s.step(ctx, st)
			}
		}
	}
	deadline := time.Now().Add(s.HandoverWait)
	for anyPending(sts) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		if _, err := s.load(ctx, sts); err != nil {
			break
		}
		check()
	}
	for _, st := range sts {
		if st.pending != nil {
			st.pending.until = time.Time{}
			_ = s.step(ctx, st)
		}
	}
	return held
}

func successorHolds(v View, node string) bool {
	for _, c := range v.Candidates {
		if c.Node == node && c.Holds {
			return true
		}
	}
	return false
}

func anyPending(sts map[string]*state) bool {
	for _, st := range sts {
		if st.pending != nil {
			return true
		}
	}
	return false
}

// withdraw deletes this node's candidacy for an instance.
func (s *Session) withdraw(ctx context.Context, name string) {
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	if _, err := s.KV.Txn(rctx).Then(clientv3.OpDelete(CandidateKey(s.Prefix, name, s.Node))).Commit(); err != nil {
		s.log().Warn("witness: withdraw candidacy", "instance", name, "error", err)
	}
}

// publish writes this node's candidacy for an instance under the lease.
func (s *Session) publish(ctx context.Context, in Instance, holds bool) error {
	key := CandidateKey(s.Prefix, in.Name, s.Node)
	rctx, cancel := context.WithTimeout(ctx, s.RequestTimeout)
	defer cancel()
	if _, err := s.KV.Put(rctx, key, Candidacy{Priority: in.Priority, Holds: holds}.Encode(), clientv3.WithLease(s.Lease)); err != nil {
		return fmt.Errorf("witness: publish candidacy %s: %w", key, err)
	}
	return nil
}

func (s *Session) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
