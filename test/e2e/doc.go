// Package e2e proves end to end, in the lab of DESIGN §7 (real
// keepalived 2.2.7 and etcd 3.6 in network namespaces, bin/vipctl and
// bin/fenced), every failure vipkit exists to prevent (F1–F5) and the
// invariants that need the whole system (I5, I6), each against a control
// run of keepalived alone where the failure can be shown without vipkit.
//
// The tests need root (netnstest.Require: skipped without it, failed under
// CI=true), keepalived, and bin/vipctl, bin/fenced and bin/etcd
// (`make build etcd`, or $VIPKIT_BIN_DIR). They share one lab per mode:
// every scenario starts by resetting it to the steady state, and a
// scenario whose run several tests examine runs once. Results (timelines,
// SVGs, every process log) are under results/lab/e2e-*.
package e2e
