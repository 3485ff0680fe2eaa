package logging

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"
)

// Options configure New.
type Options struct {
	Tag   string // program name, the journal's SYSLOG_IDENTIFIER
	Level slog.Leveler
	// File, when set, receives JSON lines instead of the journal; used by
	// the lab and for debugging a hook.
	File string
}

// New builds the logger and a function that closes what it opened.
func New(o Options) (*slog.Logger, func(), error) {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	journalUp := false
	if _, err := os.Stat("/run/systemd/journal/socket"); err == nil {
		journalUp = journal.Enabled()
	}
	switch Choose(o.File, isTerminal(os.Stderr), journalUp) {
	case ToFile:
		f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file %s: %w", o.File, err)
		}
		h := slog.NewJSONHandler(f, &slog.HandlerOptions{Level: o.Level})
		return slog.New(h).With("prog", o.Tag, "pid", os.Getpid()), func() { f.Close() }, nil
	case ToTerminal:
		return slog.New(NewHuman(os.Stderr, o.Level)), func() {}, nil
	case ToJournal:
		send := func(msg string, p Priority, fields map[string]string) error {
			return journal.Send(msg, journal.Priority(p), fields)
		}
		return slog.New(NewJournal(send, o.Tag, o.Level)), func() {}, nil
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.Level})).With("prog", o.Tag), func() {}, nil
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
