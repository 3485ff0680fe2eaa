// Command vipctl keeps one host's hold on floating IPs correct around
// keepalived: the route source hint that saves local clients from hanging,
// the strict release order, and the announcements after takeover.
//
// Exit status: 0 ok, 1 operational failure, 2 usage or configuration error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/config"
	"github.com/vipkit/vipkit/pkg/holder"
	"github.com/vipkit/vipkit/pkg/hooks"
	"github.com/vipkit/vipkit/pkg/keepalived"
	"github.com/vipkit/vipkit/pkg/logging"
	"github.com/vipkit/vipkit/pkg/vip"
)

// extraCommands are added by files built only in some builds (docs.go).
var extraCommands []*cli.Command

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// errUsage marks command-line mistakes.
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func main() {
	// keepalived before 2.3.4 leaks descriptors into its scripts: keep them
	// from reaching the refreshers this process may start.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// One P: vipctl never computes in parallel, and with one P a goroutine
	// waiting on netlink is woken on the same thread instead of being
	// handed between threads (half the context switches of a hook).
	runtime.GOMAXPROCS(1)
	os.Exit(run(context.Background(), os.Args, os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	var unknown string
	app := newApp(stderr)
	app.CommandNotFound = func(_ *cli.Context, name string) { unknown = name }
	err := app.RunContext(ctx, args)
	if err == nil && unknown != "" {
		err = usagef("unknown command %q (see vipctl --help)", unknown)
	}
	if err == nil {
		return exitOK
	}
	var findings errFindings
	if errors.As(err, &findings) {
		return findings.ExitCode() // the report said it all
	}
	// The one-line error goes to stderr even when logs go to the journal.
	fmt.Fprintf(stderr, "vipctl: %s\n", oneLine(err))
	return exitCode(err)
}

func exitCode(err error) int {
	for _, sentinel := range []error{errUsage, config.ErrInvalid, vip.ErrInvalid, holder.ErrBadInput, hooks.ErrUnknownInstance, keepalived.ErrInvalid} {
		if errors.Is(err, sentinel) {
			return exitUsage
		}
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitFail
}

func oneLine(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, errUsage.Error()+": ")
	return strings.ReplaceAll(s, "\n", "; ")
}

// Flags every command takes.
var (
	configFlag = &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "vipkit configuration `FILE` (used only if present when not given)", Value: config.DefaultPath, EnvVars: []string{"VIPKIT_CONFIG"}}
	stateFlag  = &cli.StringFlag{Name: "state-dir", Usage: "state `DIR` shared by vipctl and fenced", DefaultText: "state_dir from the config, else " + config.DefaultStateDir, EnvVars: []string{"VIPKIT_STATE_DIR"}}
	levelFlag  = &cli.StringFlag{Name: "log-level", Usage: "`LEVEL`: debug, info, warn or error", DefaultText: "log_level from the config, else info"}
	logFile    = &cli.StringFlag{Name: "log-file", Usage: "append JSON logs to `FILE` instead of the journal", EnvVars: []string{"VIPKIT_LOG_FILE"}}
)

func common(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{configFlag, stateFlag, levelFlag, logFile}, extra...)
}

func newApp(stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "vipctl",
		Usage:   "keep this host's hold on keepalived VIPs correct: route source hint, ordered release, announcements",
		Version: version,
		Description: `vipctl runs as a keepalived notify hook, as the reader of keepalived's notify FIFO,
from Ansible and by hand. Every command works from flags alone (--dev IF VIP...) or
from the configuration file shared with fenced (--config, --instance).

Exit status: 0 ok, 1 operational failure, 2 usage or configuration error.`,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // run() owns exit codes
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usagef("%v", err)
		},
		Commands: []*cli.Command{
			upCommand(), downCommand(), routeSrcCommand(), announceCommand(),
			notifyCommand(), fifoCommand(), handoverCommand(),
			statusCommand(), fleetCommand(), checkCommand(), cleanupCommand(), refreshCommand(), lingerCommand(),
		},
	}
	app.Commands = append(app.Commands, extraCommands...)
	setUsageError(app.Commands, app.OnUsageError)
	return app
}

// setUsageError gives every command the app's usage-error handler: urfave/cli
// does not inherit it, and without it a bad flag is a plain failure (exit 1)
// followed by the whole help text.
func setUsageError(cmds []*cli.Command, f cli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = f
		setUsageError(c.Subcommands, f)
	}
}

// env is what every command starts from: the configuration (file or
// defaults), a logger and the state directory.
type env struct {
	cfg      *config.Config
	log      *slog.Logger
	stateDir string
	close    func()
}

func setup(c *cli.Context) (*env, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	level := cfg.LogLevel
	if s := c.String("log-level"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return nil, usagef("--log-level %q is not debug, info, warn or error", s)
		}
	}
	cfg.LogLevel = level
	log, closeLog, err := newLogger(cfg, c.String("log-file"))
	if err != nil {
		return nil, err
	}
	dir := cfg.StateDir
	if s := c.String("state-dir"); s != "" {
		dir = s
	}
	return &env{cfg: cfg, log: log, stateDir: dir, close: closeLog}, nil
}

func newLogger(cfg *config.Config, file string) (*slog.Logger, func(), error) {
	return logging.New(logging.Options{Tag: "vipctl", Level: cfg.LogLevel, File: file})
}

// loadConfig reads --config; the default path is optional, an explicit one
// is not, and an empty one means flags only.
func loadConfig(c *cli.Context) (*config.Config, error) {
	path := c.String("config")
	if path == "" {
		return config.Default(), nil
	}
	if !c.IsSet("config") {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return config.Default(), nil
		}
	}
	return config.Load(path)
}
