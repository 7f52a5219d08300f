package backend

// This file keeps the engine's previous host-slice seam alive while the ops
// move onto Backend; it is deleted when the migration is complete.

import (
	"fmt"
	"sync"
)

// LegacyConvGeometry describes one 2-D convolution over a single image and a single
// group: the input has Channels planes of Height×Width, the kernel is
// KernelH×KernelW, and the output is OutH×OutW.
type LegacyConvGeometry struct {
	Channels, Height, Width int
	KernelH, KernelW        int
	StrideH, StrideW        int
	PadH, PadW              int
	DilationH, DilationW    int
	OutH, OutW              int
}

// ColRows is the row count of the im2col matrix: Channels·KernelH·KernelW.
func (g LegacyConvGeometry) ColRows() int { return g.Channels * g.KernelH * g.KernelW }

// ColCols is the column count of the im2col matrix: OutH·OutW.
func (g LegacyConvGeometry) ColCols() int { return g.OutH * g.OutW }

// Capability names an optional kernel a backend may provide.
type Capability string

const (
	// CapDepthwise is a direct depthwise-convolution kernel.
	CapDepthwise Capability = "depthwise"
)

// Legacy runs the engine's heavy kernels.
type Legacy interface {
	// Name identifies the backend ("cpu", "cuda").
	Name() string
	// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
	// op(A) is m×k, op(B) is k×n, C is m×n with leading dimensions lda, ldb, ldc.
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	// Im2Col writes the ColRows×ColCols patch matrix of one image (CHW) into col.
	Im2Col(g LegacyConvGeometry, image, col []float32)
	// Col2Im adds the patch matrix col back into image (CHW), the adjoint of Im2Col.
	Col2Im(g LegacyConvGeometry, col, image []float32)
	// Parallel runs fn over [0, n) split into contiguous chunks, one per worker,
	// and returns when all chunks are done.
	Parallel(n int, fn func(lo, hi int))
	// Workers is how many chunks Parallel uses at most.
	Workers() int
	// Supports reports whether an optional capability is available.
	Supports(c Capability) bool
}

var (
	legacyMu       sync.RWMutex
	legacyRegistry = map[string]func() (Legacy, error){}
	legacyCurrent  Legacy
)

// Register makes a backend constructor available under name. Legacys call it
// from init.
func LegacyRegister(name string, open func() (Legacy, error)) {
	legacyMu.Lock()
	defer legacyMu.Unlock()
	legacyRegistry[name] = open
}

// Use opens the named backend and makes it the one ops run on.
func legacyUse(name string) (Legacy, error) {
	legacyMu.Lock()
	defer legacyMu.Unlock()
	open, ok := legacyRegistry[name]
	if !ok {
		names := make([]string, 0, len(registry))
		for n := range legacyRegistry {
			names = append(names, n)
		}
		return nil, fmt.Errorf("backend: unknown backend %q (available: %v)", name, names)
	}
	b, err := open()
	if err != nil {
		return nil, fmt.Errorf("backend: open %q: %w", name, err)
	}
	legacyCurrent = b
	return b, nil
}

// Current returns the active backend, opening "cpu" on first use.
func LegacyCurrent() Legacy {
	legacyMu.RLock()
	b := legacyCurrent
	legacyMu.RUnlock()
	if b != nil {
		return b
	}
	b, err := legacyUse("cpu")
	if err != nil {
		panic(&Error{Backend: "cpu", Kernel: "LegacyCurrent", Detail: err.Error(), Err: ErrDevice})
	}
	return b
}
