package keepalived

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// parse is ParseConf for a single in-memory file, failing the test on error.
func parse(t *testing.T, text string) *Conf {
	t.Helper()
	c, err := ParseConf("keepalived.conf", []byte(text), nil)
	if err != nil {
		t.Fatalf("ParseConf: %v", err)
	}
	return c
}

// TestSplitCommand pins the argv keepalived 2.2.7 gave a logging script for
// each of these notify strings (observed by running it in a namespace).
func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "/x T1 a b  c", want: []string{"/x", "T1", "a", "b", "c"}},
		{in: "/x T2 'b c' d", want: []string{"/x", "T2", "b c", "d"}},
		{in: `/x T5 a "b c" d`, want: []string{"/x", "T5", "a", "b c", "d"}},
		{in: "/x T10 #nocomment x", want: []string{"/x", "T10", "#nocomment", "x"}},
		{in: "/x T11 ''", want: []string{"/x", "T11", ""}},
		{in: "/x T12 a'b c'd e", want: []string{"/x", "T12", "ab cd", "e"}},
		{in: `/x T13 a\ b`, want: []string{"/x", "T13", "a b"}},
		{in: "/x T7 a b c\tq", want: []string{"/x", "T7", "a", "b", "c", "q"}},
		{in: "/x T8 it's", wantErr: true},
		{in: `/x T4 a"b c`, wantErr: true},
		{in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SplitCommand(tt.in)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrInvalid) {
					t.Fatalf("SplitCommand(%q) = %q, %v; want an ErrInvalid error", tt.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestParseConfHookArgv goes through the config-level quoting too: what a
// hook line in keepalived.conf becomes as argv and user.
func TestParseConfHookArgv(t *testing.T) {
	tests := []struct {
		line     string
		wantArgv []string
		wantUser string
		wantErr  string
	}{
		{line: `notify_master "/usr/local/sbin/vipctl up --dev eth0 192.0.2.100"`, wantArgv: []string{"/usr/local/sbin/vipctl", "up", "--dev", "eth0", "192.0.2.100"}},
		{line: `notify_master '/x T5 a "b c" d'`, wantArgv: []string{"/x", "T5", "a", "b c", "d"}},
		{line: `notify_master "/x T7 a\ b c\tq"`, wantArgv: []string{"/x", "T7", "a", "b", "c", "q"}},
		{line: `notify_master "/x T13 a\\ b"`, wantArgv: []string{"/x", "T13", "a b"}},
		{line: `notify_master "/x T14 a#b x!y"`, wantArgv: []string{"/x", "T14", "a#b", "x!y"}},
		{line: `notify_master /usr/local/sbin/vipctl up`, wantArgv: []string{"/usr/local/sbin/vipctl"}, wantUser: "up"},
		{line: `notify_master "/x" root # comment`, wantArgv: []string{"/x"}, wantUser: "root"},
		{line: `notify_master "/x T8 it's"`, wantErr: "missing closing ' quote"},
		{line: `notify_master "/x T6`, wantErr: "unterminated \" quote"},
		{line: `notify_master`, wantErr: "no command given"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			c := parse(t, "vrrp_instance VI_1 {\n"+tt.line+"\n}\n")
			cmd := c.Instance("VI_1").Hooks.Master
			if cmd == nil {
				t.Fatal("no notify_master parsed")
			}
			if tt.wantErr != "" {
				if !strings.Contains(cmd.Err, tt.wantErr) {
					t.Fatalf("Err = %q, want it to contain %q", cmd.Err, tt.wantErr)
				}
				return
			}
			if cmd.Err != "" || !slices.Equal(cmd.Argv, tt.wantArgv) || cmd.User != tt.wantUser {
				t.Fatalf("got argv %q user %q err %q; want argv %q user %q", cmd.Argv, cmd.User, cmd.Err, tt.wantArgv, tt.wantUser)
			}
			if got := cmd.Pos.String(); got != "keepalived.conf:2" {
				t.Fatalf("Pos = %s, want keepalived.conf:2", got)
			}
		})
	}
}

// TestParseConfLayouts: keepalived accepts braces on their own line, whole
// blocks on one line and comments anywhere; all must give the same model.
func TestParseConfLayouts(t *testing.T) {
	layouts := map[string]string{
		"conventional": `
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 150
    virtual_ipaddress {
        192.0.2.100
    }
}`,
		"brace on next line": `
vrrp_instance VI_1
{
    interface eth0   # comment
    virtual_router_id 51
    priority 150 ! other comment
    virtual_ipaddress
    {
        192.0.2.100
    }
}`,
		"one-liners": `
vrrp_instance VI_1 { interface eth0
    virtual_router_id 51
    priority 150#comment
    virtual_ipaddress { 192.0.2.100 } }`,
	}
	for name, text := range layouts {
		t.Run(name, func(t *testing.T) {
			c := parse(t, text)
			in := c.Instance("VI_1")
			if in == nil || in.Interface != "eth0" || in.Priority != 150 || len(in.VIPs) != 1 || in.VIPs[0].Prefix.String() != "192.0.2.100/32" {
				t.Fatalf("got %+v", in)
			}
			if len(c.Problems) != 0 {
				t.Fatalf("problems: %+v", c.Problems)
			}
		})
	}
}

func TestParseConfModel(t *testing.T) {
	c := parse(t, `! vipkit test config
global_defs {
    script_user root wheel
    enable_script_security
    vrrp_notify_fifo /run/vipkit/keepalived.fifo
    vrrp_notify_fifo_script "/usr/local/sbin/vipctl fifo"
    vrrp_garp_master_refresh 60
    vrrp_version 3
    vrrp_strict
}
track_file fence_VI_1 {
    file "/run/vipkit/VI_1.fence"
    weight 0
    init_file 1 overwrite
}
vrrp_track_file old {
    file /run/old
    weight 0 reverse
    init_file
}
track_file plain {
    file /run/plain
}
vrrp_track_process fenced {
    process fenced --flag
    weight 0
    quorum 2
}
vrrp_script fenced_alive {
    user nobody
    script "/usr/local/sbin/fenced status --alive"
    interval 2
    fall 3
    rise 4
    weight -10 reverse
}
vrrp_sync_group VG_1 {
    group {
        VI_1 VI_2
        VI_3
    }
    sync_group_tracking_weight
    notify "/usr/local/sbin/vipctl notify"
    track_file {
        plain weight 0
    }
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    version 2
    strict_mode off
    virtual_ipaddress {
        192.0.2.100/24 dev eth1 no_track
        192.0.2.101
    }
    virtual_ipaddress_excluded {
        2001:db8::100
    }
    virtual_routes {
        src 192.0.2.11 to local 192.0.2.100/32 dev eth0 table local scope host
        local 192.0.2.101/32 dev eth0 table local scope host prepend
        192.0.2.0/25 via 192.0.2.1 no_track
        blackhole default
    }
    track_file {
        fence_VI_1
        old weight 5 reverse
    }
    track_process {
        fenced weight 0
    }
    track_script {
        fenced_alive
    }
    notify_deleted
    garp_master_refresh 10
}
`)
	g := c.Global
	if g.ScriptUser != "root" || g.ScriptGroup != "wheel" || !g.EnableScriptSecurity || g.VRRPNotifyFIFO.Path != "/run/vipkit/keepalived.fifo" ||
		!slices.Equal(g.VRRPNotifyFIFO.Script.Argv, []string{"/usr/local/sbin/vipctl", "fifo"}) || g.GarpMasterRefresh != 60 || g.VRRPVersion != 3 || !g.VRRPStrict {
		t.Errorf("global: %+v", g)
	}
	if tf := c.TrackFile("fence_VI_1"); tf == nil || tf.File != "/run/vipkit/VI_1.fence" || tf.Weight != 0 || !tf.WeightSet || !tf.InitFile || tf.InitValue != 1 || !tf.InitOverwrite {
		t.Errorf("fence_VI_1: %+v", tf)
	}
	if tf := c.TrackFile("old"); tf == nil || tf.File != "/run/old" || !tf.Reverse || !tf.InitFile || tf.InitValue != 0 || tf.InitOverwrite {
		t.Errorf("old: %+v", tf)
	}
	if tf := c.TrackFile("plain"); tf == nil || tf.Weight != 1 || tf.WeightSet {
		t.Errorf("plain (keepalived's default weight is 1): %+v", tf)
	}
	if tp := c.TrackProcess("fenced"); tp == nil || tp.Keyword != "vrrp_track_process" || !slices.Equal(tp.Process, []string{"fenced", "--flag"}) || tp.Weight != 0 || tp.Quorum != 2 {
		t.Errorf("fenced: %+v", tp)
	}
	if sc := c.Script("fenced_alive"); sc == nil || sc.Command == nil || sc.Command.User != "nobody" || sc.Interval != 2 || sc.Fall != 3 || sc.Rise != 4 || sc.Weight != -10 || !sc.Reverse ||
		!slices.Equal(sc.Command.Argv, []string{"/usr/local/sbin/fenced", "status", "--alive"}) {
		t.Errorf("fenced_alive: %+v", sc)
	}
	sg := c.SyncGroup("VG_1")
	if sg == nil || !slices.Equal(sg.Members, []string{"VI_1", "VI_2", "VI_3"}) || sg.Hooks.Notify == nil || len(sg.TrackFiles) != 1 {
		t.Errorf("VG_1: %+v", sg)
	}
	in := c.Instance("VI_1")
	if in == nil {
		t.Fatal("no VI_1")
	}
	if in.SyncGroup != "VG_1" || in.State != "BACKUP" || in.VirtualRouterID != 51 || in.Version != 2 || in.StrictMode || in.GarpMasterRefresh != 10 {
		t.Errorf("VI_1: %+v", in)
	}
	if len(in.VIPs) != 2 || in.VIPs[0].Prefix.String() != "192.0.2.100/24" || !slices.Equal(in.VIPs[0].Options, []string{"dev", "eth1", "no_track"}) || in.VIPs[1].Prefix.String() != "192.0.2.101/32" {
		t.Errorf("VIPs: %+v", in.VIPs)
	}
	if len(in.ExcludedVIPs) != 1 || in.ExcludedVIPs[0].Prefix.String() != "2001:db8::100/128" {
		t.Errorf("excluded: %+v", in.ExcludedVIPs)
	}
	wantRoutes := []struct {
		typ              string
		prepend, noTrack bool
	}{{"local", false, false}, {"local", true, false}, {"", false, true}, {"blackhole", false, false}}
	if len(in.Routes) != len(wantRoutes) {
		t.Fatalf("routes: %+v", in.Routes)
	}
	for i, w := range wantRoutes {
		if r := in.Routes[i]; r.Type != w.typ || r.Prepend != w.prepend || r.NoTrack != w.noTrack {
			t.Errorf("route %d %q: type %q prepend %v no_track %v; want %+v", i, r.Words, r.Type, r.Prepend, r.NoTrack, w)
		}
	}
	if len(in.TrackFiles) != 2 || in.TrackFiles[1] != (TrackRef{Name: "old", Weight: 5, WeightSet: true, Reverse: true, Pos: Pos{"keepalived.conf", 70}}) {
		t.Errorf("track_file refs: %+v", in.TrackFiles)
	}
	if len(in.TrackProcesses) != 1 || !in.TrackProcesses[0].WeightSet || len(in.TrackScripts) != 1 || in.TrackScripts[0].WeightSet {
		t.Errorf("track refs: %+v %+v", in.TrackProcesses, in.TrackScripts)
	}
	if in.Hooks.Deleted == nil || in.Hooks.Deleted.Err != "" || len(in.Hooks.Deleted.Argv) != 0 {
		t.Errorf("bare notify_deleted: %+v", in.Hooks.Deleted)
	}
	if len(c.Problems) != 0 {
		t.Errorf("problems: %+v", c.Problems)
	}
}

func TestParseConfProblems(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // "line:message fragment"
		syntax     bool
	}{
		{name: "unclosed block", text: "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n", want: []string{`1:block "vrrp_instance VI_1" is never closed`}, syntax: true},
		{name: "stray brace", text: "global_defs {\n}\n}\n", want: []string{"3:'}' without a matching '{'"}, syntax: true},
		{name: "bad number", text: "vrrp_instance VI_1 {\n virtual_router_id 1\n priority high\n interface eth0\n}\n", want: []string{`3:priority: "high" is not a number`}, syntax: true},
		{name: "bad address", text: "vrrp_instance VI_1 {\n virtual_router_id 1\n interface eth0\n virtual_ipaddress {\n  192.0.2.300\n }\n}\n", want: []string{`5:virtual_ipaddress: "192.0.2.300" is not an IP address`}, syntax: true},
		{name: "no vrid", text: "vrrp_instance VI_1 {\n interface eth0\n}\n", want: []string{`1:vrrp_instance VI_1 has no valid virtual_router_id`}, syntax: true},
		{name: "conditional line", text: "@node1 global_defs {\n}\n", want: []string{"1:conditional line (@...) read as if it applied"}},
		{name: "sequence line", text: "~SEQ(A, 1, 3) ip_address 10.0.$A.1\n", want: []string{"1:sequence and list lines are not checked"}},
		{name: "unfollowed include", text: "include /etc/keepalived/conf.d/*.conf\n", want: []string{"1:include /etc/keepalived/conf.d/*.conf not followed"}},
		{name: "include without name", text: "include\n", want: []string{"1:include takes exactly one"}, syntax: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parse(t, tt.text)
			var got []string
			for _, p := range c.Problems {
				got = append(got, fmt.Sprintf("%d:%s", p.Pos.Line, p.Msg))
				if p.Syntax != tt.syntax {
					t.Errorf("problem %+v: Syntax = %v, want %v", p, p.Syntax, tt.syntax)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %q, want prefix %q", got[i], tt.want[i])
				}
			}
		})
	}
}

// TestParseConfParameters: $NAME=value definitions are substituted, so a
// config written with them is checked like the expanded one.
func TestParseConfParameters(t *testing.T) {
	c := parse(t, "$VIP=192.0.2.100\n$IF=eth0\nvrrp_instance VI_1 {\n interface ${IF}\n virtual_ipaddress {\n  $VIP\n }\n notify \"/x $UNDEFINED\"\n}\n")
	in := c.Instance("VI_1")
	if in.Interface != "eth0" || len(in.VIPs) != 1 || in.VIPs[0].Raw != "192.0.2.100" || !slices.Equal(in.Hooks.Notify.Argv, []string{"/x", "$UNDEFINED"}) {
		t.Fatalf("got %+v", in)
	}
	if got := in.VIPs[0].Pos.Line; got != 6 {
		t.Fatalf("VIP at line %d, want 6", got)
	}
}

func TestParseConfIncludes(t *testing.T) {
	files := map[string]string{
		"/etc/keepalived/conf.d/a.conf":  "vrrp_instance VI_A {\n interface eth0\n virtual_router_id 2\n}\n",
		"/etc/keepalived/conf.d/b.conf":  "vrrp_instance VI_B {\n interface eth1\n virtual_router_id 3\n}\n",
		"/etc/keepalived/vips.inc":       "192.0.2.100\n192.0.2.101\n",
		"/etc/keepalived/loop.conf":      "include loop.conf\n",
		"/etc/keepalived/sub/inner.conf": "include ../vips.inc\n",
	}
	var asked []string
	include := func(pattern string) ([]File, error) {
		asked = append(asked, pattern)
		if pattern == "/etc/keepalived/broken.conf" {
			return nil, errors.New("permission denied")
		}
		var out []File
		for _, name := range []string{"/etc/keepalived/conf.d/a.conf", "/etc/keepalived/conf.d/b.conf", "/etc/keepalived/vips.inc", "/etc/keepalived/loop.conf", "/etc/keepalived/sub/inner.conf"} {
			if ok, _ := filepath.Match(pattern, name); ok {
				out = append(out, File{Name: name, Data: []byte(files[name])})
			}
		}
		return out, nil
	}
	main := "include conf.d/*.conf\nvrrp_instance VI_1 {\n virtual_router_id 1\n interface eth0\n virtual_ipaddress {\n  include sub/inner.conf\n }\n}\ninclude /etc/keepalived/loop.conf\n"
	c, err := ParseConf("/etc/keepalived/keepalived.conf", []byte(main), include)
	if err != nil {
		t.Fatal(err)
	}
	wantAsked := []string{"/etc/keepalived/conf.d/*.conf", "/etc/keepalived/sub/inner.conf", "/etc/keepalived/vips.inc", "/etc/keepalived/loop.conf", "/etc/keepalived/loop.conf"}
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("include patterns %q, want %q (relative to the including file)", asked, wantAsked)
	}
	if c.Instance("VI_A") == nil || c.Instance("VI_B").Interface != "eth1" {
		t.Errorf("instances from conf.d: %+v", c.Instances)
	}
	in := c.Instance("VI_1")
	if len(in.VIPs) != 2 || in.VIPs[1].Pos.String() != "/etc/keepalived/vips.inc:2" {
		t.Errorf("VIPs included inside the block: %+v", in.VIPs)
	}
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Msg, "recurses into it without end") || !c.Problems[0].Fatal {
		t.Errorf("problems %+v, want one include loop", c.Problems)
	}
	wantFiles := []string{"/etc/keepalived/keepalived.conf", "/etc/keepalived/conf.d/a.conf", "/etc/keepalived/conf.d/b.conf", "/etc/keepalived/sub/inner.conf", "/etc/keepalived/vips.inc", "/etc/keepalived/loop.conf"}
	if !slices.Equal(c.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", c.Files, wantFiles)
	}

	_, err = ParseConf("/etc/keepalived/keepalived.conf", []byte("\n\ninclude broken.conf\n"), include)
	if err == nil || !strings.Contains(err.Error(), "include /etc/keepalived/broken.conf at /etc/keepalived/keepalived.conf:3: permission denied") {
		t.Fatalf("include error = %v", err)
	}
}

// FuzzParseConf: any input parses without panicking, and every position it
// reports is a line of the input.
func FuzzParseConf(f *testing.F) {
	for _, s := range []string{
		"vrrp_instance VI_1 {\n interface eth0\n virtual_ipaddress { 192.0.2.100 }\n notify \"/x a 'b c'\"\n}\n",
		"global_defs { script_user root\n}\n}\n{\n",
		"track_file f { file \"/x\" weight 0 init_file 1 overwrite }\n",
		"vrrp_sync_group G { group { A B } notify_master \"/x\n}",
		"$A=1\n$B=${A}${A}\nvrrp_instance $B {\n priority ${B}\n}\n",
		"vrrp_instance V {\n virtual_routes {\n local 1.2.3.4/32 prepend\n }\n track_file {\n x weight\n }\n}\n",
		"include x\n\"\\",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		include := func(pattern string) ([]File, error) {
			return []File{{Name: "inc", Data: []byte(text)}}, nil
		}
		c, err := ParseConf("main", []byte(text), include)
		if err != nil {
			t.Fatalf("ParseConf with a working include returned %v", err)
		}
		lines := strings.Count(text, "\n") + 1
		for _, p := range c.Problems {
			if p.Pos.Line < 0 || p.Pos.Line > lines {
				t.Fatalf("problem %+v outside the input's %d lines", p, lines)
			}
		}
	})
}

// TestParseConfIncludeLoopIsLinear: a glob whose files all include the
// glob again (keepalived recurses into it without end) is reported at
// the first repetition; reading it costs one pattern per file, not a
// visit of every order of the files (8 files took 34 s and 780 MB).
func TestParseConfIncludeLoopIsLinear(t *testing.T) {
	for _, n := range []int{1, 8, 64} {
		files := map[string]string{}
		for i := range n {
			files[fmt.Sprintf("/etc/keepalived/conf.d/%03d.conf", i)] = "include *.conf\n"
		}
		calls := 0
		include := func(pattern string) ([]File, error) {
			calls++
			var out []File
			for i := range n {
				name := fmt.Sprintf("/etc/keepalived/conf.d/%03d.conf", i)
				if ok, _ := filepath.Match(pattern, name); ok {
					out = append(out, File{Name: name, Data: []byte(files[name])})
				}
			}
			return out, nil
		}
		c, err := ParseConf("/etc/keepalived/keepalived.conf", []byte("include conf.d/*.conf\n"), include)
		if err != nil {
			t.Fatal(err)
		}
		if c.Fatal() == nil || !strings.Contains(c.Fatal().Msg, "recurses into it without end") {
			t.Errorf("%d files: problems %+v, want the loop", n, c.Problems)
		}
		if calls > 2 {
			t.Errorf("%d files: %d include patterns followed, want at most 2", n, calls)
		}
	}
}

// TestParseConfMissingInclude: a pattern that matches nothing is what
// keepalived logs as "Config files missing" and reads on without.
func TestParseConfMissingInclude(t *testing.T) {
	none := func(string) ([]File, error) { return nil, nil }
	c, err := ParseConf("/etc/keepalived/keepalived.conf", []byte("include conf.d/*.conf\n"), none)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Msg, "include /etc/keepalived/conf.d/*.conf matches no file: keepalived logs \"Config files missing\"") || !c.Problems[0].Syntax || c.Problems[0].Fatal {
		t.Errorf("problems %+v, want the missing include", c.Problems)
	}
}

// TestParseConfByRelease: where keepalived 2.2.7 and 2.3.3 read the same
// text differently (TestOracleVariants shows each against the binary),
// the reader follows the release it is given.
func TestParseConfByRelease(t *testing.T) {
	v227, v233 := Version{2, 2, 7}, Version{2, 3, 3}
	syncGroup := "vrrp_instance VI_1 {\n}\nvrrp_instance VI_2 {\n}\nvrrp_sync_group G {\n  group {\n    VI_1\n  }\n  group {\n    VI_2\n  }\n  notify_master \"/x gm\"\n}\n"
	tests := []struct {
		name    string
		release Version
		text    string
		check   func(t *testing.T, c *Conf)
	}{
		{"script escapes 2.2.7", v227, "vrrp_instance VI_1 {\n  notify_stop \"/x 'a b' \\\"q\\\" c\\\\ d\"\n}\n", func(t *testing.T, c *Conf) {
			wantArgv(t, c, []string{"/x", "a b", "q", "c d"})
		}},
		{"script escapes 2.3.3", v233, "vrrp_instance VI_1 {\n  notify_stop \"/x 'a b' \\\"q\\\" c\\\\ d\"\n}\n", func(t *testing.T, c *Conf) {
			wantArgv(t, c, []string{"/x", "a b", `"q"`, `c\`, "d"})
		}},
		{"unknown release reads as 2.2.7", Version{}, "vrrp_instance VI_1 {\n  notify_stop \"/x \\\"q\\\"\"\n}\n", func(t *testing.T, c *Conf) {
			wantArgv(t, c, []string{"/x", "q"})
		}},
		{"second sync group list 2.2.7", v227, syncGroup, func(t *testing.T, c *Conf) {
			g := c.SyncGroup("G")
			if g == nil || !slices.Equal(g.Members, []string{"VI_1"}) || g.Hooks.Master == nil {
				t.Fatalf("2.2.7 keeps G with its first list and its hook: %+v", g)
			}
		}},
		{"second sync group list 2.3.3", v233, syncGroup, func(t *testing.T, c *Conf) {
			if g := c.SyncGroup("G"); g != nil {
				t.Fatalf("2.3.3 drops G, got %+v", g)
			}
			var said []string
			for _, p := range c.Problems {
				said = append(said, p.Msg)
			}
			all := strings.Join(said, "\n")
			for _, want := range []string{"drops the whole group", `unknown top-level keyword "notify_master"`, "'}' without a matching '{'"} {
				if !strings.Contains(all, want) {
					t.Errorf("problems do not say %q:\n%s", want, all)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConf("keepalived.conf", []byte(tt.text), nil, Options{Release: tt.release})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func wantArgv(t *testing.T, c *Conf, want []string) {
	t.Helper()
	in := c.Instance("VI_1")
	if in == nil || in.Hooks.Stop == nil {
		t.Fatal("no notify_stop parsed")
	}
	if got := in.Hooks.Stop.Argv; !slices.Equal(got, want) {
		t.Fatalf("argv %q, want %q", got, want)
	}
}
