//go:build cgo

package cuda_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/backendtest"
	"github.com/gidedge/gidedge/engine/cuda"
	"github.com/gidedge/gidedge/engine/cuda/sim"
)

var (
	openOnce sync.Once
	opened   map[bool]*cuda.Backend
	openErr  error
)

// open returns a backend on the simulator (or on the real libraries of
// GIDEDGE_CUDA_LIBS), with or without cuDNN.
func open(t *testing.T, dnn bool) *cuda.Backend {
	t.Helper()
	openOnce.Do(func() {
		cfg, _, err := sim.TestConfig()
		if err != nil {
			openErr = err
			return
		}
		opened = map[bool]*cuda.Backend{}
		for _, d := range []bool{true, false} {
			b, err := cuda.Open(cuda.Options{Libraries: cfg, NoDNN: !d})
			if err != nil {
				openErr = err
				return
			}
			opened[d] = b
		}
	})
	if openErr != nil {
		t.Fatalf("CUDA backend: %v", openErr)
	}
	return opened[dnn]
}

func TestConformance(t *testing.T) {
	b := open(t, true)
	t.Log(b.Describe())
	backendtest.Run(t, b)
}

// TestConformanceWithoutCUDNN runs the suite with cuDNN turned off: the
// convolutions take the im2col + cuBLAS path a machine without cuDNN uses.
func TestConformanceWithoutCUDNN(t *testing.T) {
	b := open(t, false)
	if !strings.Contains(b.Describe(), "im2col") {
		t.Fatalf("Describe %q does not name the im2col path", b.Describe())
	}
	backendtest.Run(t, b)
}

// inUse is the allocator's gidedge_cuda_memory_in_use_bytes.
func inUse(t *testing.T, b *cuda.Backend) float64 {
	t.Helper()
	for _, f := range b.Figures() {
		if f.Name == "gidedge_cuda_memory_in_use_bytes" {
			return f.Value
		}
	}
	t.Fatalf("Figures %v lack gidedge_cuda_memory_in_use_bytes", b.Figures())
	return 0
}

// TestDroppedBuffersReturn: buffers the engine drops without Free go
// back to the allocator once the garbage collector finds them, and freed
// blocks are reused.
func TestDroppedBuffersReturn(t *testing.T) {
	b := open(t, true)
	before := inUse(t, b)
	for range 8 {
		x := b.Alloc(backend.Float32, 1<<18)
		b.Fill(x, 1)
	}
	if got := inUse(t, b); got < before+8<<20 {
		t.Fatalf("in use %v after allocating 8 MiB, was %v", got, before)
	}
	deadline := time.Now().Add(5 * time.Second)
	for inUse(t, b) > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := inUse(t, b); got > before {
		t.Fatalf("in use %v after the buffers were dropped, was %v", got, before)
	}
	st := b.MemStats()
	x := b.Alloc(backend.Float32, 1<<18)
	b.Free(x)
	if after := b.MemStats(); after.ReusedBytes <= st.ReusedBytes || after.FreshBytes != st.FreshBytes {
		t.Fatalf("MemStats %+v then %+v: a freed block of the same size should be reused", st, after)
	}
}

// TestPinnedUploads copies batches from page-locked memory on the copy
// stream (alternating staging slots, one of them grown), in order with the
// kernels around them.
func TestPinnedUploads(t *testing.T) {
	b := open(t, true)
	host, err := b.AllocPinned(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.FreePinned(host); err != nil {
			t.Fatal(err)
		}
	}()
	for round, n := range []int{300, 300, 1000, 7} {
		if err := b.WaitPinned(host); err != nil {
			t.Fatal(err)
		}
		for i := range host[:n] {
			host[i] = float32(round*1000 + i)
		}
		dst := b.Alloc(backend.Float32, n)
		b.Fill(dst, -1) // queued before the upload: the upload must land after it
		b.UploadPinned(dst, host[:n])
		b.Unary(backend.UnaryArgs{Op: backend.UnaryScale, N: n, X: dst, Y: dst, Alpha: 2})
		got := make([]float32, n)
		b.ToHost(got, dst)
		for i, v := range got {
			if v != 2*float32(round*1000+i) {
				t.Fatalf("round %d: element %d is %v, want %v", round, i, v, 2*float32(round*1000+i))
			}
		}
	}
	err = panicOf(t, func() { b.UploadPinned(b.Alloc(backend.Float32, 3), []float32{1, 2, 3}) })
	wantError(t, err, []error{backend.ErrArgument}, "AllocPinned")
}
