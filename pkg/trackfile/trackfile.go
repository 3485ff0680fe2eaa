// Package trackfile writes keepalived track files.
//
// keepalived (track_file with weight 0) reads a non-zero number as FAULT and
// 0 as OK, and it also reads a missing, empty or unparsable file as 0: OK.
// So a track file is only ever replaced whole (temp file, fsync, rename,
// which keepalived sees as IN_MOVED_TO), never truncated in place and never
// deleted to signal anything.
package trackfile

import "errors"

// Values written to a track file.
const (
	OK    = 0
	Fault = 1
)

// ErrUnsafeDir reports a directory others could write to: whoever can
// replace the file can take keepalived out of FAULT.
var ErrUnsafeDir = errors.New("track file directory is not root-only")
