package config

import (
	"os"
	"testing"
)

// The shipped example must always parse.
func TestShippedExampleParses(t *testing.T) {
	b, err := os.ReadFile("../../contrib/vipkit.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("contrib/vipkit.toml", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Instances) != 1 || len(c.Clusters) != 1 || c.Instances[0].TrackFile != "/run/vipkit/VI_1.fence" {
		t.Fatalf("parsed %+v", c)
	}
}
