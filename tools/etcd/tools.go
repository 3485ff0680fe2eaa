//go:build tools

// Package tools pins the etcd server the tests and the lab run. It is a
// separate module so that vipkit's own go.mod stays free of etcd's server
// dependencies.
package tools

import _ "go.etcd.io/etcd/server/v3"
