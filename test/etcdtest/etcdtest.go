// Package etcdtest runs real etcd servers (bin/etcd, built by `make etcd`)
// on loopback for tests, and a TCP proxy that can black-hole or delay them.
//
// Every server gets random free ports and temporary data directories, logs
// to a file that is printed when the test fails, and is killed and waited
// for in t.Cleanup. Without the binary, tests skip, except under CI=true,
// where they fail.
package etcdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipkit/vipkit/test/netnstest"
)

// StartTimeout bounds how long a server or cluster may take to be healthy.
const StartTimeout = 30 * time.Second

// Binary finds the etcd server: $VIPKIT_BIN_DIR/etcd, else bin/etcd in the
// working directory or a parent. Missing, it skips the test (fails it under
// CI=true). With -short it always skips: these are integration tests.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, "etcd")
}

func binary(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real etcd server: skipped with -short")
	}
	var tried []string
	if d := os.Getenv("VIPKIT_BIN_DIR"); d != "" {
		tried = append(tried, filepath.Join(d, name))
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			tried = append(tried, filepath.Join(dir, "bin", name))
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	for _, p := range tried {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("etcd server binary %s not found (tried $VIPKIT_BIN_DIR and bin/ upwards: %s): run make etcd", name, strings.Join(tried, ", "))
	netnstest.Missing(t, "%s", msg)
	return ""
}

// Option changes how servers start.
type Option func(*options)

type options struct {
	tls       bool
	auth      bool
	heartbeat time.Duration
	election  time.Duration
	fsync     bool
	slowDisk  bool
	args      []string
	binary    string
}

// WithTLS serves clients over TLS and requires client certificates signed
// by a CA made for the test (Server.TLS).
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithAuth creates root and a user allowed to read and write every key
// (Server.User), then enables authentication. Server.Client logs in as root.
func WithAuth() Option { return func(o *options) { o.auth = true } }

// WithElection sets the raft heartbeat and election timeout (etcd's
// defaults are 100ms and 1s; the minimum lease TTL follows the election).
func WithElection(heartbeat, election time.Duration) Option {
	return func(o *options) { o.heartbeat, o.election = heartbeat, election }
}

// WithFsync makes etcd sync its WAL; by default tests run with
// --unsafe-no-fsync, so a busy shared disk does not stall raft.
func WithFsync() Option { return func(o *options) { o.fsync = true } }

// WithBinary runs the server named name in bin/ (e.g. "etcd-3.4.23", which
// make etcd fetches from Debian's etcd-server package) instead of the pinned
// build.
func WithBinary(name string) Option { return func(o *options) { o.binary = name } }

// WithArgs passes extra flags to every member.
func WithArgs(args ...string) Option { return func(o *options) { o.args = append(o.args, args...) } }

// Server is one etcd cluster of one or more members.
type Server struct {
	t       testing.TB
	bin     string
	opts    options
	members []*Member
	tls     *TLSFiles
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string
	LogPath   string

	srv     *Server
	cluster string // --initial-cluster

	disk *slowDisk // WithSlowDisk

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start runs a one-member cluster.
func Start(t testing.TB, opts ...Option) *Server { return StartCluster(t, 1, opts...) }

// StartCluster runs an n-member cluster and waits until it has a leader.
func StartCluster(t testing.TB, n int, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.binary == "" {
		s.opts.binary = "etcd"
	}
	s.bin = binary(t, s.opts.binary)
	dir := t.TempDir() // removed after the members are killed (cleanups run last-in first-out)
	if s.opts.tls {
		s.tls = newTLSFiles(t, filepath.Join(dir, "pki"))
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.launch(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), n); err == nil {
			break
		}
		// Ports are picked free but can be taken before etcd binds them.
		s.stopAll()
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	if s.opts.auth {
		s.enableAuth(t)
	}
	return s
}

var errPortTaken = errors.New("address already in use")

func (s *Server) launch(dir string, n int) error {
	scheme := "http"
	if s.opts.tls {
		scheme = "https"
	}
	s.members = nil
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: scheme + "://" + freeAddr(s.t),
			PeerURL:   "http://" + freeAddr(s.t),
			DataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			LogPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
			srv:       s,
		}
		if s.opts.slowDisk {
			d, err := mountSlowDisk(m.DataDir+".disk", m.DataDir)
			if err != nil {
				return err
			}
			m.disk = d
			s.t.Cleanup(func() {
				if err := d.unmount(); err != nil {
					s.t.Errorf("unmount %s: %v", m.DataDir, err)
				}
			})
		}
		s.members = append(s.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range s.members {
		m.cluster = strings.Join(initial, ",")
		if err := m.start(); err != nil {
			return err
		}
		s.t.Cleanup(func() { m.cleanup() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	for _, m := range s.members {
		if err := m.waitReady(ctx); err != nil {
			if b, _ := os.ReadFile(m.LogPath); strings.Contains(string(b), "address already in use") {
				return fmt.Errorf("member %s: %w", m.Name, errPortTaken)
			}
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
	}
	return nil
}

func (s *Server) stopAll() {
	for _, m := range s.members {
		m.kill(syscall.SIGKILL)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (m *Member) args() []string {
	o := m.srv.opts
	a := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.cluster,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "etcdtest-" + filepath.Base(filepath.Dir(m.DataDir)),
		"--log-level", "info",
	}
	if !o.fsync {
		a = append(a, "--unsafe-no-fsync")
	}
	if o.heartbeat > 0 {
		a = append(a, "--heartbeat-interval", strconv.FormatInt(o.heartbeat.Milliseconds(), 10),
			"--election-timeout", strconv.FormatInt(o.election.Milliseconds(), 10))
	}
	if f := m.srv.tls; f != nil {
		a = append(a, "--cert-file", f.ServerCert, "--key-file", f.ServerKey, "--trusted-ca-file", f.CA, "--client-cert-auth")
	}
	return append(a, o.args...)
}

// start launches the process; with an existing data dir etcd rejoins and
// ignores the --initial-* flags.
func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("start etcd member %s: already running", m.Name)
	}
	if err := os.MkdirAll(filepath.Dir(m.DataDir), 0o700); err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	cmd := exec.Command(m.srv.bin, m.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Dies with the test binary even if cleanups never run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd member %s (%s): %w", m.Name, m.srv.bin, err)
	}
	exited := make(chan struct{})
	go func() { // ends when the process exits
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	return nil
}

// kill signals the process and, for a fatal signal, waits for it.
func (m *Member) kill(sig syscall.Signal) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		m.cmd = nil
	}
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (m *Member) cleanup() {
	m.kill(syscall.SIGKILL)
	if t := m.srv.t; t.Failed() {
		t.Logf("etcd member %s log (%s), last lines:\n%s", m.Name, m.LogPath, tail(m.LogPath, 60))
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitReady polls the member's status until it knows a leader.
func (m *Member) waitReady(ctx context.Context) error {
	cfg := m.srv.ClientConfig(m.ClientURL)
	cfg.DialTimeout = time.Second
	var last error
	for {
		if !m.Running() {
			return fmt.Errorf("etcd exited: %s", tail(m.LogPath, 5))
		}
		last = func() error {
			cli, err := clientv3.New(cfg)
			if err != nil {
				return err
			}
			defer cli.Close()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st, err := cli.Status(sctx, m.ClientURL)
			if err != nil {
				return err
			}
			if st.Leader == 0 {
				return errors.New("no leader yet")
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %w", StartTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running reports whether the process was started and not stopped or killed.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// PID is the member's process ID, 0 when it does not run.
func (m *Member) PID() int {
	if !m.Running() {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd.Process.Pid
}

// Stop ends the member with SIGTERM and waits for it.
func (m *Member) Stop(t testing.TB) { t.Helper(); m.kill(syscall.SIGTERM) }

// Kill ends the member with SIGKILL and waits for it.
func (m *Member) Kill(t testing.TB) { t.Helper(); m.kill(syscall.SIGKILL) }

// Pause stops the process with SIGSTOP: its sockets stay open, nothing
// answers.
func (m *Member) Pause(t testing.TB) { t.Helper(); m.kill(syscall.SIGSTOP) }

// Resume continues a paused member.
func (m *Member) Resume(t testing.TB) { t.Helper(); m.kill(syscall.SIGCONT) }

// Restart starts a stopped or killed member on the same ports and data and
// waits until it sees a leader.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	m.kill(syscall.SIGKILL)
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := m.waitReady(ctx); err != nil {
		t.Fatalf("restart etcd member %s: %v", m.Name, err)
	}
}

// Members lists the cluster's members.
func (s *Server) Members() []*Member { return s.members }

// Member is member i.
func (s *Server) Member(i int) *Member { return s.members[i] }

// Endpoints are the client URLs of all members.
func (s *Server) Endpoints() []string {
	var eps []string
	for _, m := range s.members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// TLS is the PKI made for WithTLS, nil without it.
func (s *Server) TLS() *TLSFiles { return s.tls }

// User is the non-root user made by WithAuth.
func (s *Server) User() (name, password string) { return "vipkit", "vipkit-test-password" }

const rootPassword = "root-test-password"

// ClientConfig reaches endpoints (default: all members) as root: with the
// client certificate under WithTLS and logged in under WithAuth. The logger
// is silent.
func (s *Server) ClientConfig(endpoints ...string) clientv3.Config {
	if len(endpoints) == 0 {
		endpoints = s.Endpoints()
	}
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if s.tls != nil {
		cfg.TLS = s.tls.ClientConfig()
	}
	if s.opts.auth { // before auth is enabled the client ignores these
		cfg.Username, cfg.Password = "root", rootPassword
	}
	return cfg
}

// Client is a direct client of all members as root, closed in cleanup.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(s.ClientConfig())
	if err != nil {
		t.Fatalf("etcd client for %v: %v", s.Endpoints(), err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader is the index of the member that leads, waiting up to
// StartTimeout for one.
func (s *Server) Leader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) {
		for i, m := range s.members {
			if !m.Running() {
				continue
			}
			if st, err := s.status(m); err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no etcd leader within %s", StartTimeout)
	return -1
}

func (s *Server) status(m *Member) (*clientv3.StatusResponse, error) {
	cfg := s.ClientConfig(m.ClientURL)
	cfg.DialTimeout = time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return cli.Status(ctx, m.ClientURL)
}

func (s *Server) enableAuth(t testing.TB) {
	t.Helper()
	cli, err := clientv3.New(s.ClientConfig())
	if err != nil {
		t.Fatalf("etcd client to enable auth: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	user, password := s.User()
	steps := []struct {
		what string
		do   func() error
	}{
		{"add user root", func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err }},
		{"grant role root to root", func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err }},
		{"add role " + user, func() error { _, err := cli.RoleAdd(ctx, user); return err }},
		{"let role " + user + " read and write every key", func() error {
			_, err := cli.RoleGrantPermission(ctx, user, "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user " + user, func() error { _, err := cli.UserAdd(ctx, user, password); return err }},
		{"grant role " + user + " to " + user, func() error { _, err := cli.UserGrantRole(ctx, user, user); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("etcd auth: %s: %v", st.what, err)
		}
	}
}

// RPCsStarted reads etcd's count of gRPC calls started (unary requests and
// streams; a KeepAliveOnce is one stream), summed over the running members,
// by method ("LeaseKeepAlive", "Put", ...). etcd's message counters count a
// KeepAliveOnce twice, so they are not used.
func (s *Server) RPCsStarted(t testing.TB) map[string]float64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	if s.tls != nil {
		hc.Transport = &http.Transport{TLSClientConfig: s.tls.ClientConfig()}
	}
	out := map[string]float64{}
	for _, m := range s.members {
		if !m.Running() {
			continue
		}
		resp, err := hc.Get(m.ClientURL + "/metrics")
		if err != nil {
			t.Fatalf("read etcd metrics of %s: %v", m.Name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("read etcd metrics of %s: %v", m.Name, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "grpc_server_started_total{") {
				continue
			}
			_, rest, _ := strings.Cut(line, `grpc_method="`)
			method, _, _ := strings.Cut(rest, `"`)
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				out[method] += v
			}
		}
	}
	return out
}
