// Package fleet measures what one etcd cluster does with a fleet of fenced
// lease holders (DESIGN §6: thousands of leases, zero false fences): N
// simulated hosts, each the real lease holder with its own client
// connection and member key, as fenced runs it, against a real 3-member
// etcd cluster, stepped up in N, with and without faults.
//
// make test runs a CI-sized step (500 holders, 60 s) on its own, after the
// rest of the suite, that must see no false fence; make bench-fleet runs the
// full report (docs/performance.md):
//
//	VIPKIT_FLEET=1 go test ./test/fleet -run TestIntegrationFleet -v -timeout 4h \
//	  -fleet.steps 100,1000,3000,10000 -fleet.ttls 5s,10s -fleet.window 60s \
//	  -fleet.faults none,kill-leader,stop-leader,slow-disk,starve-client
package fleet
