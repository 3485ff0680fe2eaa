package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/clock"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/lease"
)

// A planned restart hands the leases over (docs/fencing.md, "Restart
// without failover"). The record moves through two names in the state
// directory, so that each step uses it at most once:
//
//	handoff.json     written by the stopping fenced (exit 0)
//	handoff.pending  renamed by ExecStopPost (fenced fail-closed) when it
//	                 accepted the record and left those instances unfenced
//	(removed)        by the next fenced run, which adopts the leases
//
// A record fail-closed did not accept is removed and everything fenced; a
// second ExecStopPost (the successor failed) finds none and fences.
const (
	handoffFile = "handoff.json"
	pendingFile = "handoff.pending"
	// handoffMinLeft is the validity a lease must have left for
	// fail-closed to leave its instances to the successor.
	handoffMinLeft = 500 * time.Millisecond
	// aliveMinLeft: `fenced status --alive` (keepalived's fenced_alive
	// script) says alive during a handoff only while this much validity is
	// left. With the script's interval at most this long, keepalived is in
	// FAULT by the deadline (plus the script's run time, well inside the
	// margin) if no successor takes over.
	aliveMinLeft = time.Second
)

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// restartPending says whether systemd is stopping this service to start
// it again (systemctl restart, try-restart, a package upgrade's
// postinst): the unit's job is then a restart job. Anything unclear
// (not under systemd, no answer within a second) is a stop: fail closed.
func restartPending(ctx context.Context, log *slog.Logger) bool {
	unit := ownUnit()
	if unit == "" || os.Getenv("INVOCATION_ID") == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "list-jobs", "--no-legend", "--plain", unit).Output()
	if err != nil {
		log.Warn("cannot ask systemd whether this stop is a restart; fencing", "unit", unit, "error", err)
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		// JOB UNIT TYPE STATE
		if f := strings.Fields(line); len(f) >= 3 && f[1] == unit && f[2] == "restart" {
			return true
		}
	}
	return false
}

// ownUnit is the systemd service this process runs in, from its cgroup.
func ownUnit() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if u := filepath.Base(line); strings.HasSuffix(u, ".service") {
			return u
		}
	}
	return ""
}

// writeHandoff records the handed leases for ExecStopPost and the next
// fenced (temp file + rename: never half a record).
func writeHandoff(dir, node string, leases []lease.HandedLease) error {
	b, err := lease.MarshalHandoff(lease.Handoff{BootID: bootID(), Node: node, PID: os.Getpid(), WrittenAt: clock.Boottime(), Leases: leases})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, handoffFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write handoff record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, handoffFile)); err != nil {
		return fmt.Errorf("write handoff record: %w", err)
	}
	return nil
}

// recordHandoff writes the leases a planned restart handed over for
// ExecStopPost and the next fenced; without a record ExecStopPost fences.
func recordHandoff(cfg *config.Config, leases []lease.HandedLease, log *slog.Logger) {
	if len(leases) == 0 {
		return
	}
	if err := writeHandoff(cfg.StateDir, cfg.Node, leases); err != nil {
		// ExecStopPost finds no record and fences.
		log.Error("planned restart: cannot record the handoff; ExecStopPost will fence: "+err.Error(), "error", err)
		return
	}
	for _, l := range leases {
		log.Info("planned restart: lease handed to the next fenced", "cluster", l.Cluster, "lease_id", fmt.Sprintf("%x", int64(l.LeaseID)), "valid_for", (l.Deadline - clock.Boottime()).String())
	}
}

// acceptHandoff is fail-closed's side: after a clean exit (systemd's
// SERVICE_RESULT=success, exit status 0) a valid handoff.json is renamed
// to handoff.pending and the clusters it covers are returned: their
// instances are left to the successor. Any other case removes the record.
func acceptHandoff(dir string, log *slog.Logger) lease.Handoff {
	// A pending record left by a successor that died during its adoption
	// is void: everything is fenced now.
	_ = os.Remove(filepath.Join(dir, pendingFile))
	path := filepath.Join(dir, handoffFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return lease.Handoff{}
	}
	defer os.Remove(path)
	if err != nil {
		log.Error("handoff record unreadable; fencing everything", "error", err)
		return lease.Handoff{}
	}
	if os.Getenv("SERVICE_RESULT") != "success" || os.Getenv("EXIT_CODE") != "exited" || os.Getenv("EXIT_STATUS") != "0" {
		log.Warn("handoff record ignored: fenced did not exit cleanly", "service_result", os.Getenv("SERVICE_RESULT"), "exit_code", os.Getenv("EXIT_CODE"), "exit_status", os.Getenv("EXIT_STATUS"))
		return lease.Handoff{}
	}
	h, err := lease.ParseHandoff(b, bootID(), clock.Boottime(), handoffMinLeft)
	if err != nil {
		log.Warn("handoff record refused; fencing everything", "error", err)
		return lease.Handoff{}
	}
	if err := os.Rename(path, filepath.Join(dir, pendingFile)); err != nil {
		log.Error("cannot pass the handoff record on; fencing everything", "error", err)
		return lease.Handoff{}
	}
	return h
}

// takeHandoff is the successor's side: it reads handoff.pending and
// returns the function that removes it, to be called once this process
// has written its first heartbeat (until then the record is what keeps
// `status --alive` true). Leases past their deadline are dropped (their
// clusters start fenced).
func takeHandoff(dir string, log *slog.Logger) (lease.Handoff, func()) {
	path := filepath.Join(dir, pendingFile)
	done := func() { _ = os.Remove(path) }
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return lease.Handoff{}, func() {}
	}
	h, err := lease.ParseHandoff(b, bootID(), clock.Boottime(), 0)
	if err != nil {
		log.Warn("handoff record refused; starting fenced", "error", err)
		done()
		return lease.Handoff{}, func() {}
	}
	return h, done
}

// handoffCovers says whether a handoff in progress (either name) keeps
// the instances safe for at least aliveMinLeft more: `status --alive`
// reports alive across the restart gap, and not after.
func handoffCovers(dir string) bool {
	for _, name := range []string{handoffFile, pendingFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if _, err := lease.ParseHandoff(b, bootID(), clock.Boottime(), aliveMinLeft); err == nil {
			return true
		}
	}
	return false
}
