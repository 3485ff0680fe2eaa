package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/hostnet"
)

// runFlags configure one cluster and one instance without a file.
func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "endpoints", Usage: "etcd client `URL`s (flags-only mode: no configuration file is read)"},
		&cli.StringFlag{Name: "node", Usage: "node `NAME` (member key <prefix>/members/<node>)", DefaultText: "the host name"},
		&cli.StringFlag{Name: "prefix", Usage: "etcd key `PREFIX`", DefaultText: config.DefaultPrefix},
		&cli.DurationFlag{Name: "ttl", Usage: "lease TTL (whole seconds, at least 2s)", DefaultText: config.DefaultTTL.String()},
		&cli.DurationFlag{Name: "margin", Usage: "fence this long before the earliest possible server expiry", DefaultText: config.DefaultMargin.String()},
		&cli.DurationFlag{Name: "hold-down", Usage: "renewals must succeed this long before unfencing", DefaultText: config.DefaultHoldDown.String()},
		&cli.DurationFlag{Name: "renew-every", Usage: "renewal period", DefaultText: "ttl/3"},
		&cli.StringFlag{Name: "instance", Value: "VI_1", Usage: "keepalived instance `NAME` (for logs and the default track file)"},
		&cli.StringFlag{Name: "track-file", Usage: "keepalived track `FILE` fenced writes (1 = FAULT)", DefaultText: "<state-dir>/<instance>.fence"},
		&cli.StringFlag{Name: "dev", Usage: "`INTERFACE` of the guarded VIPs"},
		&cli.StringSliceFlag{Name: "vip", Usage: "guarded `VIP` (repeat for several)"},
		&cli.BoolFlag{Name: "own", Usage: "the VIPs are vipctl-owned (not in keepalived's virtual_ipaddress)"},
		&cli.StringFlag{Name: "cacert", Usage: "CA certificate `FILE` for etcd TLS"},
		&cli.StringFlag{Name: "cert", Usage: "client certificate `FILE`"},
		&cli.StringFlag{Name: "key", Usage: "client key `FILE` (mode 0600)"},
		&cli.StringFlag{Name: "user", Usage: "etcd `USER`"},
		&cli.StringFlag{Name: "password-file", Usage: "`FILE` holding the etcd password (mode 0600)"},
		&cli.StringFlag{Name: "on-stop", Usage: "fault or keep", DefaultText: "fault"},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on this loopback `HOST:PORT`"},
		&cli.StringFlag{Name: "vrrp-pid-file", Usage: "keepalived's VRRP process PID `FILE`", DefaultText: "/run/vrrp.pid"},
	}
}

// flagKeys maps configuration keys to the flags that set them, so that an
// error about a flags-only configuration names the flag.
var flagKeys = []struct{ key, flag string }{
	{"cluster[0].endpoints", "--endpoints"}, {"cluster[0].prefix", "--prefix"},
	{"cluster[0].ttl", "--ttl"}, {"cluster[0].margin", "--margin"}, {"cluster[0].hold_down", "--hold-down"},
	{"cluster[0].renew_every", "--renew-every"}, {"cluster[0].request_timeout", "--renew-every"},
	{"cluster[0].cacert", "--cacert"}, {"cluster[0].cert", "--cert"}, {"cluster[0].key", "--key"},
	{"cluster[0].user", "--user"}, {"cluster[0].password_file", "--password-file"},
	{"instance[0].name", "--instance"}, {"instance[0].dev", "--dev"}, {"instance[0].vips", "--vip"},
	{"instance[0].track_file", "--track-file"}, {"fenced.on_stop", "--on-stop"}, {"fenced.metrics", "--metrics"},
	{"fenced.vrrp_pid_file", "--vrrp-pid-file"}, {"state_dir", "--state-dir"}, {"node", "--node"},
}

var lineRef = regexp.MustCompile(`^flags:\d+: `)

// flagsConfig builds the configuration of flags-only mode by writing the
// equivalent file and parsing it: one set of rules and defaults for both.
func flagsConfig(c *cli.Context) (*config.Config, error) {
	if c.String("dev") == "" || len(c.StringSlice("vip")) == 0 {
		return nil, usagef("flags-only mode (--endpoints) needs --dev and at least one --vip")
	}
	var b strings.Builder
	q := strconv.Quote
	str := func(key, flag string) {
		if c.IsSet(flag) {
			fmt.Fprintf(&b, "%s = %s\n", key, q(c.String(flag)))
		}
	}
	dur := func(key, flag string) {
		if c.IsSet(flag) {
			fmt.Fprintf(&b, "%s = %s\n", key, q(c.Duration(flag).String()))
		}
	}
	list := func(key string, vs []string) {
		qs := make([]string, len(vs))
		for i, v := range vs {
			qs[i] = q(v)
		}
		fmt.Fprintf(&b, "%s = [%s]\n", key, strings.Join(qs, ", "))
	}
	str("node", "node")
	str("state_dir", "state-dir")
	b.WriteString("[fenced]\n")
	str("on_stop", "on-stop")
	str("metrics", "metrics")
	str("vrrp_pid_file", "vrrp-pid-file")
	b.WriteString("[[cluster]]\nname = \"default\"\n")
	list("endpoints", c.StringSlice("endpoints"))
	str("prefix", "prefix")
	dur("ttl", "ttl")
	dur("margin", "margin")
	dur("hold_down", "hold-down")
	dur("renew_every", "renew-every")
	str("cacert", "cacert")
	str("cert", "cert")
	str("key", "key")
	str("user", "user")
	str("password_file", "password-file")
	b.WriteString("[[instance]]\ncluster = \"default\"\n")
	str("name", "instance")
	if !c.IsSet("instance") {
		b.WriteString("name = \"VI_1\"\n")
	}
	str("dev", "dev")
	list("vips", c.StringSlice("vip"))
	fmt.Fprintf(&b, "own = %v\n", c.Bool("own"))
	str("track_file", "track-file")
	cfg, err := config.Parse("flags", []byte(b.String()))
	if err != nil {
		msg := lineRef.ReplaceAllString(err.Error(), "")
		for _, k := range flagKeys {
			if strings.HasPrefix(msg, k.key+":") {
				msg = k.flag + strings.TrimPrefix(msg, k.key)
				break
			}
		}
		return nil, fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+config.ErrInvalid.Error()), config.ErrInvalid)
	}
	cfg.Path = ""
	return cfg, nil
}

// loadRunConfig reads the configuration for fenced: flags-only when
// --endpoints is given, else the file, which must not be readable by group
// or others.
func loadRunConfig(c *cli.Context) (*config.Config, error) {
	cfg, err := readRunConfig(c)
	if err != nil {
		return nil, err
	}
	// A VIP that is one of its interface's own addresses would have the
	// fence take the host off the network: refuse it at load.
	n, err := hostnet.Open()
	if err != nil {
		return nil, err
	}
	defer n.Close()
	if err := cfg.CheckVIPs(n.CheckFloating); err != nil {
		return nil, err
	}
	return cfg, nil
}

func readRunConfig(c *cli.Context) (*config.Config, error) {
	if c.IsSet("endpoints") {
		cfg, err := flagsConfig(c)
		if err != nil {
			return nil, wrapInvalid(err)
		}
		return cfg, nil
	}
	path := c.String("config")
	if !c.IsSet("config") {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, usagef("no configuration: %s does not exist and --endpoints is not given", path)
		}
	}
	if err := config.CheckPrivate(path); err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if s := c.String("state-dir"); s != "" {
		cfg.StateDir = s
	}
	return cfg, nil
}

func wrapInvalid(err error) error {
	if errors.Is(err, errUsage) || errors.Is(err, config.ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: %w", config.ErrInvalid, err)
}
