// Package wedge stands in for a hook wedged while it holds vipctl's lock:
// a real process takes the real lock and is stopped.
package wedge

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/pkg/runstate"
)

// Lock has flock(1) take vipctl's lock in stateDir, waits until it holds
// it, and stops it (SIGSTOP). The test's cleanup lets it go.
func Lock(t testing.TB, stateDir string) {
	t.Helper()
	locker := exec.Command("flock", filepath.Join(stateDir, runstate.LockFile), "sleep", "600")
	if err := locker.Start(); err != nil {
		t.Fatalf("flock(1) (util-linux): %v", err)
	}
	t.Cleanup(func() {
		_ = locker.Process.Signal(syscall.SIGCONT)
		_ = locker.Process.Kill()
		_ = locker.Wait()
	})
	held := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		tx, err := runstate.New(stateDir).Lock(ctx)
		if err == nil {
			tx.Unlock()
		}
		return err != nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for !held() {
		if time.Now().After(deadline) {
			t.Fatal("flock(1) did not take vipctl's lock within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := locker.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}
