package kaoracle

import (
	"regexp"
	"strconv"
	"strings"
)

// Loaded is what keepalived says it loaded (its --dump-conf output), cut
// down to what vipkit reads.
type Loaded struct {
	ScriptSecurity bool
	// FIFOs by dump label: "VRRP notify fifo", "Global notify fifo".
	FIFOs          map[string]FIFO
	Instances      []*Instance
	SyncGroups     []*SyncGroup
	Scripts        []*Script
	TrackFiles     []*TrackFile
	TrackProcesses []string
	// Log is every line keepalived printed, without its time stamp.
	Log []string
	// Unavailable says why this machine cannot load the file at all
	// (keepalived needs IPVS for it and the kernel has none), "" if it can.
	Unavailable string
}

// FIFO is a notify FIFO and its reader script (nil if none).
type FIFO struct {
	Path   string
	Script *Command
}

// Command is a script as keepalived will exec it: argv with argv[0]
// resolved to the file it runs, and the "uid:gid" it runs as.
type Command struct {
	Argv   []string
	UIDGID string
}

// Instance is one vrrp_instance keepalived kept.
type Instance struct {
	Name, Interface, SyncGroup, AuthType, AuthPass string
	VRID, Priority                                 int
	Advert                                         string
	Preempt                                        bool
	VIPs, ExcludedVIPs, UnicastPeers               []string
	// Track* are "NAME weight N".
	TrackScripts, TrackFiles, TrackProcesses []string
	// Hooks by kind: master, backup, fault, stop, deleted, notify,
	// master_rx_lower_pri (the notify_* keyword without "notify_").
	Hooks map[string]Command
}

// SyncGroup is one vrrp_sync_group keepalived kept.
type SyncGroup struct {
	Name    string
	Members []string
	Hooks   map[string]Command
}

// Script is one vrrp_script keepalived kept.
type Script struct {
	Name    string
	Command Command
	Weight  int
}

// TrackFile is one track_file keepalived kept.
type TrackFile struct {
	Name, File string
	Weight     int
}

var (
	stampRE  = regexp.MustCompile(`^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}: `)
	hookKind = map[string]string{
		"Master": "master", "Backup": "backup", "Fault": "fault", "Stop": "stop",
		"Deleted": "deleted", "Generic": "notify", "Master rx lower pri": "master_rx_lower_pri",
	}
)

// ParseDump reads keepalived's log with --dump-conf.
func ParseDump(out string) *Loaded {
	l := &Loaded{FIFOs: map[string]FIFO{}}
	section := ""
	var (
		in   *Instance
		sg   *SyncGroup
		sc   *Script
		tf   *TrackFile
		list *[]string
	)
	for _, raw := range strings.Split(out, "\n") {
		line := stampRE.ReplaceAllString(strings.TrimRight(raw, "\r"), "")
		l.Log = append(l.Log, line)
		if strings.Contains(line, "IPVS: Can't initialize ipvs") {
			l.Unavailable = "keepalived needs IPVS (ip_vs) for this file: " + line
		}
		if strings.HasPrefix(line, "------< ") {
			section, list = strings.TrimSuffix(strings.TrimPrefix(line, "------< "), " >------"), nil
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if indent == 0 {
			// The parent's log lines interleave with the child's dump,
			// whose lines are all indented.
			continue
		}
		text := strings.TrimSpace(line)
		key, val, hasEq := strings.Cut(text, " = ")
		if indent >= 5 && list != nil {
			*list = append(*list, text)
			continue
		}
		list = nil
		switch section {
		case "Global definitions":
			switch {
			case text == "Script security enabled":
				l.ScriptSecurity = true
			case hasEq && strings.HasSuffix(key, "notify fifo"):
				f := l.FIFOs[key]
				f.Path, _, _ = strings.Cut(val, ", uid:gid")
				l.FIFOs[key] = f
			case hasEq && strings.HasSuffix(key, "notify fifo script"):
				k := strings.TrimSuffix(key, " script")
				f := l.FIFOs[k]
				c := parseCommand(val)
				f.Script = &c
				l.FIFOs[k] = f
			}
		case "VRRP Topology":
			if indent == 1 && key == "VRRP Instance" {
				in = &Instance{Name: val, Hooks: map[string]Command{}}
				l.Instances = append(l.Instances, in)
				continue
			}
			if in == nil || indent != 3 {
				continue
			}
			switch {
			case hasEq && strings.HasSuffix(key, " state transition script"):
				in.Hooks[hookKind[strings.TrimSuffix(key, " state transition script")]] = parseCommand(val)
			case hasEq:
				switch key {
				case "Interface":
					in.Interface = val
				case "Sync group":
					in.SyncGroup = val
				case "Virtual Router ID":
					in.VRID, _ = strconv.Atoi(val)
				case "Priority":
					in.Priority, _ = strconv.Atoi(val)
				case "Advert interval":
					in.Advert = val
				case "Preempt":
					in.Preempt = val == "enabled"
				case "Authentication type":
					in.AuthType = val
				case "Password":
					in.AuthPass = val
				}
			case strings.HasPrefix(text, "Virtual IP ("):
				list = &in.VIPs
			case text == "Virtual IP Excluded :":
				list = &in.ExcludedVIPs
			case text == "Unicast Peer :":
				list = &in.UnicastPeers
			case text == "Tracked scripts :":
				list = &in.TrackScripts
			case text == "Tracked files :":
				list = &in.TrackFiles
			case text == "Tracked processes :":
				list = &in.TrackProcesses
			}
		case "VRRP Sync groups":
			if indent == 1 && key == "VRRP Sync Group" {
				name, _, _ := strings.Cut(val, ",")
				sg = &SyncGroup{Name: name, Hooks: map[string]Command{}}
				l.SyncGroups = append(l.SyncGroups, sg)
				continue
			}
			switch {
			case sg == nil:
			case text == "VRRP member instances :":
				list = &sg.Members
			case hasEq && strings.HasSuffix(key, " state transition script"):
				sg.Hooks[hookKind[strings.TrimSuffix(key, " state transition script")]] = parseCommand(val)
			}
		case "VRRP Scripts":
			switch {
			case indent == 1 && key == "VRRP Script":
				sc = &Script{Name: val}
				l.Scripts = append(l.Scripts, sc)
			case sc == nil:
			case key == "Command":
				sc.Command = parseCommand(val)
			case key == "Script uid:gid":
				sc.Command.UIDGID = val
			case key == "Weight":
				sc.Weight, _ = strconv.Atoi(val)
			}
		case "VRRP Track files":
			switch {
			case indent == 1 && key == "Track file":
				tf = &TrackFile{Name: val}
				l.TrackFiles = append(l.TrackFiles, tf)
			case tf == nil:
			case key == "File":
				tf.File = val
			case key == "Weight":
				tf.Weight, _ = strconv.Atoi(val)
			}
		case "VRRP Track processes":
			if indent == 1 && key == "VRRP Track process" {
				l.TrackProcesses = append(l.TrackProcesses, val)
			}
		}
	}
	for _, in := range l.Instances {
		// "vrrp.51, vmac on eth0": the instance's own interface is eth0.
		if _, base, ok := strings.Cut(in.Interface, ", vmac on "); ok {
			in.Interface = base
		}
		for i, v := range in.VIPs {
			in.VIPs[i], _, _ = strings.Cut(v, " ")
		}
		for i, v := range in.ExcludedVIPs {
			in.ExcludedVIPs[i], _, _ = strings.Cut(v, " ")
		}
		for i, v := range in.UnicastPeers {
			in.UnicastPeers[i], _, _ = strings.Cut(v, " ")
		}
	}
	return l
}

// parseCommand reads "'a' 'b c', uid:gid 0:0" (or without the uid part).
// keepalived quotes each argument; an argv[0] it did not resolve to a
// file is printed bare.
func parseCommand(s string) Command {
	var c Command
	if i := strings.LastIndex(s, ", uid:gid "); i >= 0 {
		c.UIDGID = s[i+len(", uid:gid "):]
		s = s[:i]
	}
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		if s[0] != '\'' {
			word, rest, _ := strings.Cut(s, " ")
			c.Argv = append(c.Argv, word)
			s = rest
			continue
		}
		// An argument ends at a quote followed by a space and a quote, or
		// by the end: keepalived prints quotes inside arguments as they are.
		rest := s[1:]
		end := strings.Index(rest, "' '")
		if end < 0 {
			end = strings.LastIndexByte(rest, '\'')
			if end < 0 {
				end = len(rest)
			}
			c.Argv = append(c.Argv, rest[:end])
			break
		}
		c.Argv = append(c.Argv, rest[:end])
		s = rest[end+1:]
	}
	return c
}

// Instance finds an instance by name.
func (l *Loaded) Instance(name string) *Instance {
	for _, in := range l.Instances {
		if in.Name == name {
			return in
		}
	}
	return nil
}
