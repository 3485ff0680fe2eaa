package main

import (
	"os/exec"
	"strings"
	"testing"
)

// Every keepalived hook pays vipctl's start-up: heavy packages must stay
// out of its import graph (DESIGN §6).
func TestImportGraphStaysLight(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "urfave_cli_no_docs", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/prometheus/", "net/http", "github.com/cpuguy83/go-md2man", "github.com/vipkit/vipkit/pkg/clidoc"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("vipctl imports %s", dep)
			}
		}
	}
}
