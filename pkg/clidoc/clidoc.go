//go:build !urfave_cli_no_docs

// Package clidoc writes what a Debian package ships from a command's CLI
// definition: the man page and bash and zsh completion. It is compiled only
// without the urfave_cli_no_docs tag, so the binaries keepalived runs as
// hooks carry none of it; `make docs` builds a second, documentation-only
// binary of each command.
package clidoc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Command is the hidden command that writes the documents: NAME gen-docs
// DIR writes DIR/NAME.8, DIR/NAME.bash and DIR/_NAME (zsh).
func Command(app func() *cli.App, write func(dir, name, text string) error) *cli.Command {
	return &cli.Command{
		Name:      "gen-docs",
		Hidden:    true,
		Usage:     "write the man page and shell completion (build time only)",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			dir := c.Args().First()
			if dir == "" || c.NArg() != 1 {
				return fmt.Errorf("gen-docs: want one directory, got %q", c.Args().Slice())
			}
			a := app()
			man, err := Man(a)
			if err != nil {
				return err
			}
			for name, text := range map[string]string{a.Name + ".8": man, a.Name + ".bash": Bash(a), "_" + a.Name: Zsh(a)} {
				if err := write(dir, name, text); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// Man renders the program's man page in section 8 (system administration).
func Man(app *cli.App) (string, error) {
	visible(app)
	s, err := app.ToManWithSection(8)
	if err != nil {
		return "", fmt.Errorf("render man page of %s: %w", app.Name, err)
	}
	return s, nil
}

// visible drops hidden commands (internal ones like gen-docs) from the tree.
func visible(app *cli.App) {
	app.Commands = slices.DeleteFunc(app.Commands, func(c *cli.Command) bool { return c.Hidden })
}

// node is one level of the command tree: its words and its flags.
type node struct {
	path  string // "vipctl route-src"
	words []string
	flags []string
}

func tree(app *cli.App) []node {
	visible(app)
	var out []node
	var walk func(path string, cmds []*cli.Command, flags []cli.Flag)
	walk = func(path string, cmds []*cli.Command, flags []cli.Flag) {
		n := node{path: path, flags: flagNames(flags)}
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			n.words = append(n.words, c.Names()...)
		}
		out = append(out, n)
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			for _, name := range c.Names() {
				walk(path+" "+name, c.Subcommands, c.Flags)
			}
		}
	}
	walk(app.Name, app.Commands, app.Flags)
	return out
}

func flagNames(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) == 1 {
				out = append(out, "-"+n)
			} else {
				out = append(out, "--"+n)
			}
		}
	}
	out = append(out, "--help")
	slices.Sort(out)
	return slices.Compact(out)
}

// Bash renders a completion script: the words (subcommands) and flags
// valid after the command words typed so far.
func Bash(app *cli.App) string {
	var b strings.Builder
	fn := "_" + strings.ReplaceAll(app.Name, "-", "_")
	fmt.Fprintf(&b, "# bash completion for %s (generated from its CLI definition)\n", app.Name)
	fmt.Fprintf(&b, "%s() {\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} path=%s i w\n", fn, app.Name)
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tw=${COMP_WORDS[i]}\n\t\tcase $w in -*) continue ;; esac\n\t\tcase \"$path $w\" in\n")
	nodes := tree(app)
	for _, n := range nodes[1:] {
		fmt.Fprintf(&b, "\t\t%q) path=\"$path $w\" ;;\n", n.path)
	}
	b.WriteString("\t\tesac\n\tdone\n\tlocal words\n\tcase $path in\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "\t%q) words=%q ;;\n", n.path, strings.Join(append(slices.Clone(n.words), n.flags...), " "))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n\telse\n\t\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\") $(compgen -f -- \"$cur\"))\n\tfi\n}\n")
	fmt.Fprintf(&b, "complete -F %s %s\n", fn, app.Name)
	return b.String()
}

// Zsh renders a completion function with the same data as Bash.
func Zsh(app *cli.App) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s (generated from its CLI definition)\n", app.Name, app.Name)
	b.WriteString("local path_=" + app.Name + " w\n")
	b.WriteString("for w in ${words[2,CURRENT-1]}; do\n\t[[ $w == -* ]] && continue\n\tcase \"$path_ $w\" in\n")
	nodes := tree(app)
	for _, n := range nodes[1:] {
		fmt.Fprintf(&b, "\t%s) path_=\"$path_ $w\" ;;\n", zshQuote(n.path))
	}
	b.WriteString("\tesac\ndone\nlocal -a cands\ncase $path_ in\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s) cands=(%s) ;;\n", zshQuote(n.path), strings.Join(append(slices.Clone(n.words), n.flags...), " "))
	}
	b.WriteString("esac\nif [[ $PREFIX == -* ]]; then\n\tcompadd -- ${(M)cands:#-*}\nelse\n\tcompadd -- ${cands:#-*}\n\t_files\nfi\n")
	return b.String()
}

func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
