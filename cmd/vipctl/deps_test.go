package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Every keepalived hook pays vipctl's start-up: heavy packages must stay
// out of its import graph (DESIGN §6). vipctl fleet shows what fenced saw
// in etcd without etcd: it is in the graph checked here.
func TestImportGraphStaysLight(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "urfave_cli_no_docs", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/vipkit/vipkit/pkg/fleetview") {
		t.Error("vipctl does not link pkg/fleetview: the fleet command is not in the graph this test checks")
	}
	for _, dep := range deps {
		for _, banned := range []string{"go.etcd.io/", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/prometheus/", "net/http", "github.com/cpuguy83/go-md2man", "github.com/vipkit/vipkit/pkg/clidoc"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("vipctl imports %s", dep)
			}
		}
	}
}
