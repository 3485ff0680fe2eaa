// Package logging builds the slog.Logger of vipctl and fenced.
//
// keepalived runs hooks with stdin, stdout and stderr on /dev/null, so a
// hook that logs to stderr logs nowhere: when not on a terminal, logs go to
// the systemd journal (with VIP, DEV, INSTANCE and ACTION as fields), and to
// stderr only when there is no journal. On a terminal they are short human
// lines.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Destination is where a logger writes.
type Destination int

const (
	ToTerminal Destination = iota // human lines on stderr
	ToJournal                     // systemd journal, native protocol
	ToStderr                      // slog text on stderr (no journal)
	ToFile                        // JSON lines appended to a file
)

// Choose picks the destination: a file when asked, human text on a
// terminal, the journal when it runs, stderr otherwise.
func Choose(file string, stderrIsTerminal, journal bool) Destination {
	switch {
	case file != "":
		return ToFile
	case stderrIsTerminal:
		return ToTerminal
	case journal:
		return ToJournal
	default:
		return ToStderr
	}
}

// Human writes "15:04:05.000 INFO message key=value ..." lines.
type Human struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	group string
}

// NewHuman returns a handler writing human lines to w.
func NewHuman(w io.Writer, level slog.Leveler) *Human {
	return &Human{mu: &sync.Mutex{}, w: w, level: level}
}

// Enabled implements slog.Handler.
func (h *Human) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *Human) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(fmt.Sprintf("%-5s", r.Level.String()))
	b.WriteByte(' ')
	b.WriteString(r.Message)
	write := func(a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return
		}
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		v := a.Value.String()
		if strings.ContainsAny(v, " \t\"=") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", key, v)
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(func(a slog.Attr) bool { write(a); return true })
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// WithAttrs implements slog.Handler.
func (h *Human) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clip(h.attrs), as...)
	return &c
}

// WithGroup implements slog.Handler.
func (h *Human) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// Priority is a syslog priority as the journal takes it.
type Priority int

// JournalSender sends one entry (journal.Send's signature, with our type).
type JournalSender func(message string, priority Priority, fields map[string]string) error

// Journal is a slog handler for the systemd journal's native protocol.
type Journal struct {
	send   JournalSender
	tag    string
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string
}

// NewJournal returns a journal handler; tag becomes SYSLOG_IDENTIFIER.
func NewJournal(send JournalSender, tag string, level slog.Leveler) *Journal {
	return &Journal{send: send, tag: tag, level: level}
}

// Enabled implements slog.Handler.
func (j *Journal) Enabled(_ context.Context, l slog.Level) bool { return l >= j.level.Level() }

// Handle implements slog.Handler.
func (j *Journal) Handle(_ context.Context, r slog.Record) error {
	fields := map[string]string{"SYSLOG_IDENTIFIER": j.tag}
	cause := ""
	add := func(a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return
		}
		name := FieldName(j.prefix + a.Key)
		if name == "" {
			return
		}
		fields[name] = a.Value.String()
		if (name == "ERROR" || name == "ERR") && !(a.Value.Kind() == slog.KindAny && a.Value.Any() == nil) {
			cause = fields[name]
		}
	}
	for _, a := range j.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	// `journalctl -u` and `-t` print MESSAGE alone: the cause belongs in
	// it, not only in the ERROR field (`-o verbose`).
	msg := r.Message
	if cause != "" {
		msg += ": " + cause
	}
	return j.send(msg, journalPriority(r.Level), fields)
}

// WithAttrs implements slog.Handler.
func (j *Journal) WithAttrs(as []slog.Attr) slog.Handler {
	c := *j
	for _, a := range as {
		a.Key = j.prefix + a.Key
		c.attrs = append(slices.Clip(c.attrs), a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (j *Journal) WithGroup(name string) slog.Handler {
	c := *j
	c.prefix = j.prefix + name + "_"
	return &c
}

func journalPriority(l slog.Level) Priority {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// FieldName turns a slog key into a journal field name: upper case,
// [A-Z0-9_] only, not starting with '_' (reserved for trusted fields).
func FieldName(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), "_0123456789")
	if len(s) > 64 {
		s = s[:64]
	}
	switch s {
	case "", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER":
		return "" // never let an attribute overwrite the entry's own fields
	}
	return s
}
