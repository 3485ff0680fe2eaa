package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/check"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/pkg/vip"
)

// errFindings makes check exit 1 without an extra error line: the report
// already says what is wrong.
type errFindings struct{ n int }

func (e errFindings) Error() string { return fmt.Sprintf("%d problem(s) found", e.n) }
func (e errFindings) ExitCode() int { return exitFail }

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "preflight this host: sysctls, addresses, route hints, keepalived.conf, binary permissions",
		Description: `Reports everything on this host that would make a VIP misbehave at the next
failover, each finding with its severity and the fix: ARP sysctls and promote_secondaries,
a primary address for each VIP's interface, VIPs held without a route hint (local clients
would hang), orphan hint routes, keepalived.conf (hooks present and calling this binary,
script_user and enable_script_security, fenced's track files with weight 0 and
init_file 1 overwrite, typed virtual_routes without prepend on keepalived < 2.3.2), the
state directory, and whether the binaries are root-owned and not writable by others.

keepalived.conf is read the way keepalived 2.2.7 reads it (proven against keepalived
itself): what keepalived drops with only a log line (a second notify_* line, unknown
keywords and blocks, single-quoted paths, missing or quoted includes, definitions it
does not expand, trackers defined below the instance) is reported with what keepalived
will do. fenced's binary is checked only when an instance is guarded by fenced.

--peer FILE (repeatable) adds the other nodes' keepalived.conf and compares them with
this node's: VRID, advert_int, authentication and VIPs of each instance, one VRID used by
two instances, nopreempt with state MASTER, track weights too small to move the master,
unicast_peer lists that do not name each other, fenced on some nodes only.

--config-only checks only the file against this host: it parses, every interface
exists, every VIP has an address of its own family on its interface and is not one. The
first problem is one line naming file, line and key (exit 2); "FILE: ok" otherwise. It
judges a candidate before it is put in place (Ansible: validate: vipctl check
--config-only --config %s).

Exit status: 0 when there is no error (warnings allowed), 1 when there is one, 2 on
usage or configuration errors. --json prints a machine-readable report for Ansible.`,
		Flags: common(
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "config-only", Usage: "check only the configuration file against this host (interfaces, address families); the first problem is one line, exit 2"},
			&cli.StringFlag{Name: "keepalived-conf", Value: "/etc/keepalived/keepalived.conf", Usage: "keepalived configuration `FILE` to inspect (\"\" to skip)"},
			&cli.StringFlag{Name: "vipctl-path", Usage: "path keepalived's hooks must call", DefaultText: "this executable"},
			&cli.StringFlag{Name: "fenced-path", Usage: "path of fenced", DefaultText: "fenced next to this executable"},
			&cli.StringSliceFlag{Name: "peer", Usage: "another node's keepalived.conf `FILE` to compare with this node's (repeatable)"},
		),
		Action: func(c *cli.Context) error {
			e, err := setup(c)
			if err != nil {
				return err
			}
			defer e.close()
			self, _ := os.Executable()
			vipctlPath, fencedPath := c.String("vipctl-path"), c.String("fenced-path")
			if vipctlPath == "" {
				vipctlPath = self
			}
			if fencedPath == "" {
				fencedPath = filepath.Join(filepath.Dir(vipctlPath), "fenced")
			}
			e.cfg.StateDir = e.stateDir
			// A configured VIP that is an interface's own address is a
			// configuration error (exit 2), as fenced refuses it at load.
			n, err := hostnet.Open()
			if err != nil {
				return err
			}
			err = e.cfg.CheckVIPs(n.CheckFloating)
			if err == nil && c.Bool("config-only") {
				err = checkAgainstHost(e.cfg, n)
			}
			n.Close()
			if err != nil {
				return err
			}
			if c.Bool("config-only") {
				fmt.Fprintf(c.App.Writer, "%s: ok\n", configName(e.cfg))
				return nil
			}
			peers, err := loadPeers(c.StringSlice("peer"))
			if err != nil {
				return err
			}
			if len(peers) > 0 && c.String("keepalived-conf") == "" {
				return usagef("check: --peer needs this node's file (--keepalived-conf)")
			}
			facts, err := check.Gather(c.Context, e.cfg, c.String("keepalived-conf"), vipctlPath, fencedPath)
			if err != nil {
				return err
			}
			facts.Peers = peers
			r := check.Evaluate(e.cfg, facts)
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printReport(c.App.Writer, r)
			}
			if !r.OK {
				return errFindings{r.Errors}
			}
			return nil
		},
	}
}

// checkAgainstHost is check --config-only: a candidate file (Ansible's
// validate:) is judged against this host before it is put in place. Every
// instance's interface exists and has an address of its own of each VIP's
// family; the first problem is a configuration error naming file, line and
// key, the findings report's interface and primary-address errors as one
// line.
func checkAgainstHost(cfg *config.Config, n *hostnet.Net) error {
	if err := cfg.CheckDevs(func(dev string) error {
		_, err := n.Link(dev)
		return err
	}); err != nil {
		return err
	}
	return cfg.CheckVIPs(func(dev string, v vip.VIP) error {
		l, err := n.Link(dev)
		if err != nil {
			return err
		}
		addrs, err := n.Addrs(l, 0)
		if err != nil {
			return err
		}
		_, err = hostnet.PickPrimary(dev, addrs, v)
		return err
	})
}

// loadPeers reads the other nodes' files; one that cannot be read is a
// usage error naming it.
func loadPeers(paths []string) ([]check.Node, error) {
	var nodes []check.Node
	for _, p := range paths {
		c, err := keepalived.LoadConf(p)
		if err != nil {
			return nil, usagef("check: --peer %s: %v", p, err)
		}
		nodes = append(nodes, check.Node{Name: p, Conf: c})
	}
	return nodes, nil
}

func printReport(w io.Writer, r check.Report) {
	for _, f := range r.Findings {
		where := ""
		if f.Where != "" {
			where = " (" + f.Where + ")"
		}
		fmt.Fprintf(w, "%-7s %s%s: %s\n        fix: %s\n", strings.ToUpper(string(f.Severity)), f.Subject, where, f.Message, f.Fix)
	}
	fmt.Fprintf(w, "%d error(s), %d warning(s)\n", r.Errors, r.Warnings)
}
