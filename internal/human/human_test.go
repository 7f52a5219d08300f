package human

import "testing"

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{20992, "20.5 KiB"},
		{1<<20 - 1, "1024.0 KiB"},
		{1 << 20, "1.00 MiB"},
		{2422210, "2.31 MiB"},
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestCounts(t *testing.T) {
	if got := Counts(map[string]int{"Conv": 3, "Add": 1}, "%s ×%d"); got != "Add ×1, Conv ×3" {
		t.Errorf("Counts = %q", got)
	}
	if got := Counts(nil, "%s %d"); got != "" {
		t.Errorf("Counts(nil) = %q, want empty", got)
	}
}
