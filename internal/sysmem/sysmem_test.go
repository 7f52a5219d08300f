package sysmem

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTotalOnThisMachine(t *testing.T) {
	n, err := Total()
	if err != nil {
		t.Fatal(err)
	}
	if n < 64<<20 || n > 1<<50 {
		t.Fatalf("Total = %d bytes, not a plausible memory size", n)
	}
}

func TestResident(t *testing.T) {
	n, err := Resident()
	if err != nil || n < 1<<20 {
		t.Fatalf("Resident = %d, %v", n, err)
	}
}

func TestParsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if n, err := memTotal(write("meminfo", "MemFree: 1 kB\nMemTotal:       24684092 kB\n")); err != nil || n != 24684092<<10 {
		t.Errorf("memTotal = %d, %v", n, err)
	}
	for _, bad := range []string{"MemFree: 1 kB\n", "MemTotal: lots kB\n"} {
		if _, err := memTotal(write("bad", bad)); err == nil {
			t.Errorf("memTotal accepted %q", bad)
		}
	}
	for content, want := range map[string]int64{"max\n": 0, "9223372036854771712\n": 0, "4294967296\n": 4 << 30} {
		got, ok := cgroupLimit(write("limit", content))
		if got != want || ok != (want > 0) {
			t.Errorf("cgroupLimit(%q) = %d %v, want %d", content, got, ok, want)
		}
	}
	if _, ok := cgroupLimit(filepath.Join(dir, "absent")); ok {
		t.Error("a missing file gave a limit")
	}
}
