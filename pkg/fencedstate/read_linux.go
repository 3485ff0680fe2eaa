package fencedstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Read reads the state file in dir.
func Read(dir string) (Snapshot, error) {
	var s Snapshot
	path := filepath.Join(dir, File)
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return s, fmt.Errorf("read fenced state %s: %w", path, err)
	}
	return s, nil
}

// Alive checks that the snapshot's fenced still runs and beats: not
// stopped, its process is a fenced, and its heartbeat (CLOCK_BOOTTIME) is
// at most maxAge older than now. fenced status --alive (keepalived's
// liveness check) and vipctl fleet (whether the record can be trusted)
// judge it the same way.
func Alive(s Snapshot, now, maxAge time.Duration) error {
	if s.State == "stopped" {
		return errors.New("fenced stopped")
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.PID))
	if err != nil || strings.TrimSpace(string(comm)) != "fenced" {
		return fmt.Errorf("process %d is not running", s.PID)
	}
	if s.HeartbeatBoot == 0 {
		return errors.New("no heartbeat yet")
	}
	if age := now - s.HeartbeatBoot; age > maxAge {
		return fmt.Errorf("last heartbeat %s ago (more than %s): a lease loop is stuck", age.Round(time.Millisecond), maxAge)
	}
	return LeasesValid(s, now)
}

// LeasesValid fails once a healthy cluster's recorded local deadline has
// passed: fenced writes the file after every acknowledged renewal, so a
// deadline that passed without a newer one means fenced stopped renewing
// (hung, SIGSTOPped) although its heartbeat may still look fresh. The
// heartbeat's max age is seconds; this catches a stuck fenced before the
// server can expire its lease and free a witnessed instance's owner key.
func LeasesValid(s Snapshot, now time.Duration) error {
	for _, c := range s.Clusters {
		if c.Lease.State == "healthy" && c.Lease.ValidUntil > 0 && now >= c.Lease.ValidUntil {
			return fmt.Errorf("cluster %s: the lease's local validity ended %s ago without a renewal recorded: fenced is not renewing", c.Name, (now - c.Lease.ValidUntil).Round(time.Millisecond))
		}
	}
	return nil
}
