package keepalived_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

// Exit codes of `keepalived -t` as keepalived 2.2.7 (Debian 1:2.2.7-1+b2)
// returns them, observed: 0 clean, 5 for any reported configuration problem
// (warnings such as a missing interface or an instance without VIPs
// included), 6 for scripts configured without enable_script_security.
// keepalived's own enum reserves 4 for a configuration it cannot run. It
// also exits 0 while printing "Config files missing", so output matters as
// much as the code.
const (
	keepalivedExitOK       = 0
	keepalivedExitCannot   = 4
	keepalivedExitErrors   = 5
	keepalivedExitSecurity = 6
)

// noVIPWarning is what keepalived 2.2.7 says about a vipctl-owned instance:
// it runs the instance, but -t counts the warning and exits 5.
const noVIPWarning = "(VI_1) No VIP specified; at least one is sensible"

// procConnectorRefused is what vrrp_track_process logs in a network
// namespace, where the kernel's process connector refuses to serve: the
// reason the *-fenced-netns.conf variants exist. keepalived 2.2.7 and 2.3.3
// word it differently.
var procConnectorRefused = []string{
	"Failed to set/clear process event listen - errno 111 - Connection refused", // 2.2.7
	"Failed to set process event listen - errno 111 - Connection refused",       // 2.3.3
}

// stubScript stands in for vipctl and fenced: it succeeds, and as the FIFO
// reader (vipctl fifo ... PATH) it keeps reading the FIFO as vipctl would.
const stubScript = `#!/bin/sh
case " $* " in *" fifo "*) for last; do :; done; exec cat "$last" >/dev/null ;; esac
exit 0
`

// keepalivedBuilds are the keepalived releases the shipped files are tested
// on: Debian's 2.2.7 and the 2.3.3 make builds (and $VIPKIT_KEEPALIVED).
// Without both, the claims cannot be checked: skipped on a developer
// machine, a failure under CI.
func keepalivedBuilds(t *testing.T) []repo.KeepalivedBuild {
	t.Helper()
	builds, missing, err := repo.Keepaliveds()
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		netnstest.Missing(t, "keepalived builds missing: %s (make deps keepalived)", strings.Join(missing, ", "))
	}
	return builds
}

// contribCase is one shipped file on one keepalived release it claims.
type contribCase struct {
	src   string
	name  string
	build repo.KeepalivedBuild
}

// contribCases pairs every shipped file with every available keepalived
// release its header claims ("# keepalived: >= X.Y.Z"); rejected are the
// pairs the claim excludes.
func contribCases(t *testing.T) (claimed, rejected []contribCase) {
	t.Helper()
	builds := keepalivedBuilds(t)
	confs, err := repo.KeepalivedConfs()
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range confs {
		min, err := repo.ConfClaim(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range builds {
			c := contribCase{src: src, name: filepath.Base(src) + "/" + b.String(), build: b}
			if b.Version.AtLeast(min) {
				claimed = append(claimed, c)
			} else {
				rejected = append(rejected, c)
			}
		}
	}
	return claimed, rejected
}

// renderContrib writes a shipped config with vipctl, fenced and the state
// directory replaced by paths keepalived accepts: root-owned stubs, 0755, in
// a root-owned directory nobody else can write, which enable_script_security
// requires of every directory on the path.
func renderContrib(t *testing.T, src string) (conf, dir string) {
	t.Helper()
	base := "/var/tmp"
	if _, err := os.Stat(base); err != nil {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "vipkit-contrib-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, state := filepath.Join(dir, "bin"), filepath.Join(dir, "state")
	for _, d := range []string{dir, bin, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"vipctl", "fenced"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(stubScript), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(repo.Vipctl, filepath.Join(bin, "vipctl"), repo.Fenced, filepath.Join(bin, "fenced"), repo.StateDir, state).Replace(string(data))
	conf = filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, dir
}

// contribNS is a namespace with eth0 (192.0.2.11/24) wired to a peer, the
// primary address and interface the shipped files name.
func contribNS(t *testing.T) *netnstest.NS {
	t.Helper()
	ns, peer := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "eth0", peer, "peer0")
	ns.AddAddr(t, "eth0", "192.0.2.11/24")
	return ns
}

// expectedLines is what keepalived may say about a shipped file: the
// VRRPv2 vipctl-owned files have no VIP and nothing that says so on purpose
// (no_virtual_ipaddress needs 2.2.8); the -v3 files use it.
func expectedLines(name string) []string {
	var ok []string
	if strings.HasPrefix(name, "vipctl-owned") && !strings.HasPrefix(name, "vipctl-owned-v3") {
		ok = append(ok, noVIPWarning)
	}
	return ok
}

// TestPrivilegedContribConfigsPassConfigTest runs `keepalived -t` on every
// shipped file, on every keepalived release the file claims, in a namespace
// that has the interface it names: keepalived reports nothing and exits 0,
// except the one warning VRRPv2 vipctl-owned mode cannot avoid (exit 5, and
// that line only).
func TestPrivilegedContribConfigsPassConfigTest(t *testing.T) {
	netnstest.Require(t)
	claimed, _ := contribCases(t)
	for _, c := range claimed {
		name := filepath.Base(c.src)
		t.Run(c.name, func(t *testing.T) {
			code, lines := configTest(t, c)
			allowed := expectedLines(name)
			wantCode := keepalivedExitOK
			if len(allowed) > 0 {
				wantCode = keepalivedExitErrors
			}
			for _, l := range lines {
				if !slices.Contains(allowed, l) {
					t.Errorf("keepalived -t: %s", l)
				}
			}
			if wantCode != keepalivedExitOK && len(lines) == 0 {
				t.Errorf("keepalived -t printed nothing; want %q", allowed)
			}
			if code != wantCode {
				t.Errorf("keepalived -t exited %d (%s), want %d", code, exitMeaning(code), wantCode)
			}
		})
	}
}

// TestPrivilegedContribConfigsRefusedBeforeClaim: a file that claims a later
// release than an available keepalived is refused by that one, so the claim
// is what keeps it off older hosts (the -v3 files on 2.2.7: it does not know
// no_virtual_ipaddress and drops a VRRPv3 instance without VIPs).
func TestPrivilegedContribConfigsRefusedBeforeClaim(t *testing.T) {
	netnstest.Require(t)
	_, rejected := contribCases(t)
	for _, c := range rejected {
		t.Run(c.name, func(t *testing.T) {
			code, lines := configTest(t, c)
			out := strings.Join(lines, "\n")
			if code == keepalivedExitOK || !strings.Contains(out, "is required") {
				t.Errorf("keepalived %s -t exited %d and does not drop the instance:\n%s", c.build, code, out)
			}
		})
	}
}

// configTest runs `keepalived -t` on a rendered shipped file in a fresh
// namespace and returns its exit code and non-empty output lines.
func configTest(t *testing.T, c contribCase) (int, []string) {
	t.Helper()
	conf, _ := renderContrib(t, c.src)
	ns := contribNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, c.build.Path, "-t", "-f", conf)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run keepalived -t: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()+stderr.String()), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return code, lines
}

func exitMeaning(code int) string {
	switch code {
	case keepalivedExitOK:
		return "clean"
	case keepalivedExitCannot:
		return "configuration cannot run"
	case keepalivedExitErrors:
		return "configuration problems reported"
	case keepalivedExitSecurity:
		return "scripts without enable_script_security"
	}
	return "unknown"
}

// logDate is the timestamp keepalived puts before each console line.
var logDate = regexp.MustCompile(`^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}: `)

// badLine matches what keepalived logs when it drops or distrusts part of a
// configuration: unsafe or missing scripts, unknown users, unknown
// keywords, unused scripts, dying FIFO readers.
var badLine = regexp.MustCompile(`(?i)unsafe|cannot|disabl|not found|unable|security violation|warning|error|fail|invalid|missing|exist|not used|ignor|terminated|unknown|unmatched|no vip`)

// TestPrivilegedContribConfigsStartClean starts keepalived on every shipped
// file until it reports "Startup complete", then stops it. keepalived
// 2.2.7's -t does not look at scripts at all; only a real start checks that
// each hook exists, is executable and passes enable_script_security, and
// that the FIFO reader stays up. The log must show none of that going
// wrong; vrrp_track_process's refusal in a namespace is the one exception
// (the -netns variants exist for it).
func TestPrivilegedContribConfigsStartClean(t *testing.T) {
	netnstest.Require(t)
	claimed, _ := contribCases(t)
	for _, c := range claimed {
		name, ka := filepath.Base(c.src), c.build.Path
		t.Run(c.name, func(t *testing.T) {
			conf, dir := renderContrib(t, c.src)
			ns := contribNS(t)
			allowed := expectedLines(name)
			if strings.Contains(name, "-fenced") && !strings.Contains(name, "-netns") {
				allowed = append(allowed, procConnectorRefused...)
			}
			lines := runKeepalived(t, ns, ka, conf, dir)
			for _, l := range lines {
				if badLine.MatchString(l) && !slices.Contains(allowed, l) {
					t.Errorf("keepalived: %s", l)
				}
			}
		})
	}
}

// runKeepalived starts keepalived in the foreground with console logging,
// waits for "Startup complete", stops it with SIGTERM and returns its log
// without timestamps.
func runKeepalived(t *testing.T, ns *netnstest.NS, ka, conf, dir string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, ka, "-n", "-l", "-D", "-G", "-P", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start keepalived: %v", err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- logDate.ReplaceAllString(sc.Text(), "")
		}
	}()
	var log []string
	started := false
	deadline := time.After(20 * time.Second)
	for !started {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("keepalived exited before startup completed: %v\n%s", cmd.Wait(), strings.Join(log, "\n"))
			}
			log = append(log, l)
			started = l == "Startup complete"
		case <-deadline:
			t.Fatalf("keepalived did not complete startup within 20s:\n%s", strings.Join(log, "\n"))
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop keepalived: %v", err)
	}
	deadline = time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			log = append(log, l)
		case <-deadline:
			t.Fatalf("keepalived did not stop within 20s:\n%s", strings.Join(log, "\n"))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("keepalived exited with %v after SIGTERM", err)
	}
	return log
}
