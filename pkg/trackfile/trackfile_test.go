package trackfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vipkit/vipkit/test/netnstest"
)

func TestWriteRead(t *testing.T) {
	for name, write := range map[string]func(string, int) error{"Write": Write, "Publish": Publish} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "VI_1.fence")
			if v, ok, err := Read(p); v != 0 || ok || err != nil {
				t.Fatalf("Read(missing) = %d, %v, %v", v, ok, err)
			}
			for _, want := range []int{Fault, OK, Fault} {
				if err := write(p, want); err != nil {
					t.Fatal(err)
				}
				v, ok, err := Read(p)
				if v != want || !ok || err != nil {
					t.Fatalf("Read after %s(%d) = %d, %v, %v", name, want, v, ok, err)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("directory holds %d entries, want only the track file (temp files left behind?)", len(entries))
			}
			st, _ := os.Stat(p)
			if st.Mode().Perm() != 0o644 {
				t.Errorf("mode = %04o, want 0644", st.Mode().Perm())
			}
		})
	}
}

func TestWriteMissingDir(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), Fault); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestParseLikeStrtol(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"1\n", 1}, {"0\n", 0}, {"", 0}, {"abc", 0}, {"  7x", 7}, {"-3", -3}, {"+2", 2}, {"99999999999", 0},
	}
	for _, tt := range tests {
		if got := parse([]byte(tt.in)); got != tt.want {
			t.Errorf("parse(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestCheckDir(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Missing(t, "ownership check needs root-owned temp dirs")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); err != nil {
		t.Fatalf("CheckDir(0700 root) = %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); !errors.Is(err, ErrUnsafeDir) {
		t.Fatalf("CheckDir(0777) = %v, want ErrUnsafeDir", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("1\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = parse([]byte(s))
	})
}

// A failure after the temp file was created must be reported, not lost:
// fencing depends on knowing the file says 1.
func TestWriteReportsRenameFailure(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "VI_1.fence")
	if err := os.Mkdir(target, 0o700); err != nil { // rename onto a directory fails
		t.Fatal(err)
	}
	if err := Write(target, Fault); err == nil {
		t.Fatal("Write reported success although the rename failed")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp file left behind: %v", entries)
	}
}
