package driver

import (
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"sync"
)

// Buffer is a block of device memory from an Allocator.
type Buffer struct {
	Ptr   DevicePtr
	Bytes int // the size asked for; the block may be larger
	class int // the rounded size the block really has
}

// Allocator is a caching device allocator: sizes are rounded up to a size
// class, freed blocks are kept per class and handed out again, and the
// driver is asked for memory only when no cached block fits. Under memory
// pressure it returns its cache to the driver and retries once before
// reporting ErrOutOfMemory.
//
// Blocks are reused in the order of one stream: Free a buffer only after
// the work that uses it has been queued on the stream later allocations use
// (or after waiting for the other stream), exactly as with PyTorch's
// caching allocator.
type Allocator struct {
	c     *Context
	mu    sync.Mutex
	free  map[int][]DevicePtr // size class → cached blocks
	stats AllocStats
}

// AllocStats are an allocator's counters.
type AllocStats struct {
	InUseBytes   int64 // held by live Buffers (rounded sizes)
	CachedBytes  int64 // freed blocks kept for reuse
	PeakBytes    int64 // highest InUseBytes + CachedBytes
	DriverAllocs int64 // cuMemAlloc calls
	Reuses       int64 // allocations served from the cache
	Trims        int64 // cache releases forced by out-of-memory
	FreshBytes   int64 // total of the blocks newly taken from the driver
	ReusedBytes  int64 // total of the blocks served from the cache
}

// Figures names the counters as the run log prints them.
func (s AllocStats) Figures() []Figure {
	return []Figure{
		{"gidedge_cuda_memory_in_use_bytes", float64(s.InUseBytes)},
		{"gidedge_cuda_memory_cached_bytes", float64(s.CachedBytes)},
		{"gidedge_cuda_memory_peak_bytes", float64(s.PeakBytes)},
		{"gidedge_cuda_driver_allocs_total", float64(s.DriverAllocs)},
		{"gidedge_cuda_allocator_reuses_total", float64(s.Reuses)},
		{"gidedge_cuda_allocator_trims_total", float64(s.Trims)},
	}
}

// Figure is one named value of a run log.
type Figure struct {
	Name  string
	Value float64
}

func (f Figure) String() string { return fmt.Sprintf("%s %g", f.Name, f.Value) }

// NewAllocator returns an empty allocator over c.
func NewAllocator(c *Context) *Allocator {
	return &Allocator{c: c, free: map[int][]DevicePtr{}}
}

// sizeClass rounds n up: to 512 bytes below 4 KiB, above that to a
// quarter of the power of two below it (2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k),
// so at most a fifth of a block is slack and freed blocks fit many later
// requests.
func sizeClass(n int) int {
	if n <= 4096 {
		return (n + 511) &^ 511
	}
	k := bits.Len(uint(n-1)) - 1 // 2^k < n ≤ 2^(k+1)
	step := 1 << (k - 2)
	return (n + step - 1) / step * step
}

// Alloc returns a block of at least bytes.
func (a *Allocator) Alloc(bytes int) (Buffer, error) {
	if bytes <= 0 {
		return Buffer{}, argError("Allocator.Alloc", "%d bytes requested, want a positive size", bytes)
	}
	class := sizeClass(bytes)
	a.mu.Lock()
	defer a.mu.Unlock()
	if blocks := a.free[class]; len(blocks) > 0 {
		p := blocks[len(blocks)-1]
		a.free[class] = blocks[:len(blocks)-1]
		a.stats.CachedBytes -= int64(class)
		a.stats.InUseBytes += int64(class)
		a.stats.Reuses++
		a.stats.ReusedBytes += int64(class)
		return Buffer{Ptr: p, Bytes: bytes, class: class}, nil
	}
	p, err := a.c.Alloc(class)
	if errors.Is(err, ErrOutOfMemory) && a.stats.CachedBytes > 0 {
		a.stats.Trims++
		if terr := a.trimLocked(); terr != nil {
			return Buffer{}, terr
		}
		p, err = a.c.Alloc(class)
	}
	if err != nil {
		if errors.Is(err, ErrOutOfMemory) {
			var e *Error
			if errors.As(err, &e) {
				e2 := *e
				e2.Detail = fmt.Sprintf("%s requested, %s already in use by gidedge", formatBytes(uint64(class)), formatBytes(uint64(a.stats.InUseBytes)))
				return Buffer{}, &e2
			}
		}
		return Buffer{}, err
	}
	a.stats.DriverAllocs++
	a.stats.FreshBytes += int64(class)
	a.stats.InUseBytes += int64(class)
	a.stats.PeakBytes = max(a.stats.PeakBytes, a.stats.InUseBytes+a.stats.CachedBytes)
	return Buffer{Ptr: p, Bytes: bytes, class: class}, nil
}

// Free returns b to the cache; b must not be used afterwards.
func (a *Allocator) Free(b Buffer) {
	if b.Ptr == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free[b.class] = append(a.free[b.class], b.Ptr)
	a.stats.InUseBytes -= int64(b.class)
	a.stats.CachedBytes += int64(b.class)
}

// Trim returns every cached block to the driver.
func (a *Allocator) Trim() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.trimLocked()
}

func (a *Allocator) trimLocked() error {
	// Freeing implies waiting for the device, so in-flight work that still
	// reads a cached block finishes first.
	classes := make([]int, 0, len(a.free))
	for c := range a.free {
		classes = append(classes, c)
	}
	sort.Ints(classes)
	var first error
	for _, c := range classes {
		for _, p := range a.free[c] {
			if err := a.c.Free(p); err != nil && first == nil {
				first = err
			}
			a.stats.CachedBytes -= int64(c)
		}
		delete(a.free, c)
	}
	return first
}

// Stats returns the counters.
func (a *Allocator) Stats() AllocStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}
