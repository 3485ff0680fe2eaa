package keepalived

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseNotifyArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Event
		wantErr string
	}{
		{name: "instance master", args: []string{"INSTANCE", "VI_1", "MASTER", "150"}, want: Event{KindInstance, "VI_1", StateMaster, 150}},
		{name: "group backup reports 0", args: []string{"GROUP", "VG_1", "BACKUP", "0"}, want: Event{KindGroup, "VG_1", StateBackup, 0}},
		{name: "stop keeps priority", args: []string{"INSTANCE", "VI_1", "STOP", "100"}, want: Event{KindInstance, "VI_1", StateStop, 100}},
		{name: "fault", args: []string{"INSTANCE", "VI_1", "FAULT", "0"}, want: Event{KindInstance, "VI_1", StateFault, 0}},
		{name: "deleted", args: []string{"INSTANCE", "VI_1", "DELETED", "255"}, want: Event{KindInstance, "VI_1", StateDeleted, 255}},
		{name: "name with space", args: []string{"INSTANCE", "VI 1", "MASTER", "1"}, want: Event{KindInstance, "VI 1", StateMaster, 1}},
		{name: "misspelt state", args: []string{"INSTANCE", "VI_1", "MASTR", "150"},
			wantErr: `parse notify arguments: state "MASTR" is not one of MASTER, BACKUP, FAULT, STOP, DELETED`},
		{name: "fifo-only event", args: []string{"INSTANCE", "VI_1", "MASTER_RX_LOWER_PRI", "150"}, wantErr: `state "MASTER_RX_LOWER_PRI"`},
		{name: "lower-case state", args: []string{"INSTANCE", "VI_1", "master", "150"}, wantErr: `state "master"`},
		{name: "unknown type", args: []string{"VS", "VI_1", "MASTER", "150"}, wantErr: `parse notify arguments: type "VS" is not INSTANCE or GROUP`},
		{name: "three args", args: []string{"INSTANCE", "VI_1", "MASTER"}, wantErr: "got 3 arguments"},
		{name: "five args", args: []string{"--config", "INSTANCE", "VI_1", "MASTER", "1"}, wantErr: "got 5 arguments"},
		{name: "empty name", args: []string{"INSTANCE", "", "MASTER", "1"}, wantErr: "empty instance or group name"},
		{name: "priority 256", args: []string{"INSTANCE", "VI_1", "MASTER", "256"}, wantErr: `priority "256" is not a number from 0 to 255`},
		{name: "negative priority", args: []string{"INSTANCE", "VI_1", "MASTER", "-1"}, wantErr: `priority "-1"`},
		{name: "padded priority", args: []string{"INSTANCE", "VI_1", "MASTER", "0100"}, wantErr: `priority "0100"`},
		{name: "unknown state word", args: []string{"INSTANCE", "VI_1", "{UNKNOWN}", "1"}, wantErr: `state "{UNKNOWN}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNotifyArgs(tt.args)
			checkParse(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestParseFIFOLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Event
		wantErr string
		notVRRP bool
	}{
		{name: "instance", line: "INSTANCE \"VI_1\" MASTER 150\n", want: Event{KindInstance, "VI_1", StateMaster, 150}},
		{name: "without newline", line: `INSTANCE "VI_1" BACKUP 100`, want: Event{KindInstance, "VI_1", StateBackup, 100}},
		{name: "crlf", line: "INSTANCE \"VI_1\" FAULT 0\r\n", want: Event{KindInstance, "VI_1", StateFault, 0}},
		{name: "group", line: `GROUP "VG_1" BACKUP 0`, want: Event{KindGroup, "VG_1", StateBackup, 0}},
		{name: "rx lower pri", line: `INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150`, want: Event{KindInstance, "VI_1", StateMasterRxLowerPri, 150}},
		{name: "master priority", line: `INSTANCE "VI_1" MASTER_PRIORITY 140`, want: Event{KindInstance, "VI_1", StateMasterPriority, 140}},
		{name: "backup priority", line: `INSTANCE "VI_1" BACKUP_PRIORITY 90`, want: Event{KindInstance, "VI_1", StateBackupPriority, 90}},
		{name: "name with spaces", line: `INSTANCE "VI 1 a" STOP 100`, want: Event{KindInstance, "VI 1 a", StateStop, 100}},
		{name: "name with quotes", line: `INSTANCE "a" MASTER 1 "b" BACKUP 5`, want: Event{KindInstance, `a" MASTER 1 "b`, StateBackup, 5}},
		{name: "lvs virtual server", line: "VS [192.168.201.15]:tcp:80 UP\n", notVRRP: true, wantErr: "is an LVS line"},
		{name: "lvs real server", line: "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN", notVRRP: true, wantErr: "is an LVS line"},
		{name: "empty", line: "", wantErr: `type "" is not INSTANCE or GROUP`},
		{name: "unquoted name", line: `INSTANCE VI_1 MASTER 150`, wantErr: `name "VI_1" is not double-quoted`},
		{name: "empty name", line: `INSTANCE "" MASTER 150`, wantErr: "empty instance or group name"},
		{name: "bad state", line: `INSTANCE "VI_1" MASTR 150`, wantErr: `parse notify FIFO line: state "MASTR" is not one of`},
		{name: "missing priority", line: `INSTANCE "VI_1" MASTER`, wantErr: `want TYPE "NAME" STATE PRIORITY`},
		{name: "two words", line: `INSTANCE "VI_1"`, wantErr: `want TYPE "NAME" STATE PRIORITY`},
		{name: "trailing space", line: `INSTANCE "VI_1" MASTER 150 `, wantErr: `name`},
		{name: "priority out of range", line: `INSTANCE "VI_1" MASTER 300`, wantErr: `priority "300"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFIFOLine(tt.line)
			if tt.notVRRP != errors.Is(err, ErrNotVRRP) {
				t.Fatalf("ParseFIFOLine(%q) error %v: errors.Is(ErrNotVRRP) = %v, want %v", tt.line, err, !tt.notVRRP, tt.notVRRP)
			}
			if tt.notVRRP {
				if errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseFIFOLine(%q): an LVS line is valid, got %v matching ErrInvalid", tt.line, err)
				}
				return
			}
			checkParse(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// checkParse compares a parse result with a want event or an error
// fragment; every parse error must match ErrInvalid.
func checkParse(t *testing.T, got Event, err error, want Event, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil {
			t.Fatalf("got %+v, want error containing %q", got, wantErr)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %q does not contain %q", err, wantErr)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %q does not match ErrInvalid", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestStateIsTransition(t *testing.T) {
	for _, s := range []State{StateMaster, StateBackup, StateFault, StateStop, StateDeleted} {
		if !s.IsTransition() {
			t.Errorf("%s.IsTransition() = false, want true", s)
		}
	}
	for _, s := range []State{StateMasterRxLowerPri, StateMasterPriority, StateBackupPriority, "", "master"} {
		if s.IsTransition() {
			t.Errorf("%q.IsTransition() = true, want false", s)
		}
	}
}

func TestEventRenders(t *testing.T) {
	e := Event{KindInstance, "VI_1", StateMaster, 150}
	if got, want := e.String(), `INSTANCE "VI_1" MASTER 150`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := e.NotifyArgs(), []string{"INSTANCE", "VI_1", "MASTER", "150"}; !slices.Equal(got, want) {
		t.Errorf("NotifyArgs() = %q, want %q", got, want)
	}
}

// FuzzParseFIFOLine: any input parses or fails without panicking; whatever
// parses renders back to a line that parses to the same event, and an error
// is either ErrInvalid or ErrNotVRRP.
func FuzzParseFIFOLine(f *testing.F) {
	for _, s := range []string{
		"INSTANCE \"VI_1\" MASTER 150\n", `GROUP "VG_1" BACKUP 0`, `INSTANCE "a b" MASTER_RX_LOWER_PRI 1`,
		`INSTANCE "x" MASTER 1 "y" FAULT 2`, "VS [10.0.0.1]:tcp:80 UP", `INSTANCE "" MASTER 1`, "\"\" \" 1", "INSTANCE \"\n\" STOP 0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseFIFOLine(line)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotVRRP) {
				t.Fatalf("ParseFIFOLine(%q): error %v matches neither sentinel", line, err)
			}
			return
		}
		again, err := ParseFIFOLine(e.String() + "\n")
		if err != nil || again != e {
			t.Fatalf("ParseFIFOLine(%q) = %+v, but its rendering %q gives %+v, %v", line, e, e.String(), again, err)
		}
	})
}

// FuzzParseNotifyArgs: never panics; what parses renders back to the same
// arguments and only transitions come out of the generic hook.
func FuzzParseNotifyArgs(f *testing.F) {
	f.Add("INSTANCE", "VI_1", "MASTER", "150")
	f.Add("GROUP", "VG 1", "STOP", "0")
	f.Add("INSTANCE", "VI_1", "MASTER_PRIORITY", "1")
	f.Add("INSTANCE", "", "BACKUP", "+1")
	f.Fuzz(func(t *testing.T, kind, name, state, prio string) {
		args := []string{kind, name, state, prio}
		e, err := ParseNotifyArgs(args)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseNotifyArgs(%q): error %v does not match ErrInvalid", args, err)
			}
			return
		}
		if !e.State.IsTransition() {
			t.Fatalf("ParseNotifyArgs(%q) = %+v: not a transition", args, e)
		}
		if got := e.NotifyArgs(); !slices.Equal(got, args) {
			t.Fatalf("ParseNotifyArgs(%q) = %+v renders back as %q", args, e, got)
		}
	})
}
