package etcdtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Proxy is an in-process TCP proxy in front of one or more etcd members.
// In Blackhole mode it stops forwarding in both directions but keeps every
// connection open, as a silent partition does: nothing is refused or reset,
// bytes wait and flow again after Pass. Delay adds one-way latency per
// direction. A mode change applies at once to existing connections.
type Proxy struct {
	endpoints []string
	listeners []net.Listener

	mu      sync.Mutex
	mode    proxyMode
	changed chan struct{} // closed and replaced on every mode change
	conns   map[net.Conn]struct{}
	closed  bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type proxyMode struct {
	blackhole          bool
	toServer, toClient time.Duration
}

// NewProxy listens on one loopback port per endpoint (etcd client URLs) and
// forwards to it. It is closed in t's cleanup.
func NewProxy(t testing.TB, endpoints ...string) *Proxy {
	t.Helper()
	p := &Proxy{changed: make(chan struct{}), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	t.Cleanup(p.Close)
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			t.Fatalf("proxy: endpoint %q is not a URL", ep)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("proxy for %s: %v", ep, err)
		}
		p.listeners = append(p.listeners, l)
		p.endpoints = append(p.endpoints, u.Scheme+"://"+l.Addr().String())
		p.wg.Add(1)
		go p.accept(l, u.Host) // ends when Close closes l
	}
	return p
}

// Endpoints are the proxy's URLs, in the order of the targets.
func (p *Proxy) Endpoints() []string { return append([]string(nil), p.endpoints...) }

// Pass forwards everything without delay (the initial mode).
func (p *Proxy) Pass() { p.set(proxyMode{}) }

// Blackhole stops forwarding in both directions, keeping connections open.
func (p *Proxy) Blackhole() { p.set(proxyMode{blackhole: true}) }

// Delay forwards each chunk of bytes toServer (client to etcd) or toClient
// after it arrived.
func (p *Proxy) Delay(toServer, toClient time.Duration) {
	p.set(proxyMode{toServer: toServer, toClient: toClient})
}

func (p *Proxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	for _, l := range p.listeners {
		l.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept(l net.Listener, target string) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c, target) // ends when both directions end
	}
}

// track registers conns for Close; false once the proxy is closed.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) serve(client net.Conn, target string) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		client.Close() // a stopped member refuses; so does its proxy
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(client, server, true) }()
	go func() { defer both.Done(); p.pipe(server, client, false) }()
	both.Wait()
	p.untrack(client, server)
}

type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies src to dst, holding each chunk as the mode says. A reader
// goroutine keeps reading while the writer holds, so a delay adds latency
// once, not per queued chunk.
func (p *Proxy) pipe(src, dst net.Conn, toServer bool) {
	chunks := make(chan chunk, 64)
	p.wg.Add(1)
	go func() { // ends on a read error: EOF, or a connection closed below or by Close
		defer p.wg.Done()
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case chunks <- chunk{data: buf[:n], at: time.Now()}:
				case <-p.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	ok := true
	for c := range chunks {
		if !p.hold(c.at, toServer) {
			ok = false
			break
		}
		if _, err := dst.Write(c.data); err != nil {
			ok = false
			break
		}
	}
	if ok {
		// The source half-closed: pass that on, keep the other direction.
		if tc, isTCP := dst.(*net.TCPConn); isTCP {
			_ = tc.CloseWrite()
			return
		}
	}
	src.Close()
	dst.Close()
	for range chunks { // let the reader finish
	}
}

// hold waits until a chunk that arrived at may be forwarded; false when the
// proxy closes first.
func (p *Proxy) hold(at time.Time, toServer bool) bool {
	for {
		p.mu.Lock()
		m, changed := p.mode, p.changed
		p.mu.Unlock()
		if !m.blackhole {
			d := m.toClient
			if toServer {
				d = m.toServer
			}
			wait := time.Until(at.Add(d))
			if wait <= 0 {
				return true
			}
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-changed:
			case <-p.done:
				tm.Stop()
				return false
			}
			tm.Stop()
			continue // re-read the mode: it may have turned to black hole
		}
		select {
		case <-changed:
		case <-p.done:
			return false
		}
	}
}
