package watch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// ProbePort is the UDP port of the lab's probe responders.
const ProbePort = 7007

// freebind lets a responder bind the VIP before (and while) the host does
// not hold it; it receives only while the address is assigned.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Respond starts a UDP responder on host for each address (the VIPs): it
// answers every datagram with "<host> <datagram>", from the address the
// datagram was sent to, so the client learns which host holds the VIP.
// It runs in this process on sockets created inside ns; keepalived faults
// (SIGSTOP, SIGKILL) do not stop it, just as they would not stop a
// service on a real host.
func (o *Observer) Respond(host string, ns Namespace, addrs []netip.Addr) error {
	for _, a := range addrs {
		network := "udp4"
		if a.Is6() {
			network = "udp6"
		}
		var pc net.PacketConn
		err := ns.Do(func() error {
			lc := net.ListenConfig{Control: freebind}
			var err error
			pc, err = lc.ListenPacket(o.ctx, network, netip.AddrPortFrom(a, ProbePort).String())
			return err
		})
		if err != nil {
			return fmt.Errorf("start probe responder on %s for %s: %w", host, a, err)
		}
		o.onClose(func() { pc.Close() })
		prefix := []byte(host + " ")
		o.goRun(func() {
			buf := make([]byte, 512)
			out := make([]byte, 0, 600)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				out = append(append(out[:0], prefix...), buf[:n]...)
				_, _ = pc.WriteTo(out, from)
			}
		})
	}
	return nil
}

// expiryGrace is how long after its timeout a probe may still be
// answered before the prober stops waiting.
const expiryGrace = 300 * time.Millisecond

// ProbeConfig tunes the client prober.
type ProbeConfig struct {
	Interval time.Duration // between probes to one address; 10 ms when zero
	Timeout  time.Duration // a probe without answer after this is lost; 200 ms when zero
}

// Probe sends a UDP probe from host (the client) to each address every
// interval and records one observe.KindProbe event per probe, stamped with its
// send time: answered (by whom, after how long) or lost (no answer
// within the timeout). Late answers to lost probes are ignored.
func (o *Observer) Probe(host string, ns Namespace, addrs []netip.Addr, cfg ProbeConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	for _, a := range addrs {
		network := "udp4"
		if a.Is6() {
			network = "udp6"
		}
		var pc *net.UDPConn
		err := ns.Do(func() error {
			c, err := net.ListenPacket(network, "")
			if err != nil {
				return err
			}
			pc = c.(*net.UDPConn)
			return enableTimestamps(pc)
		})
		if err != nil {
			return fmt.Errorf("start prober on %s for %s: %w", host, a, err)
		}
		o.onClose(func() { pc.Close() })
		p := &prober{o: o, host: host, dst: a, pc: pc, cfg: cfg, pending: map[int]time.Duration{}}
		o.closeMu.Lock()
		o.probers = append(o.probers, p)
		o.closeMu.Unlock()
		o.goRun(p.receive)
		o.goRun(p.send)
	}
	return nil
}

type prober struct {
	o    *Observer
	host string
	dst  netip.Addr
	pc   *net.UDPConn
	cfg  ProbeConfig

	mu      sync.Mutex
	pending map[int]time.Duration // seqno → send time
}

func (p *prober) send() {
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.dst, ProbePort))
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-p.o.ctx.Done():
			return
		case <-tick.C:
		}
		now := p.o.TL.Now()
		p.expire(now)
		p.mu.Lock()
		p.pending[seq] = now
		p.mu.Unlock()
		if _, err := p.pc.WriteTo([]byte(strconv.Itoa(seq)), to); err != nil {
			// A send error (no route, ...) is a lost probe; the expiry
			// records it.
			continue
		}
	}
}

// expire records as lost every pending probe that has had no answer for
// the timeout plus a grace period: answers are judged by their kernel
// receive stamp when they are read, so a reader that runs late under CPU
// pressure does not turn a timely answer into a loss.
func (p *prober) expire(now time.Duration) {
	var lost []observe.Event
	p.mu.Lock()
	for seq, at := range p.pending {
		if now-at > p.cfg.Timeout+expiryGrace {
			delete(p.pending, seq)
			lost = append(lost, observe.Event{At: at, Kind: observe.KindProbe, Host: p.host, Source: "probe", IP: p.dst, Seqno: seq})
		}
	}
	p.mu.Unlock()
	for _, e := range lost {
		p.o.TL.Add(e)
	}
}

func (p *prober) receive() {
	buf := make([]byte, 512)
	oob := make([]byte, 128)
	for {
		n, oobn, _, _, err := p.pc.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		now := p.o.TL.Now()
		if ts, ok := kernelStamp(oob[:oobn]); ok {
			now = p.o.TL.FromWall(ts)
		}
		who, num, ok := strings.Cut(string(buf[:n]), " ")
		if !ok {
			continue
		}
		seq, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		p.mu.Lock()
		at, ok := p.pending[seq]
		delete(p.pending, seq)
		p.mu.Unlock()
		if !ok {
			continue // answer to a probe already recorded as lost
		}
		e := observe.Event{At: at, Kind: observe.KindProbe, Host: p.host, Source: "probe", IP: p.dst, Seqno: seq, OK: true, Owner: who, RTT: now - at}
		if e.RTT > p.cfg.Timeout {
			// Too late to count: lost, but say who answered eventually.
			e.OK, e.Text = false, "late answer from "+who
		}
		p.o.TL.Add(e)
	}
}

// unresolved reports whether a probe sent at or before upTo still waits
// for its answer or its expiry.
func (p *prober) unresolved(upTo time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, at := range p.pending {
		if at <= upTo {
			return true
		}
	}
	return false
}

// ProbesResolved waits until every probe sent at or before upTo has been
// recorded as answered or lost, so metrics over a window ending at upTo
// see all of its probes (a lost probe is only known after its timeout).
func (o *Observer) ProbesResolved(ctx context.Context, upTo, within time.Duration) error {
	done := func() bool {
		o.closeMu.Lock()
		defer o.closeMu.Unlock()
		for _, p := range o.probers {
			if p.unresolved(upTo) {
				return false
			}
		}
		return true
	}
	if done() {
		return nil
	}
	// Every resolution records an event: re-check on each.
	_, err := o.TL.WaitFor(ctx, func(observe.Event) bool { return done() }, within)
	if err != nil {
		return fmt.Errorf("wait for probes up to %s to resolve: %w", observe.FormatAt(upTo), err)
	}
	return nil
}
