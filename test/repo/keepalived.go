package repo

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vipkit/vipkit/pkg/keepalived"
)

// KeepalivedEnv names the environment variable that chooses the keepalived
// the lab, `make demo` and the e2e suite run: the path of its binary.
// Keepalived is the one place test code reads it.
const KeepalivedEnv = "VIPKIT_KEEPALIVED"

// DebianKeepalived is Debian 12's package, keepalived 2.2.7: the default.
const DebianKeepalived = "/usr/sbin/keepalived"

// BuiltKeepalived is the file under bin/ where `make keepalived` puts
// keepalived 2.3.3, built from Debian 13's source package. It is named
// keepalived, as installed: fenced knows the daemon by that name.
const BuiltKeepalived = "keepalived-2.3.3/keepalived"

// Keepalived is the keepalived binary tests and the lab run:
// $VIPKIT_KEEPALIVED, else Debian's. A relative path is taken from the
// repository's root, so VIPKIT_KEEPALIVED=bin/keepalived-2.3.3/keepalived
// means the same to make, labctl and every test package.
func Keepalived() string {
	p := os.Getenv(KeepalivedEnv)
	if p == "" {
		return DebianKeepalived
	}
	if !filepath.IsAbs(p) {
		if root, err := Root(); err == nil {
			return filepath.Join(root, p)
		}
	}
	return p
}

// KeepalivedBuild is one keepalived binary and the release it reports.
type KeepalivedBuild struct {
	Path    string
	Version keepalived.Version
}

func (b KeepalivedBuild) String() string { return b.Version.String() }

// KeepalivedVersion asks a keepalived binary for its release
// (`keepalived --version`).
func KeepalivedVersion(bin string) (keepalived.Version, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return keepalived.Version{}, fmt.Errorf("ask %s for its version: %w", bin, err)
	}
	v, err := keepalived.ParseVersion(string(out))
	if err != nil {
		return keepalived.Version{}, fmt.Errorf("ask %s for its version: %w", bin, err)
	}
	return v, nil
}

// Keepaliveds lists every keepalived a test that runs "on each version"
// should run on: Debian's (2.2.7), bin/keepalived-2.3.3 and
// $VIPKIT_KEEPALIVED, each once. Missing names the ones not there (a
// build not made yet); CI makes both.
func Keepaliveds() (builds []KeepalivedBuild, missing []string, err error) {
	cands := []string{DebianKeepalived}
	if p, ok := findBuilt(); ok {
		cands = append(cands, p)
	} else {
		missing = append(missing, "bin/"+BuiltKeepalived+" (make keepalived)")
	}
	if os.Getenv(KeepalivedEnv) != "" {
		cands = append(cands, Keepalived())
	}
	seen := map[string]bool{}
	for _, p := range cands {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, fmt.Errorf("list keepalived builds: %w", err)
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
			continue
		}
		v, err := KeepalivedVersion(p)
		if err != nil {
			return nil, nil, err
		}
		builds = append(builds, KeepalivedBuild{Path: p, Version: v})
	}
	return builds, missing, nil
}

// findBuilt is bin/keepalived-2.3.3: in $VIPKIT_BIN_DIR, else in the
// repository's bin/.
func findBuilt() (string, bool) {
	var dirs []string
	if d := os.Getenv("VIPKIT_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if root, err := Root(); err == nil {
		dirs = append(dirs, filepath.Join(root, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, BuiltKeepalived)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// claimPrefix starts the header line of a shipped keepalived config that
// says which keepalived releases it is for, e.g. "# keepalived: >= 2.2.8".
const claimPrefix = "# keepalived: >= "

// ConfClaim is the oldest keepalived release a shipped config claims to
// work with, from its header line "# keepalived: >= X.Y.Z". A file
// without one is an error: every shipped file says what it is tested on.
func ConfClaim(path string) (keepalived.Version, error) {
	f, err := os.Open(path)
	if err != nil {
		return keepalived.Version{}, fmt.Errorf("read keepalived claim of %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			break // the claim is in the header comment
		}
		if rest, ok := strings.CutPrefix(line, claimPrefix); ok {
			v, err := keepalived.ParseVersion(strings.TrimSpace(rest))
			if err != nil {
				return keepalived.Version{}, fmt.Errorf("read keepalived claim of %s: %w", path, err)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return keepalived.Version{}, fmt.Errorf("read keepalived claim of %s: %w", path, err)
	}
	return keepalived.Version{}, fmt.Errorf("read keepalived claim of %s: no %q line in its header comment", path, claimPrefix+"X.Y.Z")
}
