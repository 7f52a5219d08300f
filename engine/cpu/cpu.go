// Package cpu is the engine's CPU backend: GEMM through OpenBLAS
// cblas_sgemm (cgo, libopenblas-dev), convolutions as shifted GEMMs,
// im2col + GEMM or direct depthwise loops, and goroutine workers that split
// every large kernel. Importing it registers the device "cpu".
//
// OpenBLAS is pinned to one thread; parallelism comes from splitting work
// across goroutines (images, channels, element ranges), which keeps the
// many small GEMMs of a conv net efficient. Work is split into fixed
// contiguous chunks and partial sums are combined in worker order, so a
// run with the same worker count gives the same numbers.
//
// Memory is host memory shared with the reference backend (*ref.Buffer),
// cached by power-of-two size so a training step reuses the previous
// step's buffers once the engine has released them. Kernels that have no
// faster CPU form than the reference loop (softmax, gathers, row losses,
// ROIAlign) call package ref, on sub-ranges across workers where that
// pays.
//
// Errors: kernels given inconsistent arguments panic with a
// *backend.Error before any C call.
package cpu

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
*/
import "C"

import (
	"fmt"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// Name is the device name of this backend.
const Name = "cpu"

func init() {
	backend.Register(Name, func() (backend.Backend, error) { return New(runtime.GOMAXPROCS(0)), nil })
}

// Backend is the CPU implementation of backend.Backend.
type Backend struct {
	workers int
	// ref runs the kernels this backend takes from the reference.
	ref *ref.Backend
}

var (
	_ backend.Backend         = (*Backend)(nil)
	_ backend.ActivationFuser = (*Backend)(nil)
)

var setThreads sync.Once

// New returns a CPU backend that splits work over the given number of workers.
func New(workers int) *Backend {
	if workers < 1 {
		workers = 1
	}
	setThreads.Do(func() {
		chooseOpenBLASCore()
		C.openblas_set_num_threads(1)
	})
	return &Backend{workers: workers, ref: ref.New()}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Describe implements backend.Backend.
func (b *Backend) Describe() string {
	d := fmt.Sprintf("cpu: %d workers, OpenBLAS %s", b.workers, OpenBLASConfig())
	if c := OpenBLASCoreChoice(); c != "" {
		d += " (" + c + ")"
	}
	return d
}

// Workers is how many goroutines a kernel uses at most.
func (b *Backend) Workers() int { return b.workers }

// OpenBLASConfig returns OpenBLAS's build description (version, core).
func OpenBLASConfig() string {
	return strings.TrimSpace(C.GoString(C.openblas_get_config()))
}

// SetBLASThreads sets OpenBLAS's own thread count (used by the sgemm reference benchmark).
func SetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// floats returns the values of a host buffer (nil for nil).
func floats(kernel string, buf backend.Buffer, n int) []float32 {
	return ref.Floats(Name, kernel, buf, n)
}

// dest returns a wanted destination's values and whether to add into them.
func dest(kernel string, d backend.Dest, n int) ([]float32, bool) {
	if d.Buf == nil {
		return nil, false
	}
	return floats(kernel, d.Buf, n), d.Accumulate
}

// Buffers are cached by power-of-two capacity so a training step reuses the
// previous step's memory once the engine has released its graph.
var (
	pools                   [40]sync.Pool
	reusedBytes, freshBytes atomic.Int64
)

func bucket(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns a slice of length n with undefined contents.
func getBuf(n int) []float32 {
	if n == 0 {
		return nil
	}
	b := bucket(n)
	if v := pools[b].Get(); v != nil {
		reusedBytes.Add(int64(4 * n))
		return (*v.(*[]float32))[:n]
	}
	freshBytes.Add(int64(4 << b))
	return make([]float32, n, 1<<b)
}

// getZeroed returns a zeroed slice of length n.
func getZeroed(n int) []float32 {
	s := getBuf(n)
	clear(s)
	return s
}

func putBuf(s []float32) {
	c := cap(s)
	if c == 0 || c&(c-1) != 0 {
		return // not from the pool
	}
	s = s[:c]
	pools[bucket(c)].Put(&s)
}

// Alloc implements backend.Backend.
func (b *Backend) Alloc(dtype backend.DType, n int) backend.Buffer {
	switch {
	case n < 0:
		backend.Fail(Name, "Alloc", "negative length %d", n)
	case dtype == backend.Float32:
		return ref.Wrap(getBuf(n))
	case dtype == backend.Int32:
		return ref.WrapInt32(make([]int32, n))
	}
	backend.Fail(Name, "Alloc", "dtype %v is not implemented", dtype)
	return nil
}

// Free implements backend.Backend: float storage goes back to the cache.
func (b *Backend) Free(buf backend.Buffer) {
	if buf == nil {
		return
	}
	hb, ok := buf.(*ref.Buffer)
	if !ok {
		backend.Fail(Name, "Free", "buffer of type %T belongs to another backend", buf)
	}
	putBuf(hb.Release())
}

// FromHost implements backend.Backend.
func (b *Backend) FromHost(dst backend.Buffer, src []float32) { b.ref.FromHost(dst, src) }

// FromHostInt32 implements backend.Backend.
func (b *Backend) FromHostInt32(dst backend.Buffer, src []int32) { b.ref.FromHostInt32(dst, src) }

// ToHost implements backend.Backend.
func (b *Backend) ToHost(dst []float32, src backend.Buffer) { b.ref.ToHost(dst, src) }

// Sync implements backend.Backend: every kernel has finished when it returns.
func (b *Backend) Sync() error { return nil }

// MemStats implements backend.Backend.
func (b *Backend) MemStats() backend.MemStats {
	return backend.MemStats{FreshBytes: freshBytes.Load(), ReusedBytes: reusedBytes.Load()}
}

// Fill implements backend.Backend.
func (b *Backend) Fill(dst backend.Buffer, value float32) {
	d := floats("Fill", dst, dst.Len())
	b.parallelRange(len(d), func(lo, hi int) {
		s := d[lo:hi]
		if value == 0 {
			clear(s)
			return
		}
		for i := range s {
			s[i] = value
		}
	})
}

// Kernels taken from the reference backend as they are: none of them is
// hot enough in a detector's training step to need a CPU-specific form.

// Gather implements backend.Backend.
func (b *Backend) Gather(a backend.GatherArgs) { b.ref.Gather(a) }

// ScatterAdd implements backend.Backend.
func (b *Backend) ScatterAdd(a backend.GatherArgs) { b.ref.ScatterAdd(a) }

// Where implements backend.Backend.
func (b *Backend) Where(a backend.WhereArgs) { b.ref.Where(a) }

// Softmax implements backend.Backend.
func (b *Backend) Softmax(a backend.SoftmaxArgs) { b.ref.Softmax(a) }

// SoftmaxBackward implements backend.Backend.
func (b *Backend) SoftmaxBackward(a backend.SoftmaxBackwardArgs) { b.ref.SoftmaxBackward(a) }

// ROIAlign implements backend.Backend.
func (b *Backend) ROIAlign(a backend.ROIAlignArgs) { b.ref.ROIAlign(a) }

// ROIAlignBackward implements backend.Backend.
func (b *Backend) ROIAlignBackward(a backend.ROIAlignBackwardArgs) { b.ref.ROIAlignBackward(a) }

// PairwiseDistance implements backend.Backend.
func (b *Backend) PairwiseDistance(a backend.PairwiseDistanceArgs) { b.ref.PairwiseDistance(a) }

// PairwiseDistanceBackward implements backend.Backend.
func (b *Backend) PairwiseDistanceBackward(a backend.PairwiseDistanceBackwardArgs) {
	b.ref.PairwiseDistanceBackward(a)
}
