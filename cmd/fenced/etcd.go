package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/lease"
)

// clientConfig turns a cluster's settings into an etcd client
// configuration, reading TLS files and the password file.
func clientConfig(cl config.Cluster) (clientv3.Config, error) {
	cc := clientv3.Config{
		Endpoints:   cl.Endpoints,
		DialTimeout: cl.DialTimeout,
		// gRPC keepalive notices a dead connection in about one renewal
		// interval instead of TCP's minutes; fencing never depends on it.
		DialKeepAliveTime:    cl.RenewEvery,
		DialKeepAliveTimeout: cl.RequestTimeout,
		Logger:               zap.NewNop(),
		Username:             cl.User,
	}
	if cl.TLS.Enabled() {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cl.TLS.ServerName}
		if cl.TLS.CACert != "" {
			pem, err := os.ReadFile(cl.TLS.CACert)
			if err != nil {
				return cc, fmt.Errorf("cluster %s: read cacert: %w", cl.Name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return cc, fmt.Errorf("cluster %s: cacert %s holds no PEM certificate: %w", cl.Name, cl.TLS.CACert, config.ErrInvalid)
			}
			tc.RootCAs = pool
		}
		if cl.TLS.Cert != "" {
			if err := config.CheckPrivate(cl.TLS.Key); err != nil {
				return cc, fmt.Errorf("cluster %s: key: %w", cl.Name, err)
			}
			cert, err := tls.LoadX509KeyPair(cl.TLS.Cert, cl.TLS.Key)
			if err != nil {
				return cc, fmt.Errorf("cluster %s: load client certificate %s: %w", cl.Name, cl.TLS.Cert, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = tc
	}
	if cl.PasswordFile != "" {
		if err := config.CheckPrivate(cl.PasswordFile); err != nil {
			return cc, fmt.Errorf("cluster %s: password_file: %w", cl.Name, err)
		}
		b, err := os.ReadFile(cl.PasswordFile)
		if err != nil {
			return cc, fmt.Errorf("cluster %s: read password_file: %w", cl.Name, err)
		}
		cc.Password = strings.TrimRight(string(b), "\r\n")
	}
	return cc, nil
}

// dialEtcd is the supervisor's Dialer. The client connects in the
// background: an etcd that is down at start is not an error, only a
// holder that stays fenced.
func dialEtcd(_ context.Context, cl config.Cluster) (lease.Client, func() error, error) {
	cc, err := clientConfig(cl)
	if err != nil {
		return nil, nil, err
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: etcd client for %s: %w", cl.Name, strings.Join(cl.Endpoints, ","), err)
	}
	return c, c.Close, nil
}
