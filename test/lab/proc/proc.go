// Package proc runs the lab's long-lived processes (keepalived, etcd,
// fenced, anything else) inside lab namespaces, captures their output per
// process, and signals them as faults.
//
// Every process runs through `ip netns exec`, which execs the program in
// place: the PID we hold is the program's, and it leads its own process
// group, so a signal reaches it and every child it forked without
// setpgid (keepalived's VRRP child). PR_SET_PDEATHSIG kills it if the lab
// process dies without tearing down.
package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec describes one process.
type Spec struct {
	Name    string   // for logs and errors, e.g. keepalived@node-a
	NS      string   // full namespace name; empty runs in the caller's namespace
	Path    string   // program
	Args    []string // arguments
	Dir     string   // working directory
	Env     []string // extra environment (appended to the caller's)
	LogPath string   // output file (stdout and stderr), each line prefixed with the lab time
	// OnLine, when set, receives every output line in order, with the lab
	// time it was read at.
	OnLine func(at time.Duration, line string)
	// Clock returns the lab time; a start-relative clock when nil.
	Clock func() time.Duration
}

// Proc is a started process.
type Proc struct {
	Spec
	PID int

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	logDone chan struct{}
	// startTicks is the leader's start time (clock ticks since boot); group
	// members that started earlier are not ours.
	startTicks int64
}

// Start starts the process and its output pump.
func Start(s Spec) (*Proc, error) {
	if s.Clock == nil {
		t0 := time.Now()
		s.Clock = func() time.Duration { return time.Since(t0) }
	}
	argv := append([]string{s.Path}, s.Args...)
	if s.NS != "" {
		argv = append([]string{"ip", "netns", "exec", s.NS}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	var logf io.WriteCloser = nopCloser{io.Discard}
	if s.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(s.LogPath), 0o755); err != nil {
			return nil, fmt.Errorf("start %s: create log dir: %w", s.Name, err)
		}
		f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start %s: open log %s: %w", s.Name, s.LogPath, err)
		}
		logf = f
	}
	// A pipe handed over as *os.File: Wait does not wait for our reader,
	// and children that keep the write end (keepalived's VRRP child) do not
	// block the parent's Wait.
	r, w, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: pipe: %w", s.Name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	fmt.Fprintf(logf, "[%s] lab: start %s\n", stamp(s.Clock()), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", s.Name, s.Path, err)
	}
	w.Close()
	p := &Proc{Spec: s, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{}), logDone: make(chan struct{})}
	p.startTicks, _ = statFields(p.PID)
	go p.pump(r, logf)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func stamp(d time.Duration) string { return fmt.Sprintf("%+11.6f", d.Seconds()) }

func (p *Proc) pump(r *os.File, logf io.WriteCloser) {
	defer close(p.logDone)
	defer logf.Close()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	bw := bufio.NewWriter(logf)
	for sc.Scan() {
		at := p.Clock()
		line := sc.Text()
		fmt.Fprintf(bw, "[%s] %s\n", stamp(at), line)
		if p.OnLine != nil {
			p.OnLine(at, line)
		}
		// Flush per line: the log is what one reads after a hang.
		bw.Flush()
	}
	<-p.done
	fmt.Fprintf(bw, "[%s] lab: %s exited: %v\n", stamp(p.Clock()), p.Name, p.exitText())
	bw.Flush()
}

func (p *Proc) exitText() string {
	if p.waitErr == nil {
		return "status 0"
	}
	return p.waitErr.Error()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is the exit error once Done is closed (nil for status 0).
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
		return nil
	}
}

// Signal sends sig to the process's whole group: the program and the
// children it did not move to their own group.
// Once the leader has exited the group is not signalled any more (its
// number may be reused); Stop reaps what is left.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return fmt.Errorf("signal %s to %s (pid %d): already exited", sig, p.Name, p.PID)
	}
	err := syscall.Kill(-p.PID, sig)
	if err != nil {
		return fmt.Errorf("signal %s to %s (pid %d): %w", sig, p.Name, p.PID, err)
	}
	return nil
}

// Pause freezes the process group (SIGSTOP): it keeps its sockets and
// addresses but does nothing.
func (p *Proc) Pause() error { return p.Signal(syscall.SIGSTOP) }

// Resume thaws a paused process group (SIGCONT).
func (p *Proc) Resume() error { return p.Signal(syscall.SIGCONT) }

// Kill sends SIGKILL to the group: no clean-up code runs.
func (p *Proc) Kill() error { return p.Signal(syscall.SIGKILL) }

// Terminate sends SIGTERM (and SIGCONT, so a paused process can act on it).
func (p *Proc) Terminate() error {
	err := p.Signal(syscall.SIGTERM)
	_ = syscall.Kill(-p.PID, syscall.SIGCONT)
	return err
}

// Wait waits up to d for the process to exit.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("wait for %s (pid %d) to exit: still running after %s", p.Name, p.PID, d)
	}
}

// Stop terminates the process gracefully, then kills its group after
// grace, and waits for the output pump so the log is complete.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Running() {
		_ = p.Terminate()
		if err := p.Wait(grace); err != nil {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			if err := p.Wait(5 * time.Second); err != nil {
				return err
			}
		}
	}
	// Children of the group (keepalived's VRRP child after a parent
	// SIGKILL) may outlive the leader. Signal them one by one: once the
	// group is empty its number may belong to someone else.
	for range 50 {
		members := groupMembers(p.PID, p.startTicks)
		if len(members) == 0 {
			break
		}
		for _, pid := range members {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.logDone:
	case <-time.After(2 * time.Second):
	}
	return nil
}

// statFields returns a process's start time and process group from
// /proc/PID/stat; zero for zombies and vanished processes.
func statFields(pid int) (startTicks int64, pgrp int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, 0
	}
	pgrp, _ = strconv.Atoi(f[2])
	startTicks, _ = strconv.ParseInt(f[19], 10, 64)
	return startTicks, pgrp
}

// groupMembers lists live processes in process group pgid that started no
// earlier than the group leader did.
func groupMembers(pgid int, since int64) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		start, pg := statFields(pid)
		if pg == pgid && start >= since && since > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}
