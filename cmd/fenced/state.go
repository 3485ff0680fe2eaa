package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/vipkit/vipkit/pkg/supervisor"
)

// stateWriter keeps fenced.json current.
type stateWriter struct {
	dir     string
	pid     int
	started time.Time
	log     *slog.Logger
	beat    time.Time
	beatB   time.Duration
}

// write replaces the state file; heartbeat, when set, is a new heartbeat.
func (w *stateWriter) write(s supervisor.Snapshot, heartbeat time.Time) {
	if !heartbeat.IsZero() {
		w.beat, w.beatB = heartbeat, boottime()
	}
	s.PID, s.Started, s.Heartbeat, s.HeartbeatBoot = w.pid, w.started, w.beat, w.beatB
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		w.log.Error("encode state", "error", err)
		return
	}
	path := filepath.Join(w.dir, supervisor.StateFile)
	tmp := path + ".tmp"
	err = os.WriteFile(tmp, append(b, '\n'), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		w.log.Error("write state file", "path", path, "error", err)
	}
}
