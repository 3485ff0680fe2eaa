package trackfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Write replaces path with value atomically and durably. The directory must
// exist; keepalived drops a track file whose directory is missing at start.
func Write(path string, value int) error { return write(path, value, true) }

// Publish replaces path with value atomically, without waiting for the
// disk: keepalived sees it at once (the rename), which is all a fence needs.
// A fence must not wait on a disk: the VIPs are already gone and, for those
// keepalived owns, keepalived re-elects itself and adds them back within a
// few adverts unless the track file says FAULT first (measured in the lab:
// one fsync of 420 ms on a busy disk let it). A crash may lose the write;
// keepalived's init_file 1 overwrite, which fenced check requires, starts
// in FAULT whatever the file said.
func Publish(path string, value int) error { return write(path, value, false) }

func write(path string, value int, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write track file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	err = tmp.Chmod(0o644)
	if err == nil {
		_, err = tmp.WriteString(strconv.Itoa(value) + "\n")
	}
	// keepalived sees the value at the rename: the disk comes after it.
	// A planned handover's priority-0 advert waits for that rename, and
	// the VIP is already gone (measured in the lab, whose state directory
	// is on a disk: a few ms of outage). A crash between the rename and
	// the sync can leave the file empty, which reads as 0: the node is no
	// longer in maintenance after the reboot, never the other way round.
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write %d to track file %s: %w", value, path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Read returns the value keepalived would see: a missing, empty or
// unparsable file reads as 0, exactly as keepalived's strtol does.
func Read(path string) (value int, exists bool, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read track file %s: %w", path, err)
	}
	return parse(b), true, nil
}

// parse mimics strtol(buf, NULL, 0) on keepalived's first 127 bytes.
func parse(b []byte) int {
	if len(b) > 127 {
		b = b[:127]
	}
	s := strings.TrimLeft(string(bytes.TrimRight(b, "\x00")), " \t\n\r\v\f")
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	v, err := strconv.ParseInt(s[:end], 10, 32)
	if err != nil {
		return 0
	}
	return int(v)
}

// CheckDir verifies that dir is a directory owned by root that neither group
// nor others can write.
func CheckDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check track file directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("check track file directory %s: not a directory", dir)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid != 0 || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("check track file directory %s (mode %04o): %w", dir, st.Mode().Perm(), ErrUnsafeDir)
	}
	return nil
}
