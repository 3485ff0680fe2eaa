package watch

import (
	"context"
	"fmt"
	"net"
	"sync"
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
//
// It watches through every endpoint at once, each stream started again
// whenever it ends, and records a revision from the first stream that
// delivers it: a member that is frozen, killed or without a leader (the
// faults of a 3-member cluster) delays or ends its own stream only.
func (o *Observer) WatchEtcd(host string, endpoints []string, prefix string, dial func(ctx context.Context, addr string) (net.Conn, error)) error {
	config := func(eps []string) clientv3.Config {
		return clientv3.Config{
			Endpoints:   eps,
			DialTimeout: 5 * time.Second,
			DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
			Logger:      zap.NewNop(),
		}
	}
	cli, err := clientv3.New(config(endpoints))
	if err != nil {
		return fmt.Errorf("watch etcd prefix %q: %w", prefix, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(o.ctx, 5*time.Second)
	defer cancel()
	// Record what exists now, then watch from the next revision.
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("watch etcd prefix %q: read existing keys: %w", prefix, err)
	}
	for _, kv := range resp.Kvs {
		o.TL.Add(observe.Event{Kind: observe.KindLease, Host: host, Source: "etcd", Text: "exists", Key: string(kv.Key), Lease: kv.Lease})
	}
	w := &etcdWatch{o: o, host: host, prefix: prefix, seen: resp.Header.Revision}
	for _, ep := range endpoints {
		c, err := clientv3.New(config([]string{ep}))
		if err != nil {
			return fmt.Errorf("watch etcd prefix %q at %s: %w", prefix, ep, err)
		}
		o.onClose(func() { c.Close() })
		o.goRun(func() { w.run(c, ep) })
	}
	return nil
}

// etcdWatch is one prefix watched through several endpoints.
type etcdWatch struct {
	o            *Observer
	host, prefix string

	mu   sync.Mutex
	seen int64 // the highest revision recorded
}

// run watches through one endpoint until the observer closes.
func (w *etcdWatch) run(c *clientv3.Client, ep string) {
	w.mu.Lock()
	next := w.seen + 1
	w.mu.Unlock()
	failing := false
	for w.o.ctx.Err() == nil {
		wch := c.Watch(clientv3.WithRequireLeader(w.o.ctx), w.prefix, clientv3.WithPrefix(), clientv3.WithRev(next))
		for wr := range wch {
			at := w.o.TL.Now()
			if err := wr.Err(); err != nil {
				if w.o.ctx.Err() == nil && !failing {
					w.o.note(w.host, "etcd watch through %s: %v", ep, err)
				}
				failing = true
				continue
			}
			failing = false
			w.record(at, wr.Events)
			for _, ev := range wr.Events {
				next = max(next, ev.Kv.ModRevision+1)
			}
		}
		select {
		case <-w.o.ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// record adds the events of one watch response that no other stream has
// delivered yet.
func (w *etcdWatch) record(at time.Duration, evs []*clientv3.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	base := w.seen
	for _, ev := range evs {
		if ev.Kv.ModRevision <= base {
			continue
		}
		w.seen = max(w.seen, ev.Kv.ModRevision)
		e := observe.Event{At: at, Kind: observe.KindLease, Host: w.host, Source: "etcd", Key: string(ev.Kv.Key), Lease: ev.Kv.Lease}
		switch ev.Type {
		case clientv3.EventTypePut:
			e.Text = "put"
		case clientv3.EventTypeDelete:
			e.Text = "delete"
		}
		w.o.TL.Add(e)
	}
}
