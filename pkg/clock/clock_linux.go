// Package clock reads CLOCK_BOOTTIME, the one clock vipkit measures
// deadlines, heartbeats and hook order on: it keeps counting while the host
// is suspended, where Go's monotonic clock (CLOCK_MONOTONIC) stops, and wall
// clock steps do not move it.
package clock

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Boottime is the time since boot, suspend included. Linux has had
// CLOCK_BOOTTIME since 2.6.39: a kernel without it cannot run vipkit, and
// a failing read is a bug, not a condition to handle.
func Boottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(fmt.Sprintf("read CLOCK_BOOTTIME: %v", err))
	}
	return time.Duration(ts.Nano())
}
