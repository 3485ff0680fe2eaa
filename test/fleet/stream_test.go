package fleet

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// stream renews over one LeaseKeepAlive stream per holder, kept open,
// instead of a new stream per renewal (what clientv3's KeepAliveOnce does):
// the alternative the fleet bench measures. One request is outstanding at
// a time (the holder waits for each answer); a request that times out
// drops the stream, so a late answer is never taken for the next one's.
type stream struct {
	mu     sync.Mutex
	s      pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

func (st *stream) renew(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.s == nil {
		sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		s, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return nil, err
		}
		st.s, st.cancel = s, cancel
	}
	if err := st.s.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
		st.drop()
		return nil, err
	}
	type answer struct {
		resp *pb.LeaseKeepAliveResponse
		err  error
	}
	ch := make(chan answer, 1)
	s := st.s
	go func() {
		resp, err := s.Recv()
		ch <- answer{resp, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			st.drop()
			return nil, a.err
		}
		return &clientv3.LeaseKeepAliveResponse{ResponseHeader: a.resp.Header, ID: clientv3.LeaseID(a.resp.ID), TTL: a.resp.TTL}, nil
	case <-ctx.Done():
		st.drop()
		return nil, ctx.Err()
	}
}

func (st *stream) drop() {
	st.cancel()
	st.s, st.cancel = nil, nil
}
