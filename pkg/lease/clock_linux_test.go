package lease_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vipkit/vipkit/pkg/lease"
)

func TestSystemClockIsBoottime(t *testing.T) {
	c := lease.SystemClock()
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		t.Fatal(err)
	}
	a := c.Now()
	b := c.Now()
	// CLOCK_BOOTTIME = CLOCK_MONOTONIC + time spent suspended.
	if a < time.Duration(mono.Nano()) || b < a {
		t.Fatalf("boottime %s then %s, monotonic %s", a, b, time.Duration(mono.Nano()))
	}
}

func TestSystemClockTimer(t *testing.T) {
	c := lease.SystemClock()
	tm, err := c.NewTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()

	at := c.Now() + 20*time.Millisecond
	tm.Reset(at)
	select {
	case <-tm.C():
		if now := c.Now(); now < at {
			t.Fatalf("fired at %s, before %s", now, at)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timer did not fire")
	}

	tm.Reset(c.Now() - time.Second) // in the past: at once
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("timer set in the past did not fire")
	}

	tm.Reset(c.Now() + time.Hour) // re-arming replaces the earlier time
	tm.Reset(c.Now() + 10*time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("re-armed timer did not fire")
	}
}

// Decisions must run on the injected CLOCK_BOOTTIME clock: Go's own clock
// (wall or monotonic) stops in suspend. Only clock_linux.go may read it;
// context timeouts of single requests are fine.
func TestNoGoClockInHolder(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	banned := map[string]bool{"Now": true, "Since": true, "Until": true, "After": true, "AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true, "Sleep": true}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "clock_linux.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" && banned[sel.Sel.Name] {
					t.Errorf("%s: time.%s: use the holder's Clock", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
}
