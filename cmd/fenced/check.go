package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipkit/vipkit/pkg/check"
	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/etcdversion"
	"github.com/vipkit/vipkit/pkg/fencedstate"
	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/pkg/trackfile"
)

// finding is one result of fenced check.
type finding struct {
	Severity string `json:"severity"`
	Subject  string `json:"subject"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check the configuration, etcd, the track file directories and keepalived.conf",
		Description: `Checks that the configuration is valid and private, that every etcd cluster answers
(with its TLS and credentials), that every track file directory exists, is root-only and
writable, and that keepalived.conf tracks each track file the way fencing needs
(weight 0, init_file 1 overwrite, referenced by the instance) and tracks fenced's liveness.

Exit status: 0 no error, 1 at least one error, 2 usage or configuration error.`,
		// The same flags as run, so that a unit's arguments can be checked.
		Flags: append([]cli.Flag{configFlag, stateFlag, levelFlag, logFile,
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "keepalived-conf", Value: "/etc/keepalived/keepalived.conf", Usage: "keepalived configuration `FILE` (\"\" to skip)"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "per-endpoint timeout"},
		}, runFlags()...),
		Action: func(c *cli.Context) error {
			cfg, err := loadRunConfig(c)
			if err != nil {
				return err
			}
			var out []finding
			add := func(sev, subject, fix, format string, args ...any) {
				out = append(out, finding{sev, subject, fmt.Sprintf(format, args...), fix})
			}
			for _, cl := range cfg.Clusters {
				checkCluster(c.Context, cl, c.Duration("timeout"), add)
			}
			checkFenceCost(cfg, add)
			dirs := map[string]bool{}
			for _, in := range cfg.Instances {
				if in.TrackFile != "" {
					dirs[filepath.Dir(in.TrackFile)] = true
				}
			}
			for d := range dirs {
				checkDir(d, add)
			}
			if kc := c.String("keepalived-conf"); kc != "" {
				checkKeepalived(c.Context, cfg, kc, add)
			}
			errs := 0
			for _, f := range out {
				if f.Severity == "error" {
					errs++
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				_ = enc.Encode(map[string]any{"ok": errs == 0, "errors": errs, "findings": append([]finding{}, out...)})
			} else {
				for _, f := range out {
					fmt.Fprintf(c.App.Writer, "%-7s %s: %s\n", strings.ToUpper(f.Severity), f.Subject, f.Message)
					if f.Fix != "" {
						fmt.Fprintf(c.App.Writer, "        fix: %s\n", f.Fix)
					}
				}
				fmt.Fprintf(c.App.Writer, "%d error(s)\n", errs)
			}
			if errs > 0 {
				return silentError{exitFail}
			}
			return nil
		},
	}
}

type addFinding func(sev, subject, fix, format string, args ...any)

func checkCluster(ctx context.Context, cl config.Cluster, timeout time.Duration, add addFinding) {
	subject := "cluster " + cl.Name
	cc, err := clientConfig(cl)
	if err != nil {
		add("error", subject, "fix the TLS or password file settings", "%v", err)
		return
	}
	cc.DialTimeout = timeout
	cli, err := clientv3.New(cc)
	if err != nil {
		add("error", subject, "", "create etcd client: %v", err)
		return
	}
	defer cli.Close()
	for _, ep := range cl.Endpoints {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		st, err := cli.Status(rctx, ep)
		cancel()
		if err != nil {
			add("error", subject, "check that the endpoint is reachable from this host and its TLS settings", "endpoint %s does not answer: %v", ep, err)
			continue
		}
		add("info", subject, "", "endpoint %s: etcd %s, leader %x", ep, st.Version, st.Leader)
		checkServerVersion(subject, ep, st.Version, add)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Get(rctx, cl.Prefix+"/members/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		add("error", subject, "check user, password_file and the user's permissions on "+cl.Prefix, "read %s/members/: %v", cl.Prefix, err)
	}
}

// checkServerVersion reports a member whose release has a bug that voids
// the rule fenced relies on (an acknowledged renewal proves the lease until
// its send time + TTL).
func checkServerVersion(subject, ep, version string, add addFinding) {
	v, err := etcdversion.Parse(version)
	if err != nil {
		add("warning", subject, "", "endpoint %s: %v", ep, err)
		return
	}
	if problem, up, ok := etcdversion.Advice(v); ok {
		add("error", subject, fmt.Sprintf("upgrade every member to etcd %s or later; until then an acknowledged renewal does not prove the lease alive", up),
			"endpoint %s: %s", ep, problem)
	}
}

func checkDir(d string, add addFinding) {
	if err := trackfile.CheckDir(d); err != nil {
		add("error", d, "create it root-owned 0700 at boot (contrib/systemd/vipkit.tmpfiles.conf)", "%v", err)
		return
	}
	f, err := os.CreateTemp(d, ".fenced-check-*")
	if err != nil {
		add("error", d, "make the directory writable by root (read-only file system? ReadWritePaths in the unit)", "cannot write: %v", err)
		return
	}
	f.Close()
	os.Remove(f.Name())
}

func checkKeepalived(ctx context.Context, cfg *config.Config, path string, add addFinding) {
	version := check.KeepalivedVersion(ctx, cfg.Fenced.VRRPPIDFile)
	release, _ := keepalived.ParseVersion(version)
	kc, err := keepalived.LoadConf(path, keepalived.Options{Release: release})
	if err != nil {
		add("error", path, "fix the path (--keepalived-conf) or the file", "%v", err)
		return
	}
	self, _ := os.Executable()
	want := check.Expectations(cfg, filepath.Join(filepath.Dir(self), "vipctl"), self, version, check.UserExists)
	for _, is := range check.Inspect(kc, want) {
		subject := is.Subject
		if is.Line != "" {
			subject += " (" + is.Line + ")"
		}
		add(string(is.Severity), subject, is.Fix, "%s", is.Message)
	}
}

// fenceSafety is how many times the measured fence the margin must be: the
// margin also pays for a wedged vipctl's lock (a quarter of it), timer
// lateness, a process pause and the rate difference of two clocks.
const fenceSafety = 3

// checkFenceCost compares each cluster's margin with the duration of its
// last fence, as the running fenced measured it (fenced.json).
func checkFenceCost(cfg *config.Config, add addFinding) {
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, fencedstate.File))
	if err != nil {
		return // not running here: nothing measured
	}
	var snap fencedstate.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return
	}
	for _, cl := range cfg.Clusters {
		for _, sc := range snap.Clusters {
			if sc.Name != cl.Name || sc.FenceDuration <= 0 {
				continue
			}
			subject := "cluster " + cl.Name
			if cl.Margin < fenceSafety*sc.FenceDuration {
				add("warning", subject, fmt.Sprintf("raise margin to at least %s, or guard fewer VIPs per cluster", (fenceSafety*sc.FenceDuration).Round(time.Millisecond)),
					"margin %s is less than %dx the last fence of its %d instance(s), which took %s: the fence may end after the server can expire the lease",
					cl.Margin, fenceSafety, instancesOf(cfg, cl.Name), sc.FenceDuration.Round(time.Microsecond))
				continue
			}
			add("info", subject, "", "the last fence took %s; margin %s covers it %.0fx", sc.FenceDuration.Round(time.Microsecond), cl.Margin, float64(cl.Margin)/float64(sc.FenceDuration))
		}
	}
}

func instancesOf(cfg *config.Config, cluster string) int {
	n := 0
	for _, in := range cfg.Instances {
		if in.Cluster == cluster {
			n++
		}
	}
	return n
}
