package config

import (
	"fmt"
	"os"
)

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w: %w", path, err, ErrInvalid)
	}
	return Parse(path, data)
}

// CheckPrivate refuses a file that group or others can read or write: the
// file names credentials, and fenced acts on what it says.
func CheckPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o; it must not be readable by group or others (chmod 600): %w", path, mode, ErrInvalid)
	}
	return nil
}
