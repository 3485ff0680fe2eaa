package watch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// EchoPort is the TCP port of the lab's echo servers.
const EchoPort = 7008

// EchoTCP serves a line echo on TCP port on each address (the VIPs) in
// host's namespace, bound with IP_FREEBIND like the probe responders: it
// accepts only while the address is local. Each line comes back prefixed
// with the host's name, so a client learns who served it.
func (o *Observer) EchoTCP(host string, ns Namespace, addrs []netip.Addr, port int) error {
	for _, a := range addrs {
		network := "tcp4"
		if a.Is6() {
			network = "tcp6"
		}
		var ln net.Listener
		err := ns.Do(func() error {
			lc := net.ListenConfig{Control: freebind}
			var err error
			ln, err = lc.Listen(o.ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
			return err
		})
		if err != nil {
			return fmt.Errorf("start tcp echo on %s for %s: %w", host, a, err)
		}
		var mu sync.Mutex
		conns := map[net.Conn]bool{}
		o.onClose(func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
		o.goRun(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns[c] = true
				mu.Unlock()
				o.goRun(func() {
					defer func() {
						mu.Lock()
						delete(conns, c)
						mu.Unlock()
						c.Close()
					}()
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						if _, err := fmt.Fprintf(c, "%s %s\n", host, sc.Text()); err != nil {
							return
						}
					}
				})
			}
		})
	}
	return nil
}

// TCPClient is a long-lived TCP connection from a lab host to an echo
// server, exercised every interval: the local client of DESIGN F1.
type TCPClient struct {
	o      *Observer
	host   string
	conn   net.Conn
	dst    netip.Addr
	local  netip.Addr
	cfg    ProbeConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	pending  map[int]time.Duration // seqno → send time
	serving  bool                  // answers arrive
	finished bool                  // the connection failed or closed
}

// Local is the connection's local address: the source the kernel chose.
func (c *TCPClient) Local() netip.Addr { return c.local }

// Close ends the client (its events stop).
func (c *TCPClient) Close() {
	c.cancel()
	c.conn.Close()
	<-c.done
}

// DialTCP connects from host's namespace to dst (an echo server) and then
// sends one numbered line every cfg.Interval, recording on the timeline
// (observe.KindConn, Host = host) only what changes: "connected" (Src is
// the local address the kernel picked), "answered" (answers flow, Owner
// is who served them), "stalled" (a line got no answer within
// cfg.Timeout; stamped with that line's send time), and "error: ..." or
// "closed" when the connection fails (stamped when read). A stalled
// connection keeps being exercised: it either recovers, fails or hangs.
func (o *Observer) DialTCP(ctx context.Context, host string, ns Namespace, dst netip.AddrPort, cfg ProbeConfig) (*TCPClient, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	var conn net.Conn
	err := ns.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial tcp %s from %s: %w", dst, host, err)
	}
	la, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	cctx, cancel := context.WithCancel(o.ctx)
	c := &TCPClient{o: o, host: host, conn: conn, dst: dst.Addr(), local: la.Addr().Unmap(), cfg: cfg, cancel: cancel,
		done: make(chan struct{}), pending: map[int]time.Duration{}}
	c.event(o.TL.Now(), "connected", "")
	o.onClose(func() { cancel(); conn.Close() })
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.receive() }()
	go func() { defer wg.Done(); c.send(cctx) }()
	go func() { wg.Wait(); close(c.done) }()
	return c, nil
}

func (c *TCPClient) event(at time.Duration, text, owner string) {
	c.o.TL.Add(observe.Event{At: at, Kind: observe.KindConn, Host: c.host, Source: "tcp", IP: c.dst, Src: c.local,
		Owner: owner, OK: text == "answered" || text == "connected", Text: text})
}

// fail records the connection's end once.
func (c *TCPClient) fail(err error) {
	at := c.o.TL.Now()
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	c.mu.Unlock()
	if c.o.ctx.Err() != nil {
		return
	}
	text := "closed"
	if err != nil && !errors.Is(err, io.EOF) {
		text = "error: " + err.Error()
	}
	c.event(at, text, "")
}

func (c *TCPClient) send(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := c.o.TL.Now()
		c.mu.Lock()
		if c.finished {
			c.mu.Unlock()
			return
		}
		// The oldest unanswered line past its timeout marks a stall.
		oldest := time.Duration(-1)
		for _, sent := range c.pending {
			if oldest < 0 || sent < oldest {
				oldest = sent
			}
		}
		stalled := c.serving && oldest >= 0 && now-oldest > c.cfg.Timeout
		if stalled {
			c.serving = false
		}
		c.pending[seq] = now
		c.mu.Unlock()
		if stalled {
			c.event(oldest, "stalled", "")
		}
		if _, err := fmt.Fprintf(c.conn, "%d\n", seq); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *TCPClient) receive() {
	r := bufio.NewReader(c.conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.fail(err)
			return
		}
		at := c.o.TL.Now()
		owner, num, _ := strings.Cut(strings.TrimSpace(line), " ")
		seq, _ := strconv.Atoi(num)
		c.mu.Lock()
		delete(c.pending, seq)
		// Older lines are answered too (TCP delivers in order).
		for s := range c.pending {
			if s < seq {
				delete(c.pending, s)
			}
		}
		start := !c.serving
		c.serving = true
		c.mu.Unlock()
		if start {
			c.event(at, "answered", owner)
		}
	}
}
