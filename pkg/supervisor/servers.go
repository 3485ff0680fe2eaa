package supervisor

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/etcdversion"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/lease"
)

// serverRecheck is how often a strict cluster that refused its members'
// releases asks again (an upgrade of the etcd cluster ends the refusal).
const serverRecheck = 30 * time.Second

// statuser is the part of the etcd client that reports a member's release.
type statuser interface {
	Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
}

// checkServers asks every member for its release and records what it says
// (fenced.json, metrics). A release with a known lease bug is logged as an
// error naming the bugs and the fixed release: with it, an acknowledged
// renewal does not prove the lease alive, whatever fenced computes. It
// reports whether the cluster may be held: always, unless the cluster is
// strict (strict_etcd_version) and a member runs such a release.
func (s *Supervisor) checkServers(ctx context.Context, c *cluster, cli lease.Client) bool {
	sc, ok := cli.(statuser)
	if !ok {
		return true
	}
	// Asked at once: a member that does not answer costs one request
	// timeout, not one per member.
	out := make([]fencedstate.Server, len(c.cfg.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range c.cfg.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			defer cancel()
			out[i] = fencedstate.Server{Endpoint: ep}
			st, err := sc.Status(rctx, ep)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Version = st.Version
		}()
	}
	wg.Wait()
	bad := false
	for i, srv := range out {
		ep := srv.Endpoint
		if srv.Error != "" {
			c.log.Warn("etcd member "+ep+" did not report its release: "+srv.Error, "endpoint", ep)
			continue
		}
		v, err := etcdversion.Parse(srv.Version)
		if err != nil {
			c.log.Warn(err.Error(), "endpoint", ep)
		} else if problem, up, ok := etcdversion.Advice(v); ok {
			for _, b := range etcdversion.Check(v) {
				out[i].LeaseBugs = append(out[i].LeaseBugs, b.Issue)
			}
			bad = true
			c.log.Error(fmt.Sprintf("etcd member %s: %s: upgrade it to %s or later", ep, problem, up), "endpoint", ep, "version", srv.Version, "strict", c.cfg.StrictEtcdVersion)
		} else {
			c.log.Info("etcd member", "endpoint", ep, "version", srv.Version)
		}
	}
	c.servers.Store(&out)
	s.changed()
	return !bad || !c.cfg.StrictEtcdVersion
}

// waitShowingProgress waits d, or until ctx ends (false), recording the
// cluster's progress meanwhile: waiting on purpose is not a hung holder,
// and must not get fenced restarted by its watchdog.
func (s *Supervisor) waitShowingProgress(ctx context.Context, c *cluster, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.lastProgress.Store(int64(s.now()))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(s.progressEvery(), time.Until(deadline))):
		}
	}
	return true
}
