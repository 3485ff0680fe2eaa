package hosts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/proc"
	"github.com/vipkit/vipkit/test/lab/vipkit"
	"github.com/vipkit/vipkit/test/repo"
)

// The installed paths (the package's, not make install's).
const (
	Vipctl     = "/usr/sbin/vipctl"
	Fenced     = "/usr/sbin/fenced"
	ConfigPath = "/etc/vipkit/vipkit.toml"
	StateDir   = "/run/vipkit"
)

// Lab is the lab (topology, observer, probes, etcd) whose keepalived nodes
// are booted hosts. The observer sees each host's /run/vipkit (it is the
// lab node's StateDir) and its notify FIFO (the node's directory is
// mounted at the same path inside the host).
type Lab struct {
	*lab.Lab
	Hosts map[string]*Host
}

// NewLab builds the lab, starts etcd and boots one host per node, each
// with layers over the base root (Spec.Layers).
func NewLab(ctx context.Context, opts lab.Options, layers ...string) (_ *Lab, err error) {
	ll, err := lab.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	l := &Lab{Lab: ll, Hosts: map[string]*Host{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if err := l.StartEtcd(ctx); err != nil {
		return nil, err
	}
	for _, n := range l.Nodes {
		if err := l.Obs.ReadFIFO(n.Name, n.FIFO); err != nil {
			return nil, err
		}
		h, err := Boot(ctx, Spec{Name: n.Name, NetNS: n.Host.NS.Name, Base: RootDir(),
			Dir: filepath.Join(l.Dir, n.Name+"-host"), Binds: []string{n.Dir}, RunVipkit: n.StateDir, Layers: layers})
		if err != nil {
			return nil, err
		}
		l.Hosts[n.Name] = h
	}
	return l, nil
}

// Close ends the hosts (their journals are saved), then the lab.
func (l *Lab) Close() error {
	var errs []error
	for _, h := range l.Hosts {
		errs = append(errs, h.Close())
	}
	errs = append(errs, l.Lab.Close())
	return errors.Join(errs...)
}

// Host is node n's booted host.
func (l *Lab) Host(n *lab.Node) *Host { return l.Hosts[n.Name] }

// Install copies a .deb into node n's directory (mounted in the host) and
// installs it with dpkg -i, as an operator would.
func (l *Lab) Install(ctx context.Context, n *lab.Node, deb string) (string, error) {
	data, err := os.ReadFile(deb)
	if err != nil {
		return "", fmt.Errorf("install on %s: %w", n.Name, err)
	}
	dst := filepath.Join(n.Dir, filepath.Base(deb))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return "", fmt.Errorf("install on %s: %w", n.Name, err)
	}
	defer os.Remove(dst) // 7 MB per node and run in the results
	return l.Host(n).Output(ctx, "dpkg", "-i", dst)
}

// VipkitTOML is node n's /etc/vipkit/vipkit.toml: one cluster (the lab's
// etcd), one instance with the lab's IPv4 VIP, keepalived-owned.
func (l *Lab) VipkitTOML(n *lab.Node) string {
	e := proc.Etcd{Addr4: l.Topo.Etcd.Addr4, Addr6: l.Topo.Etcd.Addr6}
	return vipkit.TOML{
		Node: n.Name, StateDir: StateDir, VRRPPIDFile: "/run/vrrp.pid",
		Clusters:  []vipkit.ClusterConf{{Name: "main", Endpoints: e.ClientURLs()[:1]}},
		Instances: []vipkit.InstanceConf{{Name: lab.Instance, VIPs: []string{lab.VIP4.String()}, Cluster: "main"}},
	}.String()
}

// KeepalivedConf is node n's keepalived.conf: the shipped
// keepalived-owned-fenced-netns.conf (track_process cannot work in a
// network namespace) with the installed paths, the node's addresses and
// priority, and the lab's notify FIFO.
func (l *Lab) KeepalivedConf(n *lab.Node) (string, error) {
	dir, err := repo.KeepalivedDir()
	if err != nil {
		return "", err
	}
	text, err := os.ReadFile(filepath.Join(dir, "keepalived-owned-fenced-netns.conf"))
	if err != nil {
		return "", err
	}
	v := l.Vars(n)
	v.Vipctl, v.Fenced, v.ConfigPath, v.StateDir = Vipctl, Fenced, ConfigPath, StateDir
	return proc.Render(string(text), v)
}

// Configure writes node n's vipkit.toml and keepalived.conf.
func (l *Lab) Configure(n *lab.Node) error {
	h := l.Host(n)
	if err := h.WriteFile(ConfigPath, []byte(l.VipkitTOML(n)), 0o600); err != nil {
		return err
	}
	conf, err := l.KeepalivedConf(n)
	if err != nil {
		return err
	}
	return h.WriteFile("/etc/keepalived/keepalived.conf", []byte(conf), 0o644)
}

// Systemctl runs systemctl in node n's host.
func (l *Lab) Systemctl(ctx context.Context, n *lab.Node, args ...string) (string, error) {
	return l.Host(n).Output(ctx, "systemctl", args...)
}

// MainPID is the main PID of a unit in node n's host, as seen from
// outside (0 when it has none).
func (l *Lab) MainPID(ctx context.Context, n *lab.Node, unit string) (int, error) {
	out, err := l.Systemctl(ctx, n, "show", "-P", "MainPID", unit)
	if err != nil {
		return 0, err
	}
	var inner int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &inner); err != nil || inner == 0 {
		return 0, err
	}
	return l.Host(n).OuterPID(inner)
}

// WaitUnit polls until a unit's ActiveState is one of want.
func (l *Lab) WaitUnit(ctx context.Context, n *lab.Node, unit string, within time.Duration, want ...string) (string, error) {
	deadline := time.Now().Add(within)
	var last string
	for {
		out, _ := l.Systemctl(ctx, n, "show", "-P", "ActiveState", unit)
		last = strings.TrimSpace(out)
		for _, w := range want {
			if last == w {
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("%s: %s is %s after %s, want %v", n.Name, unit, last, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
