//go:build !urfave_cli_no_docs

package clidoc

import (
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Name:  "tool",
		Usage: "does things",
		Commands: []*cli.Command{
			{Name: "up", Usage: "bring up", Flags: []cli.Flag{&cli.StringFlag{Name: "dev", Aliases: []string{"d"}}}},
			{Name: "route-src", Usage: "hint", Subcommands: []*cli.Command{
				{Name: "add", Flags: []cli.Flag{&cli.StringFlag{Name: "src"}}},
				{Name: "del"},
			}},
			{Name: "secret", Hidden: true},
		},
	}
}

func TestManNamesVisibleCommands(t *testing.T) {
	man, err := Man(testApp())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".TH tool 8", ".SH NAME", "up", "route-src", "--dev"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if strings.Contains(man, "secret") {
		t.Error("man page documents a hidden command")
	}
}

// The bash script is run by bash with the words typed so far: what it
// offers is what a user's TAB would offer.
func TestBashCompletes(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := Bash(testApp())
	tests := []struct {
		words []string // typed, the last one being completed
		want  []string
		not   []string
	}{
		{[]string{"tool", ""}, []string{"up", "route-src"}, []string{"secret", "add"}},
		{[]string{"tool", "route-src", ""}, []string{"add", "del"}, []string{"up"}},
		{[]string{"tool", "route-src", "add", "--"}, []string{"--src", "--help"}, []string{"--dev"}},
		{[]string{"tool", "up", "-"}, []string{"--dev", "-d"}, []string{"--src"}},
	}
	for _, tc := range tests {
		var quoted []string
		for _, w := range tc.words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(tc.words)-1) + "\ncd /nonexistent 2>/dev/null; _tool; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", tc.words, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%v: offers %v, missing %q", tc.words, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("%v: offers %v, must not offer %q", tc.words, got, w)
			}
		}
	}
}

func TestZshHasEveryLevel(t *testing.T) {
	z := Zsh(testApp())
	for _, want := range []string{"#compdef tool", "'tool route-src') cands=(add del --help)", "'tool route-src add') cands=(--help --src)"} {
		if !strings.Contains(z, want) {
			t.Errorf("zsh completion lacks %q:\n%s", want, z)
		}
	}
	if strings.Contains(z, "secret") {
		t.Error("zsh completion offers a hidden command")
	}
}
