package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	tests := []struct {
		file         string
		tty, journal bool
		want         Destination
	}{
		{"/tmp/x.log", true, true, ToFile},
		{"", true, true, ToTerminal},
		{"", false, true, ToJournal}, // keepalived hook: stderr is /dev/null
		{"", false, false, ToStderr},
	}
	for _, tt := range tests {
		if got := Choose(tt.file, tt.tty, tt.journal); got != tt.want {
			t.Errorf("Choose(%q, %v, %v) = %v, want %v", tt.file, tt.tty, tt.journal, got, tt.want)
		}
	}
}

func TestHumanLine(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHuman(&buf, slog.LevelInfo)).With("dev", "eth0")
	l.Debug("hidden")
	l.Info("holding VIP", "vip", "192.0.2.100", "reason", "two words")
	re := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} INFO  holding VIP dev=eth0 vip=192\.0\.2\.100 reason="two words"\n$`)
	if !re.MatchString(buf.String()) {
		t.Fatalf("line = %q", buf.String())
	}
}

func TestJournalFields(t *testing.T) {
	var got struct {
		msg    string
		pri    Priority
		fields map[string]string
	}
	send := func(m string, p Priority, f map[string]string) error {
		got.msg, got.pri, got.fields = m, p, f
		return nil
	}
	l := slog.New(NewJournal(send, "vipctl", slog.LevelDebug)).With("instance", "VI_1")
	l.Warn("released VIP", "vip", "192.0.2.100", "dev", "eth0", "action", "down", "MESSAGE", "spoof", "_PID", "1")
	want := map[string]string{"SYSLOG_IDENTIFIER": "vipctl", "INSTANCE": "VI_1", "VIP": "192.0.2.100", "DEV": "eth0", "ACTION": "down", "PID": "1"}
	if got.msg != "released VIP" || got.pri != 4 || len(got.fields) != len(want) {
		t.Fatalf("sent %q pri %d fields %v", got.msg, got.pri, got.fields)
	}
	for k, v := range want {
		if got.fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, got.fields[k], v)
		}
	}
}

// journalctl prints MESSAGE alone: an error's text must be in it (the
// defender's "cannot listen" once showed no cause there).
func TestJournalMessageCarriesError(t *testing.T) {
	var msg string
	var fields map[string]string
	send := func(m string, _ Priority, f map[string]string) error { msg, fields = m, f; return nil }
	l := slog.New(NewJournal(send, "fenced", slog.LevelDebug))
	cause := errors.New("listen for ARP on eth0: socket: address family not supported by protocol")
	for _, tc := range []struct {
		name string
		log  func()
		want string
	}{
		{"record attr", func() { l.Error("defender: cannot listen", "dev", "eth0", "error", cause) }, "defender: cannot listen: " + cause.Error()},
		{"logger attr", func() { l.With("error", cause).Warn("renewal failed") }, "renewal failed: " + cause.Error()},
		{"err key", func() { l.Warn("cannot renew lease", "err", cause) }, "cannot renew lease: " + cause.Error()},
		{"no error", func() { l.Info("holding lease", "lease", "7") }, "holding lease"},
		{"nil error", func() { l.Info("refresher done", "error", error(nil)) }, "refresher done"},
	} {
		msg, fields = "", nil
		tc.log()
		if msg != tc.want {
			t.Errorf("%s: MESSAGE %q, want %q", tc.name, msg, tc.want)
		}
		if !strings.Contains(tc.want, ": ") {
			continue
		}
		if fields["ERROR"] != cause.Error() && fields["ERR"] != cause.Error() {
			t.Errorf("%s: ERROR field %q, want the cause", tc.name, fields["ERROR"])
		}
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{"vip": "VIP", "route-src": "ROUTE_SRC", "_x": "X", "9lives": "LIVES", "priority": "", "": ""} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}
