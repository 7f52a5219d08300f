package serve

import (
	"runtime"
	"testing"
)

func TestRunLowPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are set on Linux only")
	}
	base, err := threadNice()
	if err != nil {
		t.Fatal(err)
	}
	var inside int
	runLowPriority(func() { inside, err = threadNice() })
	if err != nil {
		t.Fatal(err)
	}
	if want := min(base+lowPriorityNice, 19); inside != want {
		t.Fatalf("nice %d inside, want %d (the server's %d + %d)", inside, want, base, lowPriorityNice)
	}
	if after, _ := threadNice(); after != base {
		t.Fatalf("the caller's thread changed priority: %d, was %d", after, base)
	}
}
