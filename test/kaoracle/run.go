// Package kaoracle runs the real keepalived on a configuration and reads
// back what it loaded: the oracle vipkit's reader is tested against.
//
// keepalived runs with --dump-conf in a network namespace of its own (a
// veth stand-in for every interface the file names) and chrooted into a
// throw-away root: the host's /usr/{bin,sbin,lib,...} read-only, /proc, /sys and /dev, and
// everything else (the configuration, stub scripts that succeed, the
// directories track files need) written by the caller. Scripts a file
// names therefore run as harmless stubs, and FIFOs, pid and track files
// land in the throw-away root, never on the host.
package kaoracle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vipkit/vipkit/test/netnstest"
)

// Binary is the keepalived under test: $VIPKIT_KEEPALIVED, else the
// distribution's /usr/sbin/keepalived. The same tier runs on another
// version by pointing the variable at it.
func Binary() string {
	if p := os.Getenv("VIPKIT_KEEPALIVED"); p != "" {
		return p
	}
	return "/usr/sbin/keepalived"
}

// VersionLine is the first line of Binary()'s `keepalived --version`
// ("Keepalived v2.3.3 (03/30,2025)"), "" when it cannot be run: a reader
// compared with the oracle reads the file for that release.
var VersionLine = sync.OnceValue(func() string {
	out, _ := exec.Command(Binary(), "--version").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
})

// Require stops a test that cannot run keepalived here (skip, or fail
// under CI=true).
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs keepalived (not with -short)")
	}
	netnstest.Require(t)
	if _, err := os.Stat(Binary()); err != nil {
		netnstest.Missing(t, "keepalived %s: %v (make deps installs it)", Binary(), err)
	}
	for _, tool := range []string{"chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			netnstest.Missing(t, "needs %s: %v", tool, err)
		}
	}
}

// Input is a configuration and the host it runs on. Paths are absolute
// paths inside the throw-away root.
type Input struct {
	Main  string
	Files map[string][]byte
	// Stubs are scripts to create (each succeeds, "#!/bin/sh\nexit 0"),
	// Dirs directories (a track file's), Interfaces the links to create.
	Stubs, Dirs, Interfaces []string
	// ConfigID is keepalived's -i (which @ID lines apply).
	ConfigID string
	// Timeout bounds the wait for the dump (15s when zero).
	Timeout time.Duration
}

// stub is every script the configuration names: it succeeds.
const stub = "#!/bin/sh\nexit 0\n"

// sandbox mounts what keepalived needs into the root and execs it there.
// It runs inside `ip netns exec`, whose private mount namespace keeps the
// mounts away from the host and drops them when keepalived exits.
const sandbox = `set -e
R=$1; KA=$2; shift 2
for d in bin sbin lib lib64 libexec share; do
	[ -d "/usr/$d" ] || continue
	mkdir -p "$R/usr/$d"; mount --bind "/usr/$d" "$R/usr/$d"; mount -o remount,bind,ro "$R/usr/$d"
done
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
mount --bind "$KA" "$R/keepalived"
exec chroot "$R" /keepalived "$@"
`

// Run starts keepalived on in, waits for its configuration dump, stops it
// and returns what it loaded. keepalived's own output is in Loaded.Log.
func Run(t testing.TB, in Input) (*Loaded, error) {
	t.Helper()
	ns := netnstest.New(t)
	for i, name := range in.Interfaces {
		l := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: fmt.Sprintf("kop%d", i)}
		if err := ns.Handle().LinkAdd(l); err != nil {
			return nil, fmt.Errorf("add stand-in link %s: %w", name, err)
		}
		for _, n := range []string{name, l.PeerName} {
			if link, err := ns.Handle().LinkByName(n); err == nil {
				_ = ns.Handle().LinkSetUp(link)
			}
		}
	}
	root := t.TempDir()
	if err := layout(root, in); err != nil {
		return nil, err
	}
	id := in.ConfigID
	if id == "" {
		id = "vipkit-oracle"
	}
	timeout := in.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, "sh", "-c", sandbox, "sandbox", root, Binary(),
		"-n", "-l", "-D", "-d", "-P", "-G", "-i", id, "-f", in.Main, "-p", "/run/keepalived.pid", "-r", "/run/vrrp.pid")
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	out := &watched{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start keepalived: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	select {
	case <-out.done:
		// Signals are handled by keepalived's event loop, after the
		// start-up code that printed the dump: nothing of it is lost.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case werr = <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			werr = <-exited
		}
	case werr = <-exited:
	}
	l := ParseDump(out.String())
	if ctx.Err() != nil {
		return l, fmt.Errorf("keepalived on %s: %w: %w", in.Main, ErrNoDump, ctx.Err())
	}
	var exit *exec.ExitError
	if werr != nil && !errors.As(werr, &exit) {
		return l, fmt.Errorf("keepalived on %s: %w", in.Main, werr)
	}
	return l, nil
}

// ErrNoDump: keepalived printed no configuration dump within the timeout.
var ErrNoDump = errors.New("no configuration dump")

// maxOutput caps what is kept of keepalived's output: a file it loops on
// prints millions of lines.
const maxOutput = 8 << 20

// noConfig is what keepalived -P says when a file has no VRRP part: it
// then idles without a dump.
const noConfig = "keepalived has no configuration to run"

// watched collects output and closes done once the dump's last section
// (the interfaces) has started, everything vipkit reads came before it,
// or once keepalived said there is nothing to dump.
type watched struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	seen bool
}

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() < maxOutput {
		w.buf.Write(p)
	}
	if !w.seen && (bytes.Contains(w.buf.Bytes(), []byte("------< Interfaces >------")) || bytes.Contains(w.buf.Bytes(), []byte(noConfig))) {
		w.seen = true
		close(w.done)
	}
	return len(p), nil
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// layout builds the throw-away root.
func layout(root string, in Input) error {
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"usr", "proc", "sys", "dev", "etc", "run", "tmp", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64", "var/run": "../run"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			return err
		}
	}
	for _, f := range []string{"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/hosts"} {
		if b, err := os.ReadFile(f); err == nil {
			if err := os.WriteFile(filepath.Join(root, f), b, 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, "keepalived"), nil, 0o755); err != nil {
		return err
	}
	put := func(p string, data []byte, mode os.FileMode) error {
		dst, ok := inside(root, p)
		if !ok {
			return nil // the host's mounts: nothing is created there
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if mode.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		return os.WriteFile(dst, data, mode)
	}
	for _, d := range in.Dirs {
		if err := put(d, nil, os.ModeDir|0o755); err != nil {
			return err
		}
	}
	for _, s := range in.Stubs {
		if err := put(s, []byte(stub), 0o755); err != nil {
			return err
		}
	}
	for p, data := range in.Files {
		if err := put(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// inside maps an absolute path to the root; false for paths the root
// takes from the host (and anything that is not a clean absolute path).
func inside(root, p string) (string, bool) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return "", false
	}
	for _, host := range []string{"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/share", "/proc", "/sys", "/dev", "/bin", "/sbin", "/lib", "/lib64", "/keepalived", "/var/run"} {
		if p == host || strings.HasPrefix(p, host+"/") {
			return "", false
		}
	}
	if p == "/" || p == "/etc/passwd" || p == "/etc/group" {
		return "", false
	}
	return filepath.Join(root, p), true
}
