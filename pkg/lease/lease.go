// Package lease holds fenced's etcd lease and fences before the etcd server
// can expire it (DESIGN F4, invariants I4 and I5).
//
// The holder trusts only its own arithmetic. A renewal the server
// acknowledged proves the lease lives until at least the time the request was
// SENT plus the granted TTL: the server re-arms the lease when it receives the
// request, which is later, and never expires it earlier. The holder's local
// validity ends Margin before that bound, on CLOCK_BOOTTIME, which keeps
// counting through suspend and ignores wall-clock steps. clientv3's own
// KeepAlive deadline and concurrency.Session.Done() run from the time the
// answer arrived and fire after the server expired the lease; neither is used.
//
// The holder does not touch the VIP or keepalived: it calls a Fencer.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/config"
)

// Fencer removes and restores what the lease guards (pkg/fence implements it).
// Fence must be quick and idempotent: the holder calls it on its own loop, and
// the lead time of a fence is measured to the moment Fence returns.
type Fencer interface {
	Fence(ctx context.Context, reason string) error
	Unfence(ctx context.Context) error
}

// Clock reads CLOCK_BOOTTIME (time since boot, counting suspend) and makes
// timers on it. SystemClock is the real one; tests use a fake.
type Clock interface {
	Now() time.Duration
	// Wall is the wall clock, used only for timestamps shown to people.
	Wall() time.Time
	NewTimer() (Timer, error)
}

// Timer fires once its clock reads at or after the time given to Reset.
// C may deliver spurious wake-ups: whoever waits re-reads the clock.
type Timer interface {
	C() <-chan struct{}
	Reset(at time.Duration)
	Close()
}

// Client is the part of clientv3 the holder uses; *clientv3.Client has it.
type Client interface {
	Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error)
	KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error)
	Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error)
	Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error)
	Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error)
	Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan
	// Ctx is done once the client is closed.
	Ctx() context.Context
}

var _ Client = (*clientv3.Client)(nil)

var (
	// ErrClientClosed is returned by Run when the etcd client was closed
	// under it; the holder fenced first.
	ErrClientClosed = errors.New("lease: etcd client closed")
	// ErrAlreadyRun is returned by a second call to Run.
	ErrAlreadyRun = errors.New("lease: holder already ran")
)

// State is where the holder stands.
type State int

const (
	// Starting: no lease has been held long enough yet; the host is fenced
	// (the runtime writes FAULT before it starts the holder).
	Starting State = iota
	// Healthy: a lease is held, its local validity has not run out, and
	// Unfence returned.
	Healthy
	// Fenced: a lease was lost and Fence was called; the holder is getting a
	// new lease and waits out the hold-down before it unfences again.
	Fenced
)

func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Healthy:
		return "healthy"
	case Fenced:
		return "fenced"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText makes states readable in JSON state files.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reason says why the holder fenced.
type Reason string

// Fence reasons, the keys of Status.Fences.
const (
	ReasonDeadline      Reason = "deadline"        // local validity ran out
	ReasonLeaseNotFound Reason = "lease-not-found" // the server answered TTL <= 0 or lease not found
	ReasonKeyDeleted    Reason = "key-deleted"     // the member key was deleted or replaced
	ReasonClientClosed  Reason = "client-closed"   // the etcd client was closed
	ReasonStopped       Reason = "stopped"         // Run is returning
)

// Status is a snapshot of the holder.
type Status struct {
	State State `json:"state"`
	// Since is when State was entered, on the wall clock (display only).
	Since   time.Time        `json:"since"`
	LeaseID clientv3.LeaseID `json:"lease_id"`
	// TTL is the TTL the server granted.
	TTL time.Duration `json:"ttl"`
	// ValidFor is the local validity left when the snapshot was taken;
	// ValidUntil is that deadline on the holder's clock (CLOCK_BOOTTIME), 0
	// without a lease.
	ValidFor         time.Duration `json:"valid_for"`
	ValidUntil       time.Duration `json:"valid_until,omitempty"`
	LastRenewLatency time.Duration `json:"last_renew_latency"`
	RenewalsOK       uint64        `json:"renewals_ok"`
	RenewalsFailed   uint64        `json:"renewals_failed"`
	// Fences counts calls to Fence that took the host out of Healthy.
	Fences          map[Reason]uint64 `json:"fences"`
	LastFenceReason Reason            `json:"last_fence_reason,omitempty"`
	// LastFenceAt is the CLOCK_BOOTTIME reading when Fence returned.
	LastFenceAt time.Duration `json:"last_fence_at,omitempty"`
	// LastFenceLead is the earliest possible server expiry (send time of the
	// last acknowledged renewal + TTL) minus LastFenceAt. I4 needs it > 0.
	LastFenceLead time.Duration `json:"last_fence_lead,omitempty"`
}

// Member is the JSON value of the member key <prefix>/members/<node>.
type Member struct {
	Node    string    `json:"node"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
}

// MemberKey is where a node announces itself, under its lease.
func MemberKey(prefix, node string) string {
	return strings.TrimRight(prefix, "/") + "/members/" + node
}

// Config is what a Holder needs besides its client and fencer.
type Config struct {
	// Cluster gives Endpoints (for messages), Prefix, TTL, Margin, HoldDown,
	// RenewEvery and RequestTimeout; New completes it as the file would.
	// Margin must cover the time to actuate a fence, process pauses and the
	// rate difference between the server's clock and ours.
	Cluster config.Cluster
	Node    string
	Host    string // default os.Hostname()
	Version string
	Clock   Clock        // default SystemClock()
	Logger  *slog.Logger // nil discards
	// OnChange is called on the holder's loop after every state change. It
	// must not block.
	OnChange func(Status)
	// OnRenew, when set, is called on the holder's loop, with the new
	// deadline already in Status, with the round
	// trip of every acknowledged renewal. It must not block.
	OnRenew func(latency time.Duration)
	// ProgressEvery makes the loop wake, and signal Progress, at least this
	// often (the runtime sets half the systemd watchdog interval). 0: only
	// when there is work, at least once per RenewEvery while a lease is held.
	ProgressEvery time.Duration
	// RevokeOnStop revokes the lease after Run's context is cancelled, so a
	// peer need not wait for the TTL. The host is fenced first.
	RevokeOnStop bool
	// KeepOnStop leaves the host unfenced when Run's context is cancelled
	// (fenced.on_stop = "keep"). Any other exit of the loop fences.
	KeepOnStop bool
	// Adopt, when set, is a lease a predecessor handed over (a planned
	// restart): Run starts Healthy with it, its deadline armed, renews it at
	// once and fences if it cannot renew before the deadline.
	Adopt *HandedLease
	// OnRun is called once when Run starts its loop, after an adopted
	// lease's deadline is armed.
	OnRun func()
}

// Holder holds one lease in one etcd cluster. Create it with New and run it
// with Run, once.
type Holder struct {
	cli      Client
	fencer   Fencer
	cfg      Config
	clock    Clock
	log      *slog.Logger
	key      string
	member   string
	ttlSecs  int64
	retry    time.Duration // pause after a failed request
	progress chan struct{}
	ran      atomic.Bool
	handoff  atomic.Bool // PrepareHandoff was called

	handed *HandedLease // guarded by mu; set by shutdown on a handoff

	mu         sync.Mutex
	snap       Status        // guarded by mu
	validUntil time.Duration // guarded by mu; 0 without a lease

	// Everything below is owned by the Run goroutine.
	state        State
	since        time.Time
	lease        *held
	counters     Status // counters and last fence
	acquiring    bool
	nextAcquire  time.Duration
	acquireFails int
	fencePending Reason // a Fence that failed and is retried
	fenceRetryAt time.Duration
	wctx         context.Context // cancelled when the loop exits
	events       chan event
	done         chan struct{} // closed when the loop exits
	wg           sync.WaitGroup
}

// held is one granted lease.
type held struct {
	id       clientv3.LeaseID
	ttl      time.Duration
	expiry   time.Duration // earliest possible server expiry: last acked send + ttl
	deadline time.Duration // expiry - margin: the local validity
	next     time.Duration // next renewal
	inflight int           // renewal attempts not answered yet (at most 2)
	hedgeAt  time.Duration // a second attempt goes out then if the first still hangs
	// holdFrom starts the hold-down; -1 after a failed renewal, until the
	// next success restarts it. Unused once Healthy.
	holdFrom  time.Duration
	stopWatch context.CancelFunc
}

// New checks cfg and builds a holder. It starts nothing.
func New(cli Client, f Fencer, cfg Config) (*Holder, error) {
	if cli == nil || f == nil {
		return nil, fmt.Errorf("new lease holder: client and fencer are required: %w", config.ErrInvalid)
	}
	if err := cfg.Cluster.Complete(); err != nil {
		return nil, fmt.Errorf("new lease holder for cluster %q: %w", cfg.Cluster.Name, err)
	}
	if cfg.Node == "" || strings.ContainsAny(cfg.Node, "/ \t\n") {
		return nil, fmt.Errorf("new lease holder: node %q must be non-empty without '/' or white space: %w", cfg.Node, config.ErrInvalid)
	}
	if cfg.KeepOnStop && cfg.RevokeOnStop {
		return nil, fmt.Errorf("new lease holder: revoking on stop needs fencing on stop: %w", config.ErrInvalid)
	}
	if cfg.ProgressEvery < 0 {
		return nil, fmt.Errorf("new lease holder: progress interval %s is negative: %w", cfg.ProgressEvery, config.ErrInvalid)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock()
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := json.Marshal(Member{Node: cfg.Node, Host: cfg.Host, PID: os.Getpid(), Version: cfg.Version, Started: cfg.Clock.Wall().UTC()})
	if err != nil {
		return nil, fmt.Errorf("new lease holder: encode member record: %w", err)
	}
	h := &Holder{
		cli:      cli,
		fencer:   f,
		cfg:      cfg,
		clock:    cfg.Clock,
		log:      log.With("cluster", cfg.Cluster.Name, "node", cfg.Node),
		key:      MemberKey(cfg.Cluster.Prefix, cfg.Node),
		member:   string(m),
		ttlSecs:  int64(cfg.Cluster.TTL / time.Second),
		retry:    min(max(cfg.Cluster.RenewEvery/4, 100*time.Millisecond), 500*time.Millisecond),
		progress: make(chan struct{}, 1),
		state:    Starting,
		since:    cfg.Clock.Wall(),
	}
	h.counters.Fences = map[Reason]uint64{}
	h.publish()
	return h, nil
}

// Key is the member key this holder writes under its lease.
func (h *Holder) Key() string { return h.key }

// Progress receives a value after every iteration of the loop that does the
// work; the runtime pings the systemd watchdog from it and nothing else.
func (h *Holder) Progress() <-chan struct{} { return h.progress }

// Status returns a snapshot; it is safe to call from any goroutine.
func (h *Holder) Status() Status {
	h.mu.Lock()
	s, until := h.snap, h.validUntil
	s.Fences = maps.Clone(s.Fences)
	h.mu.Unlock()
	if until > 0 {
		s.ValidFor, s.ValidUntil = max(0, until-h.clock.Now()), until
	}
	return s
}

// publish copies the loop's state into the snapshot Status reads.
func (h *Holder) publish() {
	s := h.counters
	s.State, s.Since = h.state, h.since
	var until time.Duration
	if l := h.lease; l != nil {
		s.LeaseID, s.TTL = l.id, l.ttl
		until = l.deadline
	}
	s.Fences = maps.Clone(h.counters.Fences)
	h.mu.Lock()
	h.snap, h.validUntil = s, until
	h.mu.Unlock()
}

func (h *Holder) setState(s State) {
	if h.state == s {
		return
	}
	h.log.Info("lease holder state changed", "from", h.state, "to", s)
	h.state, h.since = s, h.clock.Wall()
	h.publish()
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(h.Status())
	}
}

func (h *Holder) endpoints() string { return strings.Join(h.cfg.Cluster.Endpoints, ",") }
