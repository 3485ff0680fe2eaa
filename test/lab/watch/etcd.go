package watch

import (
	"context"
	"fmt"
	"net"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vipkit/vipkit/test/lab/observe"
)

// WatchEtcd records every change under a key prefix of the lab's etcd as
// observe.KindLease events: "put" with the key's lease (a holder took or renewed
// its claim) and "delete" (the key went: its lease expired or was
// revoked, or it was deleted). dial opens connections from a namespace
// that is not being cut (the etcd host's own), so the observer keeps
// seeing etcd while nodes lose it.
func (o *Observer) WatchEtcd(host string, endpoints []string, prefix string, dial func(ctx context.Context, addr string) (net.Conn, error)) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("watch etcd prefix %q: %w", prefix, err)
	}
	ctx, cancel := context.WithTimeout(o.ctx, 5*time.Second)
	defer cancel()
	// Record what exists now, then watch from the next revision.
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		cli.Close()
		return fmt.Errorf("watch etcd prefix %q: read existing keys: %w", prefix, err)
	}
	for _, kv := range resp.Kvs {
		o.TL.Add(observe.Event{Kind: observe.KindLease, Host: host, Source: "etcd", Text: "exists", Key: string(kv.Key), Lease: kv.Lease})
	}
	o.onClose(func() { cli.Close() })
	wch := cli.Watch(clientv3.WithRequireLeader(o.ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	o.goRun(func() {
		for wr := range wch {
			at := o.TL.Now()
			if err := wr.Err(); err != nil {
				if o.ctx.Err() == nil {
					o.note(host, "etcd watch: %v", err)
				}
				continue
			}
			for _, ev := range wr.Events {
				e := observe.Event{At: at, Kind: observe.KindLease, Host: host, Source: "etcd", Key: string(ev.Kv.Key), Lease: ev.Kv.Lease}
				switch ev.Type {
				case clientv3.EventTypePut:
					e.Text = "put"
				case clientv3.EventTypeDelete:
					e.Text = "delete"
				}
				o.TL.Add(e)
			}
		}
	})
	return nil
}
