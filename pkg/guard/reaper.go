package guard

import (
	"context"
	"log/slog"
	"time"
)

// Procs finds and waits for keepalived's VRRP process.
type Procs interface {
	// Find returns the PID of the live keepalived process pidFile names.
	Find(pidFile string) (pid int, ok bool)
	// Wait returns when pid has exited or ctx ends.
	Wait(ctx context.Context, pid int) error
}

// Keepalived watches keepalived's VRRP process, the one that holds the
// VIPs. keepalived removes its VIPs when it stops, and a respawned VRRP
// process removes them at start; but when all of keepalived is killed
// (kill -9, OOM) the VIPs stay assigned with nobody running VRRP for them
// (keepalived issue #2361) while the peer takes over: two owners. The
// reaper releases the guarded VIPs as soon as the process is gone.
type Keepalived struct {
	PIDFile string
	// Every is how often to look for keepalived while it is not running.
	Every time.Duration
	Procs Procs
	// Release removes the guarded VIPs and their hints.
	Release func(ctx context.Context) error
	// OnStart is told about every new VRRP process: keepalived may have
	// rewritten the track files (init_file ... overwrite) at its start.
	OnStart func(pid int)
	// OnExit is told when a VRRP process it saw is gone, after Release.
	OnExit func(pid int)
	Log    *slog.Logger
}

// Run watches until ctx ends. It waits on the process (a pidfd), so it
// reacts at once without polling while keepalived runs.
func (k *Keepalived) Run(ctx context.Context) error {
	known, first := 0, true
	for ctx.Err() == nil {
		pid, ok := k.Procs.Find(k.PIDFile)
		switch {
		case ok && pid != known:
			k.log().Info("keepalived VRRP process found", "pid", pid, "pid_file", k.PIDFile)
			known = pid
			if k.OnStart != nil {
				k.OnStart(pid)
			}
		case !ok && (known != 0 || first):
			if known != 0 {
				k.log().Warn("keepalived VRRP process is gone; releasing guarded VIPs", "pid", known)
			}
			if err := k.Release(ctx); err != nil {
				k.log().Error("release VIPs after keepalived exit", "error", err)
			}
			if known != 0 && k.OnExit != nil {
				k.OnExit(known)
			}
			known = 0
		}
		first = false
		if ok {
			if err := k.Procs.Wait(ctx, pid); err != nil && ctx.Err() == nil {
				k.log().Debug("wait for keepalived", "pid", pid, "error", err)
				sleep(ctx, k.Every) // do not spin on a broken pidfd
			}
			continue
		}
		sleep(ctx, k.Every)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (k *Keepalived) log() *slog.Logger {
	if k.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Log
}
