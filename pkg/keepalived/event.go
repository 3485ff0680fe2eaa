// Package keepalived reads what keepalived tells vipkit and what it was told:
// the arguments of its generic notify hook, the lines of its notify FIFO, and
// keepalived.conf, so that `vipctl check` can say what is wrong with a
// configuration before keepalived silently ignores part of it.
//
// Everything here is pure except LoadConf, which reads files.
package keepalived

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid marks input that is not what keepalived writes.
var ErrInvalid = errors.New("keepalived: invalid input")

// ErrNotVRRP marks a well-formed notify FIFO line about LVS (virtual or real
// servers): a shared notify_fifo carries both, and a VRRP reader skips them.
var ErrNotVRRP = errors.New("keepalived: not a VRRP event")

// Kind says whether an event is about a vrrp_instance or a vrrp_sync_group.
type Kind string

// Kinds, as keepalived spells them.
const (
	KindInstance Kind = "INSTANCE"
	KindGroup    Kind = "GROUP"
)

// State is the state word of a notify event.
type State string

// Transitions, reported by hooks and the FIFO.
const (
	StateMaster  State = "MASTER"
	StateBackup  State = "BACKUP"
	StateFault   State = "FAULT"
	StateStop    State = "STOP"
	StateDeleted State = "DELETED"
)

// Events only the FIFO reports: a MASTER received a lower-priority advert
// (another node believed it was MASTER: a healed split brain), and priority
// changes (with notify_priority_changes).
const (
	StateMasterRxLowerPri State = "MASTER_RX_LOWER_PRI"
	StateMasterPriority   State = "MASTER_PRIORITY"
	StateBackupPriority   State = "BACKUP_PRIORITY"
)

// IsTransition reports whether the state is one an instance or group can be
// in, as opposed to an event that leaves the state unchanged.
func (s State) IsTransition() bool {
	switch s {
	case StateMaster, StateBackup, StateFault, StateStop, StateDeleted:
		return true
	}
	return false
}

// Event is one notification from keepalived.
type Event struct {
	Kind  Kind
	Name  string
	State State
	// Priority is the instance's effective priority; keepalived always
	// reports 0 for a group.
	Priority int
}

// String renders the event as keepalived writes it to the FIFO, without
// the newline.
func (e Event) String() string {
	return fmt.Sprintf("%s \"%s\" %s %d", e.Kind, e.Name, e.State, e.Priority)
}

// NotifyArgs renders the four arguments keepalived appends to the generic
// notify hook.
func (e Event) NotifyArgs() []string {
	return []string{string(e.Kind), e.Name, string(e.State), strconv.Itoa(e.Priority)}
}

// parseError formats as "operation: message" and matches ErrInvalid, so the
// message can name the value without a generic suffix.
type parseError struct {
	op, msg string
	target  error
}

func (e *parseError) Error() string        { return e.op + ": " + e.msg }
func (e *parseError) Is(target error) bool { return target == e.target }

func invalid(op, format string, args ...any) error {
	return &parseError{op: op, msg: fmt.Sprintf(format, args...), target: ErrInvalid}
}

const (
	opNotify = "parse notify arguments"
	opFIFO   = "parse notify FIFO line"
)

// ParseNotifyArgs reads the four arguments keepalived appends to the command
// of a generic `notify` hook: TYPE NAME STATE PRIORITY. Pass exactly those
// four (the last four of the hook's argv).
func ParseNotifyArgs(args []string) (Event, error) {
	if len(args) != 4 {
		return Event{}, invalid(opNotify, "got %d arguments %q, want 4: INSTANCE|GROUP NAME STATE PRIORITY", len(args), args)
	}
	kind, err := parseKind(opNotify, args[0])
	if err != nil {
		return Event{}, err
	}
	name := args[1]
	if err := checkName(opNotify, name); err != nil {
		return Event{}, err
	}
	st := State(args[2])
	if !st.IsTransition() {
		return Event{}, invalid(opNotify, "state %q is not one of MASTER, BACKUP, FAULT, STOP, DELETED", args[2])
	}
	prio, err := parsePriority(opNotify, args[3])
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: kind, Name: name, State: st, Priority: prio}, nil
}

// ParseFIFOLine reads one line of a notify FIFO, with or without its
// newline: `INSTANCE "VI_1" MASTER 150` or `GROUP "VG_1" BACKUP 0`. A line
// about LVS (`VS ...`, `RS ...`) returns an error matching ErrNotVRRP.
//
// The name is read as everything between the first and the last double
// quote before the state, so a name with spaces or quotes in it (possible
// with a quoted name in keepalived.conf) still parses.
func ParseFIFOLine(line string) (Event, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	kindWord, rest, _ := strings.Cut(line, " ")
	if kindWord == "VS" || kindWord == "RS" {
		return Event{}, &parseError{op: opFIFO, msg: fmt.Sprintf("%q is an LVS line", line), target: ErrNotVRRP}
	}
	kind, err := parseKind(opFIFO, kindWord)
	if err != nil {
		return Event{}, fmt.Errorf("%w in line %q", err, line)
	}
	i := strings.LastIndexByte(rest, ' ')
	if i < 0 {
		return Event{}, invalid(opFIFO, "line %q: want TYPE \"NAME\" STATE PRIORITY", line)
	}
	prioWord := rest[i+1:]
	rest = rest[:i]
	j := strings.LastIndexByte(rest, ' ')
	if j < 0 {
		return Event{}, invalid(opFIFO, "line %q: want TYPE \"NAME\" STATE PRIORITY", line)
	}
	st := State(rest[j+1:])
	quoted := rest[:j]
	if len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return Event{}, invalid(opFIFO, "line %q: name %q is not double-quoted", line, quoted)
	}
	name := quoted[1 : len(quoted)-1]
	if err := checkName(opFIFO, name); err != nil {
		return Event{}, err
	}
	switch {
	case st.IsTransition(), st == StateMasterRxLowerPri, st == StateMasterPriority, st == StateBackupPriority:
	default:
		return Event{}, invalid(opFIFO, "state %q is not one of MASTER, BACKUP, FAULT, STOP, DELETED, MASTER_RX_LOWER_PRI, MASTER_PRIORITY, BACKUP_PRIORITY", string(st))
	}
	prio, err := parsePriority(opFIFO, prioWord)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: kind, Name: name, State: st, Priority: prio}, nil
}

func parseKind(op, s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindInstance, KindGroup:
		return k, nil
	}
	return "", invalid(op, "type %q is not INSTANCE or GROUP", s)
}

// checkName rejects what keepalived cannot have written: an empty name, or
// one with a line break that would split a FIFO line.
func checkName(op, name string) error {
	if name == "" {
		return invalid(op, "empty instance or group name")
	}
	if strings.ContainsAny(name, "\r\n\x00") {
		return invalid(op, "name %q contains a line break or NUL", name)
	}
	return nil
}

// parsePriority accepts 0..255 in plain decimal, as keepalived prints it.
func parsePriority(op, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != s {
		return 0, invalid(op, "priority %q is not a number from 0 to 255", s)
	}
	return n, nil
}
