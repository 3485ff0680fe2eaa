package keepalived_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	fuzzN    = flag.Int("oracle.fuzz", 6, "generated keepalived.conf files TestOracleFuzz checks against keepalived (CI size; use hundreds for a full run)")
	fuzzSeed = flag.Uint64("oracle.seed", 0, "seed of TestOracleFuzz's generator (0: from the clock, logged)")
)

// gen writes random keepalived.conf files from the constructs readers get
// wrong; keepalived, not a model of it, says what they mean.
type gen struct {
	r *rand.Rand
	b strings.Builder
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) script(args string) string {
	cmd := "/usr/local/sbin/" + g.pick("vipctl", "fenced", "check") + " " + args
	switch g.r.IntN(6) {
	case 0:
		return "'" + cmd + "'"
	case 1:
		return cmd // bare: the first word is the script, the next the user
	case 2:
		return `"` + cmd + ` 'a b'"`
	case 3:
		return `"` + cmd + `" root`
	case 4:
		return `"` + cmd + ` $VIP"`
	}
	return `"` + cmd + `"`
}

func (g *gen) line(indent, s string) {
	switch g.r.IntN(12) {
	case 0:
		s += " # c"
	case 1:
		s += " ! c"
	case 2:
		s = "@vipkit-oracle " + s
	case 3:
		s = "@other " + s
	case 4:
		s = "@^other " + s
	}
	g.b.WriteString(indent + s + "\n")
}

func (g *gen) file(names []string) string {
	g.b.Reset()
	g.line("", "$VIP=192.0.2.50")
	g.b.WriteString("global_defs {\n")
	g.line("  ", "script_user root")
	if g.r.IntN(3) == 0 {
		g.line("  ", "vrrp_notify_fifo /run/vipkit/keepalived.fifo")
		g.line("  ", "vrrp_notify_fifo_script "+g.script("fifo"))
	}
	g.b.WriteString("}\n")
	trackers := func() {
		for i := range 2 {
			g.b.WriteString(fmt.Sprintf("vrrp_script s%d {\n", i))
			g.line("  ", "script "+g.script("status --alive"))
			g.line("  ", "weight "+g.pick("0", "2", "-10"))
			g.b.WriteString("}\n")
			g.b.WriteString(fmt.Sprintf("track_file f%d {\n", i))
			g.line("  ", "file "+g.pick("/run/vipkit/f.fence", "'/run/vipkit/f.fence'", `"/run/vipkit/f.fence"`, "$VIP"))
			g.line("  ", "weight 0")
			g.b.WriteString("}\n")
		}
	}
	after := g.r.IntN(3) == 0
	if !after {
		trackers()
	}
	for i, name := range names {
		g.b.WriteString("vrrp_instance " + name + g.pick(" {", "\n{", " {") + "\n")
		body := []string{
			"interface " + g.pick("eth0", "eth1"),
			fmt.Sprintf("virtual_router_id %d", 50+i+g.r.IntN(2)),
			"priority " + g.pick("100", "150", "255", "$VIP"),
			"virtual_ipaddress {\n    192.0.2." + fmt.Sprint(100+i) + g.pick("", "/32", "/24") + "\n    " + g.pick("$VIP", "${VIP}", "$VIP/32", "'192.0.2.9'", "192.0.2.8") + "\n  }",
			"notify_master " + g.script("up"),
			"notify_backup " + g.script("down"),
			"notify " + g.script("notify"),
			"track_script {\n    s" + g.pick("0", "1") + g.pick("", " weight 5") + "\n  }",
			"track_file {\n    f" + g.pick("0", "1") + "\n  }",
		}
		extra := []string{"notify_master " + g.script("again"), "prority 1", "unicast_peers {\n    192.0.2.2\n  }", "garp_master_delay 1", "nopreempt", "notify_fault " + g.script("down") + " \\"}
		for range g.r.IntN(3) {
			body = append(body, extra[g.r.IntN(len(extra))])
		}
		g.r.Shuffle(len(body), func(i, j int) { body[i], body[j] = body[j], body[i] })
		for _, l := range body {
			g.line("  ", l)
		}
		g.b.WriteString("}\n")
	}
	if after {
		trackers()
	}
	if g.r.IntN(2) == 0 {
		g.b.WriteString("vrrp_sync_group G {\n  group {\n    " + strings.Join(names, " ") + "\n  }\n")
		g.line("  ", "notify "+g.script("notify"))
		g.b.WriteString("}\n")
	}
	return g.b.String()
}

// TestOracleFuzz: generated files read as keepalived reads them, or
// reported. -oracle.fuzz sets how many; -oracle.seed replays a run.
func TestOracleFuzz(t *testing.T) {
	requireOracle(t)
	seed := *fuzzSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -oracle.seed=%d)", seed, seed)
	for i := range *fuzzN {
		g := &gen{r: rand.New(rand.NewPCG(seed, uint64(i)))}
		text := g.file([]string{"VI_1", "VI_2"})
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			defer func() {
				if t.Failed() {
					t.Logf("generated file:\n%s", text)
				}
			}()
			agree(t, map[string][]byte{filepath.Join(confDir, "keepalived.conf"): []byte(text)})
		})
	}
}
