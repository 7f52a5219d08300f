//go:build !linux

package serve

// runLowPriority runs f; lowering one thread's priority is Linux-only.
func runLowPriority(f func()) { f() }

// threadNice is unknown off Linux.
func threadNice() (int, error) { return 0, nil }
