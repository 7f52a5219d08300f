// Package backend is the seam between the engine's ops and the kernels that
// run them. A Backend works on float32 slices in row-major order; the CPU
// backend (package cpu) calls OpenBLAS, and a CUDA backend loaded at run time
// can slot in behind the same interface without touching model code.
//
// Every backend must pass the shared conformance suite in package
// backendtest. Kernels panic on programmer errors (slice too short); the
// engine validates shapes before calling them and recovers at its API edge.
package backend

import (
	"fmt"
	"sync"
)

// ConvGeometry describes one 2-D convolution over a single image and a single
// group: the input has Channels planes of Height×Width, the kernel is
// KernelH×KernelW, and the output is OutH×OutW.
type ConvGeometry struct {
	Channels, Height, Width int
	KernelH, KernelW        int
	StrideH, StrideW        int
	PadH, PadW              int
	DilationH, DilationW    int
	OutH, OutW              int
}

// ColRows is the row count of the im2col matrix: Channels·KernelH·KernelW.
func (g ConvGeometry) ColRows() int { return g.Channels * g.KernelH * g.KernelW }

// ColCols is the column count of the im2col matrix: OutH·OutW.
func (g ConvGeometry) ColCols() int { return g.OutH * g.OutW }

// Capability names an optional kernel a backend may provide.
type Capability string

const (
	// CapDepthwise is a direct depthwise-convolution kernel.
	CapDepthwise Capability = "depthwise"
)

// Backend runs the engine's heavy kernels.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda").
	Name() string
	// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
	// op(A) is m×k, op(B) is k×n, C is m×n with leading dimensions lda, ldb, ldc.
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	// Im2Col writes the ColRows×ColCols patch matrix of one image (CHW) into col.
	Im2Col(g ConvGeometry, image, col []float32)
	// Col2Im adds the patch matrix col back into image (CHW), the adjoint of Im2Col.
	Col2Im(g ConvGeometry, col, image []float32)
	// Parallel runs fn over [0, n) split into contiguous chunks, one per worker,
	// and returns when all chunks are done.
	Parallel(n int, fn func(lo, hi int))
	// Workers is how many chunks Parallel uses at most.
	Workers() int
	// Supports reports whether an optional capability is available.
	Supports(c Capability) bool
}

var (
	mu       sync.RWMutex
	registry = map[string]func() (Backend, error){}
	current  Backend
)

// Register makes a backend constructor available under name. Backends call it
// from init.
func Register(name string, open func() (Backend, error)) {
	mu.Lock()
	defer mu.Unlock()
	registry[name] = open
}

// Use opens the named backend and makes it the one ops run on.
func Use(name string) (Backend, error) {
	mu.Lock()
	defer mu.Unlock()
	open, ok := registry[name]
	if !ok {
		names := make([]string, 0, len(registry))
		for n := range registry {
			names = append(names, n)
		}
		return nil, fmt.Errorf("backend: unknown backend %q (available: %v)", name, names)
	}
	b, err := open()
	if err != nil {
		return nil, fmt.Errorf("backend: open %q: %w", name, err)
	}
	current = b
	return b, nil
}

// Current returns the active backend, opening "cpu" on first use.
func Current() Backend {
	mu.RLock()
	b := current
	mu.RUnlock()
	if b != nil {
		return b
	}
	b, err := Use("cpu")
	if err != nil {
		panic(fmt.Sprintf("backend: no default backend: %v (import github.com/gidedge/gidedge/engine/cpu)", err))
	}
	return b
}
