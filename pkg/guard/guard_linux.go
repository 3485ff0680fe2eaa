package guard

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// SubscribeAddrs streams address additions and deletions in ns (the
// calling process's namespace when ns is nil) until ctx ends. A netlink
// error (buffer overflow) is reported to onError; the periodic reconcile
// covers what was lost.
func SubscribeAddrs(ctx context.Context, ns *netns.NsHandle, onError func(error)) (<-chan AddrEvent, error) {
	updates := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	opts := netlink.AddrSubscribeOptions{
		Namespace:         ns,
		ErrorCallback:     onError,
		ReceiveBufferSize: 1 << 20,
	}
	if err := netlink.AddrSubscribeWithOptions(updates, done, opts); err != nil {
		return nil, fmt.Errorf("subscribe to address events: %w", err)
	}
	out := make(chan AddrEvent, 256)
	go func() {
		defer close(out)
		defer close(done) // stops the netlink subscription
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if !ok {
					continue
				}
				select {
				case out <- AddrEvent{Addr: a.Unmap(), Deleted: !u.NewAddr, At: time.Now()}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
