package fencedstate

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// WriteRequest asks fenced for a handover: the request's ID in path,
// replaced whole (a rename), so that fenced never reads half of it.
func WriteRequest(path, id string) error {
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(id+"\n"), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write handover request %s: %w", path, err)
	}
	return nil
}

// ReadRequest returns the ID of the handover request in path; "" when
// there is none.
func ReadRequest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read handover request %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// RemoveRequest removes the request in path, if any.
func RemoveRequest(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove handover request %s: %w", path, err)
	}
	return nil
}
