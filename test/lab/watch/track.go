package watch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// WatchTrackFiles records every write of a keepalived track file in dir
// (names ending in one of suffixes, e.g. ".fence", ".maint") as an
// observe.KindTrack event with the file's content. It sees atomic
// replacements (temp file + rename, as fenced and vipctl write) and
// in-place writes (keepalived's init_file overwrite) alike, through
// inotify; each write is stamped when it is read, typically within
// microseconds. Files present when the watch starts are recorded once.
func (o *Observer) WatchTrackFiles(host, dir string, suffixes ...string) error {
	match := func(name string) bool {
		for _, s := range suffixes {
			if strings.HasSuffix(name, s) {
				return true
			}
		}
		return false
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watch track files in %s: inotify: %w", dir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return fmt.Errorf("watch track files in %s: %w", dir, err)
	}
	// Non-blocking, so the runtime poller owns it and Close wakes the reader.
	f := os.NewFile(uintptr(fd), "inotify:"+dir)
	o.onClose(func() { f.Close() })
	record := func(name, source string) {
		at := o.TL.Now()
		b, err := os.ReadFile(filepath.Join(dir, name))
		text := strings.TrimSpace(string(b))
		if err != nil {
			// Replaced again before we read it: the next event has it.
			if errors.Is(err, os.ErrNotExist) {
				return
			}
			text = "unreadable: " + err.Error()
		}
		o.TL.Add(observe.Event{At: at, Kind: observe.KindTrack, Host: host, Source: source, Key: name, Text: text})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Close()
		return fmt.Errorf("watch track files in %s: %w", dir, err)
	}
	for _, e := range entries {
		if match(e.Name()) {
			record(e.Name(), "initial")
		}
	}
	o.goRun(func() {
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := f.Read(buf)
			if err != nil {
				if o.ctx.Err() == nil {
					o.note(host, "track files: %v", err)
				}
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				off += unix.SizeofInotifyEvent + int(ev.Len)
				name := string(bytes.TrimRight(nameBytes, "\x00"))
				if match(name) {
					record(name, "inotify")
				}
			}
		}
	})
	return nil
}
