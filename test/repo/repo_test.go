package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped configs are found from any package directory, and use the
// placeholders the tests substitute.
func TestKeepalivedConfsFoundAndUsePlaceholders(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("root %s has no go.mod: %v", root, err)
	}
	confs, err := KeepalivedConfs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range confs {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), Vipctl) || !strings.Contains(string(data), StateDir) {
			t.Errorf("%s lacks the placeholder %s or %s", filepath.Base(c), Vipctl, StateDir)
		}
	}
}

// The corpus is found from a worktree as from the main checkout.
func TestKeepalivedCorpusFound(t *testing.T) {
	dir, files, err := KeepalivedCorpus()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if len(files) < 50 {
		t.Errorf("%s holds %d files, want the whole corpus", dir, len(files))
	}
}
