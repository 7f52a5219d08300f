package cpu_test

import (
	"fmt"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/backendtest"
	"github.com/gidedge/gidedge/engine/cpu"
)

func TestConformance(t *testing.T) {
	workers := []int{1, 2, 5}
	if testing.Short() {
		workers = []int{5} // the race-detector pass: splitting across more workers than cores
	}
	for _, workers := range workers {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) { backendtest.Run(t, cpu.New(workers)) })
	}
}

// TestFreedBuffersAreReused checks the allocation cache: a freed buffer's
// storage serves the next allocation of the same size class.
func TestFreedBuffersAreReused(t *testing.T) {
	b := cpu.New(1)
	// sync.Pool may drop an item (always possible, frequent under -race),
	// so ask for reuse several times and require it at least once.
	reused := false
	for i := 0; i < 20 && !reused; i++ {
		before := b.MemStats()
		buf := b.Alloc(backend.Float32, 3000)
		b.Free(buf)
		again := b.Alloc(backend.Float32, 4000) // same power-of-two class
		after := b.MemStats()
		reused = after.ReusedBytes > before.ReusedBytes
		b.Free(again)
	}
	if !reused {
		t.Error("freed buffers of the same size class were never reused")
	}
}
