//go:build !urfave_cli_no_docs

package main

import (
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/clidoc"
)

// Only the documentation build (without urfave_cli_no_docs) has gen-docs:
// the hook binary stays free of the man page renderer.
func init() {
	extraCommands = append(extraCommands, clidoc.Command(func() *cli.App { return newApp(os.Stderr) }, writeDoc))
}

func writeDoc(dir, name, text string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
}
