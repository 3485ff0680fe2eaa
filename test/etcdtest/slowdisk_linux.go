package etcdtest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// WithSlowDisk puts every member's data directory on a loopback FUSE file
// system of this process whose fsync and fdatasync take as long as
// Member.SetFsyncDelay says (none at first): a disk that stalls, as the
// one behind etcd issue 15247, without a device to slow (this machine has
// no device mapper). It implies WithFsync: without syncs there is nothing
// to slow. Writes and reads pass through at the cost of FUSE.
func WithSlowDisk() Option { return func(o *options) { o.slowDisk, o.fsync = true, true } }

// slowDisk is one member's mounted data directory.
type slowDisk struct {
	server *fuse.Server
	delay  atomic.Int64 // nanoseconds added to every sync
}

// slowNode is a loopback node whose sync waits first. The bridge asks a
// node's Fsync before its file's, so the loopback files stay as they are.
type slowNode struct {
	*fs.LoopbackNode
	disk *slowDisk
}

var (
	_ fs.NodeFsyncer     = (*slowNode)(nil)
	_ fs.NodeWrapChilder = (*slowNode)(nil)
)

// WrapChild makes every node below the root a slowNode too.
func (n *slowNode) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if l, ok := ops.(*fs.LoopbackNode); ok {
		return &slowNode{LoopbackNode: l, disk: n.disk}
	}
	return ops
}

func (n *slowNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if d := time.Duration(n.disk.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if s, ok := f.(fs.FileFsyncer); ok {
		return s.Fsync(ctx, flags)
	}
	return syscall.ENOTSUP
}

// mountSlowDisk mounts backing at mountpoint.
func mountSlowDisk(backing, mountpoint string) (*slowDisk, error) {
	for _, d := range []string{backing, mountpoint} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("mount slow disk: %w", err)
		}
	}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("mount slow disk: %w", err)
	}
	l, ok := root.(*fs.LoopbackNode)
	if !ok {
		return nil, fmt.Errorf("mount slow disk: loopback root is a %T", root)
	}
	d := &slowDisk{}
	srv, err := fs.Mount(mountpoint, &slowNode{LoopbackNode: l, disk: d}, &fs.Options{MountOptions: fuse.MountOptions{
		FsName: "vipkit-slowdisk", Name: "slowdisk", DirectMount: true,
	}})
	if err != nil {
		return nil, fmt.Errorf("mount slow disk at %s (needs /dev/fuse and root): %w", mountpoint, err)
	}
	d.server = srv
	return d, nil
}

func (d *slowDisk) unmount() error {
	if err := d.server.Unmount(); err != nil {
		// A member killed a moment ago may still hold files open.
		time.Sleep(200 * time.Millisecond)
		return d.server.Unmount()
	}
	return nil
}

// SetFsyncDelay makes every fsync and fdatasync of the member's data
// directory take d longer, from now on (0 restores it). The cluster must
// have been started WithSlowDisk.
func (m *Member) SetFsyncDelay(t testing.TB, d time.Duration) {
	t.Helper()
	if m.disk == nil {
		t.Fatalf("member %s: SetFsyncDelay needs a cluster started WithSlowDisk", m.Name)
	}
	m.disk.delay.Store(int64(d))
}
