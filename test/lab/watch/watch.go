// Package watch feeds an observe.Timeline from a running lab: keepalived's
// notify FIFO and log, netlink address, local-route and neighbour
// notifications in each namespace, ARP/NDP/VRRP frames on the switch,
// client probes answered by per-node responders, and etcd keys.
//
// Each source stamps what it receives on the timeline's clock the moment
// it receives it; frames and probe answers carry the kernel's receive
// stamp instead, so a reader delayed by CPU pressure does not move them.
// Address and local-route changes of all hosts come from one socket, in
// the order the kernel made them (addrs.go, routes.go).
package watch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// Namespace is what the observer needs of a lab namespace (topo.NS has
// it): a handle for netlink subscriptions, a netlink handle for polling,
// and a way to open sockets inside.
type Namespace interface {
	NsHandle() netns.NsHandle
	Handle() *netlink.Handle
	Do(fn func() error) error
}

// Observer runs the event sources of a lab and feeds one observe.Timeline.
type Observer struct {
	TL  *observe.Timeline
	log *slog.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Mutex
	closers []func()
	probers []*prober

	addrOnce sync.Once
	addrs    *addrFeed
	addrErr  error
}

// NewObserver creates an observer writing to tl.
func NewObserver(tl *observe.Timeline, log *slog.Logger) *Observer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Observer{TL: tl, log: log, ctx: ctx, cancel: cancel}
}

// Close stops every source and waits for them.
func (o *Observer) Close() {
	o.cancel()
	o.closeMu.Lock()
	for _, c := range o.closers {
		c()
	}
	o.closers = nil
	o.closeMu.Unlock()
	o.wg.Wait()
}

func (o *Observer) onClose(f func()) {
	o.closeMu.Lock()
	o.closers = append(o.closers, f)
	o.closeMu.Unlock()
}

func (o *Observer) goRun(f func()) {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		f()
	}()
}

// note records a problem of the observer itself, so a gap in the
// timeline is visible in it.
func (o *Observer) note(host, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.log.Warn("observer", "host", host, "msg", msg)
	o.TL.Add(observe.Event{Kind: observe.KindNote, Host: host, Source: "observer", Text: msg})
}

// resubscribe runs sub until the observer closes, starting it again (with
// a fresh dump of existing state) whenever the subscription ends, e.g. on
// ENOBUFS after a burst.
func (o *Observer) resubscribe(host, what string, sub func(done <-chan struct{}) (<-chan struct{}, error)) error {
	first := make(chan error, 1)
	o.goRun(func() {
		started := false
		for o.ctx.Err() == nil {
			done := make(chan struct{})
			ended, err := sub(done)
			if !started {
				first <- err
				started = true
				if err != nil {
					close(done)
					return
				}
			} else if err != nil {
				o.note(host, "%s: resubscribe: %v", what, err)
				close(done)
				select {
				case <-time.After(100 * time.Millisecond):
					continue
				case <-o.ctx.Done():
					return
				}
			}
			select {
			case <-ended:
				close(done)
				if o.ctx.Err() == nil {
					o.note(host, "%s: subscription ended, resubscribing", what)
				}
			case <-o.ctx.Done():
				close(done)
				<-ended
				return
			}
		}
	})
	if err := <-first; err != nil {
		return fmt.Errorf("watch %s on %s: %w", what, host, err)
	}
	return nil
}

const netlinkRcvBuf = 4 << 20

// linkNames caches interface names by index for a namespace.
func linkNames(ns Namespace) func(int) string {
	var mu sync.Mutex
	cache := map[int]string{}
	return func(idx int) string {
		mu.Lock()
		defer mu.Unlock()
		if n, ok := cache[idx]; ok {
			return n
		}
		n := strconv.Itoa(idx)
		if l, err := ns.Handle().LinkByIndex(idx); err == nil {
			n = l.Attrs().Name
		}
		cache[idx] = n
		return n
	}
}

// WatchNeighbours records host's neighbour entries for the given
// addresses: from netlink notifications and, as a fallback for anything
// the kernel does not notify, from a dump every poll interval. An event
// is recorded when the entry appears, disappears, or changes MAC or
// NUD state.
func (o *Observer) WatchNeighbours(host string, ns Namespace, ips []netip.Addr, poll time.Duration) error {
	want := map[netip.Addr]bool{}
	for _, ip := range ips {
		want[ip] = true
	}
	type entry struct {
		mac, state string
		present    bool
	}
	var mu sync.Mutex
	known := map[netip.Addr]entry{}
	// A dump and the notifications are read apart, so either can be the
	// older: a dump must not overwrite a notification processed while it
	// was taken (notified[ip] is the notification count when ip was last
	// notified), nor change a MAC notifications have not reported yet (it
	// did both, and the router seemed to flip back to the old owner for
	// an instant).
	var notifications uint64
	notified := map[netip.Addr]uint64{}
	names := linkNames(ns)
	// update records n; a poll passes the notification count read before
	// its dump (since), a notification passes nil.
	update := func(at time.Duration, source string, n netlink.Neigh, present bool, since *uint64) {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !want[ip.Unmap()] {
			return
		}
		ip = ip.Unmap()
		e := entry{present: present}
		if present {
			e.mac = n.HardwareAddr.String()
			e.state = neighState(n.State)
			if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
				e.mac = ""
			}
		}
		mu.Lock()
		if since == nil {
			notifications++
			notified[ip] = notifications
		} else if old := known[ip]; notified[ip] > *since || (old.present && present && old.mac != e.mac) {
			// A notification newer than this dump already said, or one
			// about a new MAC is still on its way (the kernel notifies
			// every change of MAC; a dump only fills in NUD states).
			mu.Unlock()
			return
		}
		old := known[ip]
		known[ip] = e
		mu.Unlock()
		if old == e {
			return
		}
		o.TL.Add(observe.Event{At: at, Kind: observe.KindNeigh, Host: host, Source: source, IP: ip, MAC: e.mac, NeighState: e.state, Present: present, Dev: names(n.LinkIndex)})
	}
	err := o.resubscribe(host, "neighbours", func(done <-chan struct{}) (<-chan struct{}, error) {
		ch := make(chan netlink.NeighUpdate, 256)
		h := ns.NsHandle()
		err := netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
			Namespace: &h, ListExisting: true, ReceiveBufferSize: netlinkRcvBuf, ReceiveBufferForceSize: true,
			ErrorCallback: func(err error) { o.log.Debug("neigh subscription", "host", host, "err", err) },
		})
		if err != nil {
			return nil, err
		}
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			for u := range ch {
				update(o.TL.Now(), "netlink", u.Neigh, u.Type == unix.RTM_NEWNEIGH, nil)
			}
		}()
		return ended, nil
	})
	if err != nil || poll <= 0 {
		return err
	}
	o.goRun(func() {
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			select {
			case <-o.ctx.Done():
				return
			case <-tick.C:
			}
			at := o.TL.Now()
			mu.Lock()
			since := notifications
			mu.Unlock()
			seen := map[netip.Addr]bool{}
			for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
				list, err := ns.Handle().NeighList(0, fam)
				if err != nil {
					if o.ctx.Err() == nil {
						o.note(host, "poll neighbours: %v", err)
					}
					return
				}
				for _, n := range list {
					if ip, ok := netip.AddrFromSlice(n.IP); ok && want[ip.Unmap()] {
						seen[ip.Unmap()] = true
						update(at, "poll", n, true, &since)
					}
				}
			}
			for ip := range want {
				mu.Lock()
				gone := known[ip].present && !seen[ip]
				mu.Unlock()
				if gone {
					update(at, "poll", netlink.Neigh{IP: ip.AsSlice()}, false, &since)
				}
			}
		}
	})
	return nil
}

func neighState(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"},
		{netlink.NUD_STALE, "STALE"}, {netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"},
		{netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
	}
	for _, n := range names {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return "NONE"
}

// fifoLineRE matches keepalived's notify FIFO line format
// `INSTANCE "VI_1" MASTER 150` (and GROUP lines).
var fifoLineRE = regexp.MustCompile(`^(INSTANCE|GROUP) "([^"]*)" (\S+) (-?\d+)$`)

// ParseFIFOLine parses one notify FIFO line into a state event (without
// time and host).
func ParseFIFOLine(line string) (observe.Event, bool) {
	m := fifoLineRE.FindStringSubmatch(line)
	if m == nil {
		return observe.Event{}, false
	}
	prio, _ := strconv.Atoi(m[4])
	inst := m[2]
	if m[1] == "GROUP" {
		inst = "group:" + inst
	}
	return observe.Event{Kind: observe.KindState, Source: "fifo", Instance: inst, State: m[3], Priority: prio}, true
}

// ReadFIFO creates (if needed) and reads a keepalived notify FIFO for
// host. It opens the FIFO read-write, so it never sees end-of-file while
// keepalived restarts, and drains it continuously (keepalived drops lines
// when the pipe is full).
func (o *Observer) ReadFIFO(host, path string) error {
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create notify fifo %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open notify fifo %s: %w", path, err)
	}
	o.onClose(func() { f.Close() })
	o.goRun(func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			at := o.TL.Now()
			e, ok := ParseFIFOLine(sc.Text())
			if !ok {
				o.note(host, "notify fifo: unparsed line %q", sc.Text())
				continue
			}
			e.At, e.Host = at, host
			o.TL.Add(e)
		}
	})
	return nil
}

// logStateRE matches keepalived's "(VI_1) Entering MASTER STATE" log line.
var logStateRE = regexp.MustCompile(`\(([^)]+)\) Entering (\w+) STATE`)

// ParseLogLine parses a keepalived -l -D log line into a state event
// (without time and host).
func ParseLogLine(line string) (observe.Event, bool) {
	m := logStateRE.FindStringSubmatch(line)
	if m == nil {
		return observe.Event{}, false
	}
	return observe.Event{Kind: observe.KindState, Source: "log", Instance: m[1], State: m[2], Priority: -1}, true
}

// KeepalivedLog returns a line callback for a keepalived process (see
// proc.Spec.OnLine). With states set it records the state transitions the
// log reports, for configs where the lab cannot add its notify FIFO.
func (o *Observer) KeepalivedLog(host string, states bool) func(at time.Duration, line string) {
	return func(at time.Duration, line string) {
		if !states {
			return
		}
		if e, ok := ParseLogLine(line); ok {
			e.At, e.Host = at, host
			o.TL.Add(e)
		}
	}
}
