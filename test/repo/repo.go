// Package repo finds this repository's own files for tests and the lab:
// its root, and the keepalived configurations it ships with the
// placeholders they use.
package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The placeholders in contrib/keepalived (and vipkit.toml examples); tests
// and the lab replace them by plain string substitution.
const (
	Vipctl   = "/usr/local/sbin/vipctl"
	Fenced   = "/usr/local/sbin/fenced"
	Config   = "/etc/vipkit/vipkit.toml"
	StateDir = "/run/vipkit"
)

// Root is the nearest directory above the working directory with a go.mod.
func Root() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find repository root: no go.mod above %s", wd)
		}
	}
}

// KeepalivedDir is contrib/keepalived.
func KeepalivedDir() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "contrib", "keepalived"), nil
}

// KeepalivedConfs lists the shipped keepalived configurations. None is an
// error, so that a moved directory cannot make a test pass vacuously.
func KeepalivedConfs() ([]string, error) {
	dir, err := KeepalivedDir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err == nil && len(files) == 0 {
		err = os.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("list shipped keepalived configs in %s: %w", dir, err)
	}
	return files, nil
}

// Shared is the project's shared directory (reference, corpus), beside
// the main checkout: ../shared from the repository, or from the main
// worktree's when this checkout is a git worktree.
func Shared() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	candidates := []string{filepath.Join(root, "..", "shared")}
	// A worktree's .git is a file "gitdir: MAIN/.git/worktrees/NAME".
	if b, err := os.ReadFile(filepath.Join(root, ".git")); err == nil {
		if dir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: "); ok {
			main := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
			candidates = append(candidates, filepath.Join(main, "..", "shared"))
		}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return filepath.Clean(c), nil
		}
	}
	return "", fmt.Errorf("find shared directory: none of %v exists", candidates)
}

// KeepalivedCorpus lists the real-world keepalived.conf files of the
// shared corpus (every file but SOURCES.md), relative to dir.
func KeepalivedCorpus() (dir string, files []string, err error) {
	shared, err := Shared()
	if err != nil {
		return "", nil, err
	}
	dir = filepath.Join(shared, "corpus", "keepalived-conf")
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "SOURCES.md" {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, rel)
		return err
	})
	if err == nil && len(files) == 0 {
		err = os.ErrNotExist
	}
	if err != nil {
		return "", nil, fmt.Errorf("list keepalived corpus in %s: %w", dir, err)
	}
	return dir, files, nil
}
