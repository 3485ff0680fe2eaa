// Command fenced holds an etcd lease and, the moment it can no longer prove
// the lease is alive, removes the VIPs it guards and sends keepalived into
// FAULT, before the etcd server can expire the lease and grant it elsewhere.
//
// Exit status: 0 ok, 1 failure (status: not alive), 2 usage or configuration
// error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/vip"
)

var version = "dev"

// extraCommands are added by files built only in some builds (docs.go).
var extraCommands []*cli.Command

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// silentError ends with an exit code without another line on stderr: the
// command already said what is wrong.
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var unknown string
	app := newApp(stdout, stderr)
	app.CommandNotFound = func(_ *cli.Context, name string) { unknown = name }
	err := app.RunContext(ctx, args)
	if err == nil && unknown != "" {
		err = usagef("unknown command %q (see fenced --help)", unknown)
	}
	if err == nil {
		return exitOK
	}
	var se silentError
	if errors.As(err, &se) {
		return se.code
	}
	fmt.Fprintf(stderr, "fenced: %s\n", strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n", "; "), errUsage.Error()+": "))
	for _, sentinel := range []error{errUsage, config.ErrInvalid, vip.ErrInvalid} {
		if errors.Is(err, sentinel) {
			return exitUsage
		}
	}
	return exitFail
}

var (
	configFlag = &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "vipkit configuration `FILE` (used only if present when not given)", Value: config.DefaultPath, EnvVars: []string{"VIPKIT_CONFIG"}}
	stateFlag  = &cli.StringFlag{Name: "state-dir", Usage: "state `DIR` (fenced.json, track files)", DefaultText: "state_dir from the config, else " + config.DefaultStateDir, EnvVars: []string{"VIPKIT_STATE_DIR"}}
	levelFlag  = &cli.StringFlag{Name: "log-level", Usage: "`LEVEL`: debug, info, warn or error", DefaultText: "log_level from the config, else info"}
	logFile    = &cli.StringFlag{Name: "log-file", Usage: "append JSON logs to `FILE` instead of the journal", EnvVars: []string{"VIPKIT_LOG_FILE"}}
)

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "fenced",
		Usage:   "hold an etcd lease; fence keepalived (VIP removed first) before the lease can expire",
		Version: version,
		Description: `fenced runs beside keepalived as a systemd Type=notify service. It grants and renews a
lease in each configured etcd cluster and computes its own deadline from the send time of
the last acknowledged renewal + TTL - margin, on CLOCK_BOOTTIME. When that deadline comes
(or the lease is revoked, or the member key vanishes) it removes the guarded VIPs and their
route hints, then writes 1 to each instance's keepalived track file: FAULT, before the
server can expire the lease. It starts fenced (1) and writes 0 only once it holds a lease
and the hold-down has passed. It also removes orphaned route hints the moment an address
disappears, and the VIPs keepalived leaves behind when it is killed.

Exit status: 0 ok, 1 failure, 2 usage or configuration error.`,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usagef("%v", err)
		},
		Commands: append([]*cli.Command{runCommand(), statusCommand(), checkCommand(), failClosedCommand(), configuredCommand()}, extraCommands...),
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	return app
}
