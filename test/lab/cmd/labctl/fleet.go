package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vipkit/vipkit/pkg/fleetview"
	"github.com/vipkit/vipkit/test/lab"
	"github.com/vipkit/vipkit/test/lab/observe"
	"github.com/vipkit/vipkit/test/lab/vipkit"
)

// fleetWatch shows `vipctl fleet` around the split brain: it polls node
// n's record (what vipctl fleet reads) and, the first time it flags a dual
// owner, runs vipctl fleet there and keeps its output.
type fleetWatch struct {
	v       *vipkit.Lab
	n       *lab.Node
	stop    context.CancelFunc
	wg      sync.WaitGroup
	at      time.Duration // lab time of the first look that flagged it
	during  string
	problem error
}

func watchFleet(ctx context.Context, v *vipkit.Lab, n *lab.Node) *fleetWatch {
	ctx, stop := context.WithCancel(ctx)
	w := &fleetWatch{v: v, n: n, stop: stop, at: observe.None}
	w.wg.Go(func() {
		for ctx.Err() == nil {
			// Only the split brain's: a reset before it may move the VIP.
			if r, err := v.FleetView(n); err == nil && v.Isolated() && dual(r) {
				w.at = v.TL.Now()
				w.during, w.problem = v.Vipctl(ctx, n, "fleet")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return w
}

func dual(r fleetview.Report) bool {
	for _, ir := range r.Instances {
		if ir.Problem == fleetview.DualOwner {
			return true
		}
	}
	return false
}

// report ends the watch and prints what vipctl fleet said during the split
// brain (second is node-b's MASTER) and, once the record is clean again,
// after the heal.
func (w *fleetWatch) report(ctx context.Context, out io.Writer, r *vipkit.Result) error {
	w.stop()
	w.wg.Wait()
	if w.problem != nil {
		return w.problem
	}
	if w.at == observe.None {
		fmt.Fprintf(out, "\nvipctl fleet on %s never flagged the split brain.\n", w.n.Name)
		return nil
	}
	second := observe.None
	for _, e := range w.v.TL.Events(func(e observe.Event) bool {
		return e.Kind == observe.KindState && e.Host != w.n.Name && e.State == "MASTER" && e.At >= r.Fault && e.At <= w.at
	}) {
		if second == observe.None {
			second = e.At
		}
	}
	fmt.Fprintf(out, "\nvipctl fleet on %s during the split brain (flagged %s after the second MASTER):\n%s",
		w.n.Name, d(w.at-second), indent(w.during))
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := w.v.FleetView(w.n)
		if err == nil && rep.Problems == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the fleet view on %s still flags a problem 10 s after the heal", w.n.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after, err := w.v.Vipctl(ctx, w.n, "fleet")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "and after the heal:\n%s", indent(after))
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}
