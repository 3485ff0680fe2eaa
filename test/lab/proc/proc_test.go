package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/netnstest"
	"github.com/vipkit/vipkit/test/repo"
)

func TestRenderNodeValues(t *testing.T) {
	in := `global_defs {
    router_id x
}
vrrp_instance VI_1 {
    interface eth0
    priority 100
    unicast_src_ip 192.0.2.11
    unicast_peer {
        192.0.2.12
    }
    virtual_ipaddress { 192.0.2.100/32 }
    notify "/usr/local/sbin/vipctl notify --config /etc/vipkit/vipkit.toml"
    track_file fence
}
track_file fence { file /run/vipkit/VI_1.fence }
# not placeholders: 192.0.2.110 /run/vipkitd /var/run/vipkit 2001:db8::110 veth0
`
	out, err := Render(in, NodeVars{
		Addr4:      "192.0.2.12",
		Vipctl:     "/work/bin/vipctl",
		ConfigPath: "/lab/node-b/vipkit.toml",
		StateDir:   "/lab/node-b/run",
		Extra:      map[string]string{"192.0.2.12": "192.0.2.11"},
		Priority:   90,
		NotifyFIFO: "/lab/node-b/notify.fifo",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"unicast_src_ip 192.0.2.12\n",
		"        192.0.2.11\n",
		"priority 90\n",
		`notify "/work/bin/vipctl notify --config /lab/node-b/vipkit.toml"`,
		"file /lab/node-b/run/VI_1.fence",
		"global_defs {\n    notify_fifo /lab/node-b/notify.fifo\n",
		"192.0.2.110 /run/vipkitd /var/run/vipkit 2001:db8::110 veth0",
		"192.0.2.100/32",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderKeepsExistingFIFO(t *testing.T) {
	in := "global_defs {\n    notify_fifo /x\n    vrrp_notify_fifo /y\n}\n"
	if !HasGenericFIFO(in) || HasGenericFIFO("global_defs {\n vrrp_notify_fifo /y\n}\n") {
		t.Fatal("HasGenericFIFO confuses notify_fifo and vrrp_notify_fifo")
	}
	out, err := Render(in, NodeVars{NotifyFIFO: "/lab"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "/lab") {
		t.Errorf("second notify_fifo added:\n%s", out)
	}
	out, err = Render("vrrp_instance VI_1 {\n}\n", NodeVars{NotifyFIFO: "/lab"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "global_defs {\n    notify_fifo /lab\n}\n") {
		t.Errorf("no global_defs added:\n%s", out)
	}
}

func TestControlConfigIsValid(t *testing.T) {
	if _, err := os.Stat(repo.Keepalived()); err != nil {
		netnstest.Missing(t, "keepalived not installed (make deps installs it)")
	}
	dir := t.TempDir()
	conf, err := Render(ControlConfig, NodeVars{Priority: 150, NotifyFIFO: filepath.Join(dir, "fifo")})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "k.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(repo.Keepalived(), "-t", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("keepalived -t: %v\n%s", err, out)
	}
}

func TestProcLinesSignalsAndStop(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var lines []string
	ready := make(chan struct{})
	p, err := Start(Spec{
		Name: "sh", Path: "/bin/sh",
		Args:    []string{"-c", `trap 'echo term; exit 0' TERM; (sleep 30; echo never) & echo one; while :; do sleep 0.05; done`},
		LogPath: filepath.Join(dir, "sh.log"),
		OnLine: func(_ time.Duration, l string) {
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
			if l == "one" {
				close(ready)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("no output line")
	}
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	// The background sleep of the same group is gone too.
	if members := groupMembers(p.PID, p.startTicks); len(members) != 0 {
		t.Errorf("group members left: %v", members)
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Error("signal to an exited process succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	// The shell may also report its killed children ("Terminated").
	if len(lines) < 2 || lines[0] != "one" || !slices.Contains(lines, "term") {
		t.Errorf("lines = %q", lines)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "sh.log"))
	if !strings.Contains(string(b), "] one\n") || !strings.Contains(string(b), "lab: sh exited") {
		t.Errorf("log:\n%s", b)
	}
}
