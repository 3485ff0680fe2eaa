package exporter

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// StatKey identifies the file at path as it is now; a missing file is the
// zero Key.
func StatKey(path string) (Key, error) {
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	if errors.Is(err, os.ErrNotExist) {
		return Key{}, nil
	}
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return Key{Ino: int64(st.Ino), Size: st.Size, MtimeNS: st.Mtim.Nano()}, nil
}
