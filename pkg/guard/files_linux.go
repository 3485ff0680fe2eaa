package guard

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WatchFiles signals whenever one of paths is written, replaced or removed,
// by anyone, until ctx ends. keepalived rewrites fenced's track files when
// it starts (init_file 1 overwrite); watching them lets fenced put its
// value back at once instead of at the next periodic check.
func WatchFiles(ctx context.Context, paths []string) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch track files: inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	names := map[string]bool{}
	dirs := map[string]bool{}
	for _, p := range paths {
		names[filepath.Base(p)] = true
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		mask := uint32(unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_CREATE)
		if _, err := unix.InotifyAddWatch(fd, d, mask); err != nil {
			f.Close()
			return nil, fmt.Errorf("watch track files in %s: %w", d, err)
		}
	}
	out := make(chan struct{}, 1)
	// The reader stops when ctx ends: closing the file ends its Read.
	stop := context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer close(out)
		defer stop()
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			if matches(buf[:n], names) {
				select {
				case out <- struct{}{}:
				default: // one pending signal covers any number of events
				}
			}
		}
	}()
	return out, nil
}

// matches reports whether any inotify event in b names one of names.
func matches(b []byte, names map[string]bool) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[off]))
		end := off + unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return false
		}
		raw := b[off+unix.SizeofInotifyEvent : end]
		for i, c := range raw {
			if c == 0 {
				raw = raw[:i]
				break
			}
		}
		if names[string(raw)] || ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true
		}
		off = end
	}
	return false
}
