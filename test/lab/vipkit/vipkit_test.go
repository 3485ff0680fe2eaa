package vipkit

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/vipkit/vipkit/test/netnstest"
)

func newLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged lab test: skipped with -short")
	}
	netnstest.Require(t)
	opts.Lab.Name = t.Name()
	if testing.Verbose() {
		opts.Lab.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		t.Logf("lab results in %s", v.Dir)
	})
	return v
}

// Every mode composes into a lab that reaches the steady state: keepalived
// accepts the rendered config, its hooks find the node's vipkit.toml,
// fenced gets its lease and unfences, node-a is elected.
func TestPrivilegedUp(t *testing.T) {
	for _, m := range Modes {
		t.Run(m.Short(), func(t *testing.T) {
			v := newLab(t, Options{Mode: m})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, at, err := v.Up(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("steady %s after start", v.TL.Now()-at)
		})
	}
}
