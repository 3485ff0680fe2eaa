package check

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/hostnet"
	"github.com/vipkit/vipkit/pkg/keepalived"
)

// Gather reads the facts Evaluate needs from this host. keepalivedConf may
// be "" to skip keepalived.conf.
func Gather(ctx context.Context, cfg *config.Config, keepalivedConf, vipctlPath, fencedPath string) (Facts, error) {
	f := Facts{
		Sysctl:     map[string]string{},
		Links:      map[string]LinkFacts{},
		VipctlPath: vipctlPath,
		FencedPath: fencedPath,
		UserExists: UserExists,
	}
	n, err := hostnet.Open()
	if err != nil {
		return f, err
	}
	defer n.Close()
	devs := map[string]bool{"all": true}
	for _, in := range cfg.Instances {
		devs[in.Dev] = true
		l, err := n.Link(in.Dev)
		if errors.Is(err, hostnet.ErrNoSuchDevice) {
			continue
		}
		if err != nil {
			return f, err
		}
		addrs, err := n.Addrs(l, 0)
		if err != nil {
			return f, err
		}
		f.Links[in.Dev] = LinkFacts{Addrs: addrs, Up: l.Up}
	}
	for dev := range devs {
		for _, key := range []string{"arp_ignore", "arp_announce", "promote_secondaries"} {
			p := "net/ipv4/conf/" + dev + "/" + key
			if b, err := os.ReadFile("/proc/sys/" + p); err == nil {
				f.Sysctl[p] = strings.TrimSpace(string(b))
			}
		}
	}
	if f.LocalRoutes, err = n.AllLocalRoutes(); err != nil {
		return f, err
	}
	if f.Orphans, err = n.Orphans(); err != nil {
		return f, err
	}
	if keepalivedConf != "" {
		// Read as the release that will read it: 2.3 parses some
		// constructs differently (keepalived.Reader23).
		f.KeepalivedVer = KeepalivedVersion(ctx, cfg.Fenced.VRRPPIDFile)
		release, _ := keepalived.ParseVersion(f.KeepalivedVer)
		f.Keepalived, f.KeepalivedErr = keepalived.LoadConf(keepalivedConf, keepalived.Options{Release: release})
	}
	for _, p := range Programs(cfg, vipctlPath, fencedPath) {
		f.Binaries = append(f.Binaries, chain(p))
	}
	f.StateDir = stat(cfg.StateDir)
	return f, nil
}

// UserExists reports whether a local user exists (keepalived_script).
func UserExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}

// chain stats a file and every directory above it.
func chain(path string) PathChain {
	c := PathChain{Path: path}
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		c.Chain = append(c.Chain, stat(p))
		if p == "/" || p == "." {
			return c
		}
	}
}

func stat(p string) PathFacts {
	st, err := os.Stat(p)
	if err != nil {
		return PathFacts{Path: p}
	}
	pf := PathFacts{Path: p, Exists: true, Mode: uint32(st.Mode().Perm()), IsDir: st.IsDir()}
	if st.Mode()&os.ModeSticky != 0 {
		pf.Mode |= 0o1000
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		pf.UID = sys.Uid
	}
	return pf
}

// versionRE is compiled on first use: every vipctl hook would pay for it
// at start-up otherwise.
var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`Keepalived v(\d+\.\d+\.\d+)`) })

// KeepalivedVersion asks the keepalived vipctl talks to for its release:
// the running VRRP process named by vrrpPIDFile (its own executable, which
// is not the one on PATH after an upgrade or with a self-built keepalived),
// else keepalived on PATH, else Debian's /usr/sbin/keepalived; "" when
// unknown.
func KeepalivedVersion(ctx context.Context, vrrpPIDFile string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var cands []string
	if exe := runningKeepalived(vrrpPIDFile); exe != "" {
		cands = append(cands, exe)
	}
	cands = append(cands, "keepalived", "/usr/sbin/keepalived")
	for _, bin := range cands {
		out, _ := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
		if m := versionRE().FindSubmatch(out); m != nil {
			return string(m[1])
		}
	}
	return ""
}

// runningKeepalived is /proc/PID/exe of the process a keepalived pid file
// names, if that process is a keepalived: a stale file's PID may belong to
// any program by now, which must not be run.
func runningKeepalived(pidFile string) string {
	if pidFile == "" {
		return ""
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return ""
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "keepalived" {
		return ""
	}
	return fmt.Sprintf("/proc/%d/exe", pid)
}
