package proc

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// FindBinary locates a program the build puts in bin/ (etcd, vipctl,
// fenced): $VIPKIT_BIN_DIR/name first, then bin/name in the current
// directory or the nearest parent that has one (tests run in their
// package directory).
func FindBinary(name string) (string, error) {
	if dir := os.Getenv("VIPKIT_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if isExec(p) {
			return p, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find binary %s: %w", name, err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "bin", name)
		if isExec(p) {
			return p, nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return "", fmt.Errorf("find binary %s: not in $VIPKIT_BIN_DIR nor in bin/ above %s (run `make build etcd`): %w", name, wd, os.ErrNotExist)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Etcd describes one etcd server of the lab: a single-member cluster, or
// one member of a cluster (Cluster).
type Etcd struct {
	Name   string // member name and process name, "etcd" when empty
	NS     string // full namespace name
	Dir    string // data dir and log live here
	Addr4  netip.Addr
	Addr6  netip.Addr // optional second listener
	Binary string     // FindBinary("etcd") when empty
	Clock  func() time.Duration
	// Cluster is --initial-cluster (name=peerURL,...) when the server is
	// one member of several; empty for a single-member cluster.
	Cluster string
	// Rejoin keeps the data dir of an earlier run of this member: etcd
	// rejoins its cluster with it and ignores the --initial-* flags.
	Rejoin bool
	// ExtraArgs are appended (e.g. tuning flags of a scenario).
	ExtraArgs []string
}

// EtcdClientPort and EtcdPeerPort are etcd's standard ports.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// ClientURLs are the endpoints clients use (IPv4 first).
func (e Etcd) ClientURLs() []string {
	urls := []string{fmt.Sprintf("http://%s", netip.AddrPortFrom(e.Addr4, EtcdClientPort))}
	if e.Addr6.IsValid() {
		urls = append(urls, fmt.Sprintf("http://%s", netip.AddrPortFrom(e.Addr6, EtcdClientPort)))
	}
	return urls
}

// PeerURL is the member's peer endpoint (IPv4).
func (e Etcd) PeerURL() string {
	return fmt.Sprintf("http://%s", netip.AddrPortFrom(e.Addr4, EtcdPeerPort))
}

// StartEtcd starts a fresh single-member cluster (new data dir), or with
// Cluster a member of a new cluster, or with Rejoin a member again on its
// data dir. The caller waits for readiness (the lab polls /health from the
// namespace).
func StartEtcd(e Etcd) (*Proc, error) {
	if e.Name == "" {
		e.Name = "etcd"
	}
	bin := e.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary("etcd"); err != nil {
			return nil, fmt.Errorf("start %s: %w", e.Name, err)
		}
	}
	if !e.Addr4.IsValid() {
		return nil, errors.New("start etcd: no IPv4 listen address")
	}
	data := filepath.Join(e.Dir, "data")
	if !e.Rejoin {
		if err := os.RemoveAll(data); err != nil {
			return nil, fmt.Errorf("start %s: clear data dir %s: %w", e.Name, data, err)
		}
	}
	if err := os.MkdirAll(e.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: create dir %s: %w", e.Name, e.Dir, err)
	}
	peer := e.PeerURL()
	cluster := e.Cluster
	if cluster == "" {
		cluster = e.Name + "=" + peer
	}
	clients := e.ClientURLs()
	listen := clients[0]
	for _, u := range clients[1:] {
		listen += "," + u
	}
	args := []string{
		"--name", e.Name,
		"--data-dir", data,
		"--listen-client-urls", listen,
		"--advertise-client-urls", clients[0],
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", cluster,
		"--initial-cluster-state", "new",
		"--log-level", "warn",
	}
	args = append(args, e.ExtraArgs...)
	return Start(Spec{
		Name:    e.Name,
		NS:      e.NS,
		Path:    bin,
		Args:    args,
		Dir:     e.Dir,
		LogPath: filepath.Join(e.Dir, "etcd.log"),
		Clock:   e.Clock,
	})
}
