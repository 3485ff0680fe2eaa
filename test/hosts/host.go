// Package hosts boots lab nodes as Debian 12 systems: systemd as PID 1 in
// its own PID, mount, UTS and IPC namespaces, inside the node's network
// namespace, on an overlay of one cached base root (mkroot.sh, built by
// `make hosts-root`). vipkit is installed into them from its .deb; fenced
// and keepalived run under their units. See docs/lab.md.
//
// Everything a host mounts lives in its private mount namespace, so it
// goes away with the host: SIGKILL of its PID 1 from outside ends the PID
// namespace, and with it every process and mount of the host.
package hosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultRoot is where `make hosts-root` keeps the base root: outside the
// work tree, so every clone and every run shares it.
const DefaultRoot = "/var/cache/vipkit/hosts-root"

// RootDir is the base root the hosts boot from: $VIPKIT_HOSTS_ROOT or
// DefaultRoot.
func RootDir() string {
	if d := os.Getenv("VIPKIT_HOSTS_ROOT"); d != "" {
		return d
	}
	return DefaultRoot
}

// DefaultAnsibleLayer is where `make hosts-root` keeps the Ansible layer
// (mklayer.sh): python3 and python3-apt over the base root.
const DefaultAnsibleLayer = "/var/cache/vipkit/hosts-ansible-layer"

// AnsibleLayerDir is $VIPKIT_HOSTS_ANSIBLE_LAYER or DefaultAnsibleLayer.
func AnsibleLayerDir() string {
	if d := os.Getenv("VIPKIT_HOSTS_ANSIBLE_LAYER"); d != "" {
		return d
	}
	return DefaultAnsibleLayer
}

// Spec describes one host to boot.
type Spec struct {
	Name  string // host name (also the UTS name)
	NetNS string // the named network namespace (/run/netns/NAME) it lives in
	Base  string // the base root (RootDir())
	// Layers are read-only directories laid over Base, the first on top
	// (AnsibleLayerDir: python3 for Ansible's modules).
	Layers []string
	Dir    string // its own directory: overlay upper and work dirs, journal copy
	// Binds are host paths mounted at the same path inside the host (the
	// lab's per-node directory: notify FIFO, results).
	Binds []string
	// RunVipkit, when set, is mounted as the host's /run/vipkit, so the
	// lab observes the track files from outside.
	RunVipkit string
}

// Host is a booted host.
type Host struct {
	Name string
	PID1 int // the host's systemd, as seen from outside
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Boot starts the host and waits until systemd has finished booting.
func Boot(ctx context.Context, s Spec) (*Host, error) {
	if _, err := os.Stat(filepath.Join(s.Base, ".vipkit-root")); err != nil {
		return nil, fmt.Errorf("boot %s: no base root at %s (make hosts-root): %w", s.Name, s.Base, err)
	}
	merged := filepath.Join(s.Dir, "root")
	upper, work := filepath.Join(s.Dir, "upper"), filepath.Join(s.Dir, "work")
	for _, d := range []string{merged, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("boot %s: %w", s.Name, err)
		}
	}
	q := strconv.Quote
	var sh strings.Builder
	sh.WriteString("set -e\nmount --make-rprivate /\n")
	lower := strings.Join(append(append([]string{}, s.Layers...), s.Base), ":")
	fmt.Fprintf(&sh, "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s\n", lower, upper, work, q(merged))
	// systemd leaves an already mounted /run alone: mounting it here lets
	// the lab put its directory at /run/vipkit before boot.
	fmt.Fprintf(&sh, "mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs %s/run\n", q(merged))
	if s.RunVipkit != "" {
		fmt.Fprintf(&sh, "mkdir -p %s/run/vipkit\nmount --bind %s %s/run/vipkit\n", q(merged), q(s.RunVipkit), q(merged))
	}
	for _, b := range s.Binds {
		fmt.Fprintf(&sh, "mkdir -p %s%s\nmount --bind %s %s%s\n", q(merged), q(b), q(b), q(merged), q(b))
	}
	fmt.Fprintf(&sh, "echo %s > %s/etc/hostname\n", q(s.Name), q(merged))
	fmt.Fprintf(&sh, "hostname %s\n", q(s.Name))
	fmt.Fprintf(&sh, "mount -t proc proc %s/proc\n", q(merged))
	fmt.Fprintf(&sh, "exec ip netns exec %s chroot %s /lib/systemd/systemd --system\n", q(s.NetNS), q(merged))
	// --kill-child: if this test process dies, unshare dies with it
	// (Pdeathsig) and takes the host's PID 1 along.
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "sh", "-c", sh.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	log, err := os.Create(filepath.Join(s.Dir, "console.log"))
	if err != nil {
		return nil, fmt.Errorf("boot %s: %w", s.Name, err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("boot %s: start unshare: %w", s.Name, err)
	}
	h := &Host{Name: s.Name, dir: s.Dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(h.done) }()
	if err := h.waitBooted(ctx); err != nil {
		h.Close()
		out, _ := os.ReadFile(filepath.Join(s.Dir, "console.log"))
		return nil, fmt.Errorf("boot %s: %w; console: %s", s.Name, err, lastLines(out, 5))
	}
	return h, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// waitBooted finds PID 1 (unshare's child once it runs systemd) and waits
// for `systemctl is-system-running` to leave "starting".
func (h *Host) waitBooted(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if h.PID1 == 0 {
			h.PID1 = systemdChild(h.cmd.Process.Pid)
		}
		if h.PID1 != 0 {
			out, _ := h.Output(ctx, "systemctl", "is-system-running")
			switch strings.TrimSpace(out) {
			case "running", "degraded":
				return nil
			}
		}
		select {
		case <-h.done:
			return errors.New("the host's systemd exited")
		case <-ctx.Done():
			return fmt.Errorf("not booted: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// systemdChild is the child of pid whose executable is systemd, or 0.
func systemdChild(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(comm)) == "systemd" {
			return c
		}
	}
	return 0
}

// Command runs name inside the host: its namespaces, root and working
// directory (nsenter -a -r -w), as an administrator's shell would.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"-t", strconv.Itoa(h.PID1), "-a", "-r", "-w", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", a...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "SYSTEMD_PAGER=", "TERM=dumb", "DEBIAN_FRONTEND=noninteractive"}
	return cmd
}

// Output runs a command in the host and returns its combined output; the
// error names the command and carries the output.
func (h *Host) Output(ctx context.Context, name string, args ...string) (string, error) {
	var b bytes.Buffer
	cmd := h.Command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return b.String(), fmt.Errorf("%s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(b.String()))
	}
	return b.String(), nil
}

// Path is where a path inside the host is seen from outside.
func (h *Host) Path(p string) string { return fmt.Sprintf("/proc/%d/root%s", h.PID1, p) }

// WriteFile writes a file inside the host.
func (h *Host) WriteFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(h.Path(p)), 0o755); err != nil {
		return fmt.Errorf("%s: write %s: %w", h.Name, p, err)
	}
	if err := os.WriteFile(h.Path(p), data, mode); err != nil {
		return fmt.Errorf("%s: write %s: %w", h.Name, p, err)
	}
	return os.Chmod(h.Path(p), mode)
}

// Close saves the host's journal next to its files, then ends the host:
// SIGKILL of its PID 1 ends the PID namespace and every mount in it. The
// overlay's upper directory is removed. Safe to call twice.
func (h *Host) Close() error {
	select {
	case <-h.done:
	default:
		if h.PID1 != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if out, err := h.Output(ctx, "journalctl", "--no-pager", "-o", "short-precise"); err == nil {
				_ = os.WriteFile(filepath.Join(h.dir, "journal.txt"), []byte(out), 0o644)
			}
			cancel()
			_ = syscall.Kill(h.PID1, syscall.SIGKILL)
		}
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("close %s: unshare (pid %d) did not exit", h.Name, h.cmd.Process.Pid)
		}
	}
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.RemoveAll(filepath.Join(h.dir, d)); err != nil {
			return fmt.Errorf("close %s: %w", h.Name, err)
		}
	}
	return nil
}

// OuterPID maps a PID inside the host to the same process's PID outside
// (NSpid in /proc/PID/status: outer first, inner last).
func (h *Host) OuterPID(inner int) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	want := strconv.Itoa(inner)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(strings.TrimPrefix(line, "NSpid:"))
			if strings.HasPrefix(line, "NSpid:") && len(f) == 2 && f[1] == want && h.inside(pid) {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("%s: no process with pid %d inside", h.Name, inner)
}

// inside: pid is in this host's PID namespace.
func (h *Host) inside(pid int) bool {
	a, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	b, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", h.PID1))
	return err1 == nil && err2 == nil && a == b
}
