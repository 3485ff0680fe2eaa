package topo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PrefixBase starts every lab namespace name, so leftovers are easy to find
// (`ip netns list | grep ^vkl`).
const PrefixBase = "vkl"

// NewPrefix returns a per-run prefix such as "vkl4242s81234x1a2b": the
// owner's PID and its start time in clock ticks since boot let
// CleanupStale tell a crashed run from a live one exactly (no clock
// arithmetic: a run that had lived an hour was once taken for a crashed
// one when the wall clock and the boot clock had drifted apart), the random
// part keeps two runs of one process apart.
func NewPrefix() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	if ticks, err := startTicks(os.Getpid()); err == nil {
		return fmt.Sprintf("%s%ds%dx%s", PrefixBase, os.Getpid(), ticks, hex.EncodeToString(b))
	}
	return fmt.Sprintf("%s%dx%s", PrefixBase, os.Getpid(), hex.EncodeToString(b))
}

// ownerRE matches a lab namespace name: the owner's PID and, since the
// prefix carries it, its start ticks.
var ownerRE = regexp.MustCompile(`^` + PrefixBase + `(\d+)(?:s(\d+))?x[0-9a-f]+-`)

// CleanupStale deletes the lab namespaces whose name starts with prefix
// and whose owning process is gone (a crashed or killed run), after
// killing whatever still runs inside them. Namespaces of live runs are
// left alone, so it is safe while other labs run. It returns the names it
// deleted.
func CleanupStale(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = PrefixBase
	}
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup stale lab namespaces: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		m := ownerRE.FindStringSubmatch(name)
		if m == nil {
			continue // not a lab name: never ours to delete
		}
		pid, _ := strconv.Atoi(m[1])
		path := filepath.Join("/run/netns", name)
		if m[2] != "" {
			ticks, _ := strconv.ParseInt(m[2], 10, 64)
			if t, err := startTicks(pid); err == nil && t == ticks {
				continue // the very process that made it still runs
			}
		} else if ownerAlive(pid, path) {
			continue
		}
		ns := &NS{Name: name}
		if err := ns.delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, name)
	}
	return deleted, errors.Join(errs...)
}

// ownerAlive reports whether pid is a running process that started before
// the namespace was created (a reused PID started later).
func ownerAlive(pid int, nsPath string) bool {
	if pid == os.Getpid() {
		return true
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	started, err := processStart(pid)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(nsPath)
	if err != nil {
		return true // cannot tell: keep it
	}
	return !started.After(fi.ModTime())
}

// processStart returns when pid started, as a wall time (for names made
// before the prefix carried the start ticks).
func processStart(pid int) (time.Time, error) {
	ticks, err := startTicks(pid)
	if err != nil {
		return time.Time{}, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, err
	}
	const hz = 100 // USER_HZ on Linux
	since := time.Duration(ts.Nano()) - time.Duration(ticks)*time.Second/hz
	return time.Now().Add(-since), nil
}

// startTicks is pid's start time in clock ticks since boot, from
// /proc/PID/stat field 22: with the PID, it names one process for good.
func startTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64) // field 22 overall
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return ticks, nil
}

// pidsInNetns lists processes whose network namespace is the one bound at
// nsPath.
func pidsInNetns(nsPath string) ([]int, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return nil, fmt.Errorf("stat netns %s: %w", nsPath, err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsPids SIGKILLs every process in the namespace and waits briefly
// for them to disappear, so the namespace is not kept alive by them.
func killNetnsPids(nsPath string) error {
	if _, err := os.Lstat(nsPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for range 50 {
		pids, err := pidsInNetns(nsPath)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pids, _ := pidsInNetns(nsPath)
	if len(pids) > 0 {
		// Zombies of a parent that has not reaped them show up here too;
		// they hold no namespace resources.
		live := pids[:0]
		for _, pid := range pids {
			if !isZombie(pid) {
				live = append(live, pid)
			}
		}
		if len(live) > 0 {
			return fmt.Errorf("kill processes in netns %s: still running: %v", nsPath, live)
		}
	}
	return nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}
