package fencedstate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
