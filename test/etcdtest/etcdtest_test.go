package etcdtest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipkit/vipkit/test/etcdtest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestServerKeepsDataOverRestartAndPause(t *testing.T) {
	s := etcdtest.Start(t)
	cli := s.Client(t)
	if _, err := cli.Put(ctxT(t, 5*time.Second), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n := s.RPCsStarted(t)["Put"]; n < 1 {
		t.Errorf("metrics count %v puts, want at least 1", n)
	}
	m := s.Member(0)
	m.Stop(t)
	if m.Running() {
		t.Fatal("running after Stop")
	}
	m.Restart(t)
	r, err := cli.Get(ctxT(t, 10*time.Second), "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get after restart: %v %v", r, err)
	}

	m.Pause(t)
	if _, err := cli.Get(ctxT(t, 300*time.Millisecond), "k"); err == nil {
		t.Fatal("a paused member answered")
	}
	m.Resume(t)
	if _, err := cli.Get(ctxT(t, 10*time.Second), "k"); err != nil {
		t.Fatalf("get after resume: %v", err)
	}
}

func TestClusterElectsNewLeader(t *testing.T) {
	s := etcdtest.StartCluster(t, 3)
	if len(s.Endpoints()) != 3 {
		t.Fatalf("endpoints %v", s.Endpoints())
	}
	old := s.Leader(t)
	s.Member(old).Kill(t)
	if now := s.Leader(t); now == old {
		t.Fatalf("leader still %d after it was killed", old)
	}
	if _, err := s.Client(t).Put(ctxT(t, 10*time.Second), "k", "v"); err != nil {
		t.Fatalf("put with two of three members: %v", err)
	}
	s.Member(old).Restart(t)
}

func TestTLSNeedsClientCertificate(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.WithTLS())
	if _, err := s.Client(t).Put(ctxT(t, 5*time.Second), "k", "v"); err != nil {
		t.Fatalf("put with client certificate: %v", err)
	}
	cfg := s.ClientConfig()
	cfg.TLS = cfg.TLS.Clone()
	cfg.TLS.Certificates = nil
	cli, err := clientv3.New(cfg)
	if err == nil {
		defer cli.Close()
		_, err = cli.Put(ctxT(t, time.Second), "k", "v")
	}
	if err == nil {
		t.Fatal("put without a client certificate succeeded")
	}
}

func TestAuthUser(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.WithAuth())
	user, password := s.User()
	cfg := s.ClientConfig()
	cfg.Username, cfg.Password = user, password
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("client as %s: %v", user, err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctxT(t, 5*time.Second), "/vipkit/k", "v"); err != nil {
		t.Fatalf("put as %s: %v", user, err)
	}
	anon, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Put(ctxT(t, 5*time.Second), "/vipkit/k", "v"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("anonymous put: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
}

// echoServer answers every line with itself.
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { // ends when l is closed
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return "http://" + l.Addr().String()
}

func TestProxyModesApplyToOpenConnections(t *testing.T) {
	p := etcdtest.NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Endpoints()[0][len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(msg string, wait time.Duration) (time.Duration, error) {
		start := time.Now()
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return 0, err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		line, err := r.ReadString('\n')
		if err == nil && line != msg+"\n" {
			t.Fatalf("echo: got %q, want %q", line, msg)
		}
		return time.Since(start), err
	}
	if _, err := roundTrip("a", 5*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.Blackhole()
	var ne net.Error
	if _, err := roundTrip("b", 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("black hole: got %v, want a read timeout on an open connection", err)
	}
	p.Pass() // what was held flows again, on the same connection
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "b\n" {
		t.Fatalf("after black hole: %q %v", line, err)
	}

	p.Delay(100*time.Millisecond, 50*time.Millisecond)
	if rtt, err := roundTrip("c", 5*time.Second); err != nil || rtt < 150*time.Millisecond {
		t.Fatalf("delay: round trip %s (%v), want at least 150ms", rtt, err)
	}
}

// A black hole in front of etcd keeps the client's connection: requests hang
// instead of failing, and work again after Pass without a reconnect.
func TestProxyBlackholesEtcd(t *testing.T) {
	s := etcdtest.Start(t)
	p := etcdtest.NewProxy(t, s.Endpoints()...)
	cli, err := clientv3.New(clientv3.Config{Endpoints: p.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctxT(t, 5*time.Second), "k", "v"); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	if _, err := cli.Get(ctxT(t, 500*time.Millisecond), "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get through a black hole: %v, want deadline exceeded", err)
	}
	p.Pass()
	if _, err := cli.Get(ctxT(t, 5*time.Second), "k"); err != nil {
		t.Fatalf("get after the black hole: %v", err)
	}
}

// A slowed disk holds every write for as long as it is told, on the real
// server: a Put waits for the WAL's fdatasync. Only lower bounds are
// asserted (a sleep cannot be shortened).
func TestIntegrationSlowDisk(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.WithSlowDisk())
	cli := s.Client(t)
	put := func() time.Duration {
		t.Helper()
		began := time.Now()
		if _, err := cli.Put(ctxT(t, 20*time.Second), "k", "v"); err != nil {
			t.Fatal(err)
		}
		return time.Since(began)
	}
	fast := put()
	const delay = 400 * time.Millisecond
	s.Members()[0].SetFsyncDelay(t, delay)
	slow := put()
	s.Members()[0].SetFsyncDelay(t, 0)
	if slow < delay {
		t.Fatalf("a Put on the slowed disk took %s, less than the %s every sync waits", slow, delay)
	}
	t.Logf("Put: %s before, %s with every sync delayed %s, %s after", fast, slow, delay, put())
}
