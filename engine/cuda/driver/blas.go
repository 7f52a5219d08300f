package driver

import (
	"fmt"
	"math"
	"unsafe"
)

// BLAS is a cuBLAS handle bound to a context and a stream.
type BLAS struct {
	c    *Context
	h    unsafe.Pointer
	tf32 bool
}

// BLAS loads cuBLAS (once per process) and creates a handle; the error
// names the folders searched and what to install when it is missing.
func (c *Context) BLAS() (*BLAS, error) {
	if err := c.d.loadCUBLAS(); err != nil {
		return nil, err
	}
	h, rc := c.d.native.cublasCreate(c.h)
	if err := c.d.cublasError("cublasCreate_v2", rc, ""); err != nil {
		return nil, err
	}
	b := &BLAS{c: c, h: h}
	// FP32 results stay FP32 unless SetTF32 opts in.
	if err := c.d.cublasError("cublasSetMathMode", c.d.native.cublasSetMathMode(c.h, h, 2), "CUBLAS_PEDANTIC_MATH"); err != nil {
		_ = c.d.native.cublasDestroy(c.h, h)
		return nil, err
	}
	return b, nil
}

// Version is cuBLAS's version, e.g. "13.0.2".
func (b *BLAS) Version() string { return b.c.d.libs.CUBLAS.Version }

// SetStream makes later GEMMs run on s.
func (b *BLAS) SetStream(s *Stream) error {
	return b.c.d.cublasError("cublasSetStream_v2", b.c.d.native.cublasSetStream(b.c.h, b.h, s.h), "")
}

// SetTF32 lets GEMMs round their inputs to TF32 on tensor cores (about 10
// mantissa bits; several times faster on Ampere and later). Off by default.
func (b *BLAS) SetTF32(on bool) error {
	mode := 2 // CUBLAS_PEDANTIC_MATH
	if on {
		mode = 3 // CUBLAS_TF32_TENSOR_OP_MATH
	}
	if err := b.c.d.cublasError("cublasSetMathMode", b.c.d.native.cublasSetMathMode(b.c.h, b.h, mode), ""); err != nil {
		return err
	}
	b.tf32 = on
	return nil
}

// Close destroys the handle.
func (b *BLAS) Close() error {
	if b.h == nil {
		return nil
	}
	err := b.c.d.cublasError("cublasDestroy_v2", b.c.d.native.cublasDestroy(b.c.h, b.h), "")
	b.h = nil
	return err
}

// Gemm is C = Alpha·op(A)·op(B) + Beta·C for row-major matrices (the
// engine's convention): op(A) is M×K, op(B) is K×N, C is M×N, each row LD*
// elements apart. With Batch > 1 the operands repeat Stride* elements apart
// (strided batched GEMM); Batch 0 or 1 is a single GEMM.
type Gemm struct {
	TransA, TransB            bool
	M, N, K                   int
	Alpha, Beta               float32
	A, B, C                   DevicePtr
	LDA, LDB, LDC             int
	StrideA, StrideB, StrideC int64
	Batch                     int
}

func (g Gemm) check() error {
	if g.M < 0 || g.N < 0 || g.K < 0 || max(g.M, g.N, g.K, g.LDA, g.LDB, g.LDC) > math.MaxInt32 {
		return fmt.Errorf("sizes m=%d n=%d k=%d must be in [0, 2³¹)", g.M, g.N, g.K)
	}
	aCols, bCols := g.K, g.N
	if g.TransA {
		aCols = g.M
	}
	if g.TransB {
		bCols = g.K
	}
	switch {
	case g.LDA < max(1, aCols):
		return fmt.Errorf("lda %d below A's row length %d", g.LDA, aCols)
	case g.LDB < max(1, bCols):
		return fmt.Errorf("ldb %d below B's row length %d", g.LDB, bCols)
	case g.LDC < max(1, g.N):
		return fmt.Errorf("ldc %d below C's row length %d", g.LDC, g.N)
	case g.M > 0 && g.N > 0 && g.C == 0, g.M > 0 && g.N > 0 && g.K > 0 && (g.A == 0 || g.B == 0):
		return fmt.Errorf("null operand (A %#x, B %#x, C %#x)", g.A, g.B, g.C)
	case g.Batch < 0 || g.Batch > math.MaxInt32:
		return fmt.Errorf("batch %d out of range", g.Batch)
	case g.Batch > 1 && (g.StrideA < 0 || g.StrideB < 0 || g.StrideC < int64(g.M)*int64(g.LDC)):
		return fmt.Errorf("strides (%d, %d, %d) for batch %d: C's must cover its %d×%d matrix so that results do not overlap", g.StrideA, g.StrideB, g.StrideC, g.Batch, g.M, g.LDC)
	}
	return nil
}

// Sgemm runs g on the handle's stream. Row-major C = op(A)·op(B) is
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS gets B first, with M and N
// exchanged and the same transpose flags.
func (b *BLAS) Sgemm(g Gemm) error {
	call := "cublasSgemm_v2"
	switch {
	case g.Batch > 1 && b.tf32:
		call = "cublasGemmStridedBatchedEx"
	case g.Batch > 1:
		call = "cublasSgemmStridedBatched"
	case b.tf32:
		call = "cublasGemmEx"
	}
	if err := g.check(); err != nil {
		return argError(call, "%v", err)
	}
	if g.M == 0 || g.N == 0 {
		return nil
	}
	cm := colMajorGemm{
		transA: g.TransB, transB: g.TransA,
		m: g.N, n: g.M, k: g.K,
		alpha: g.Alpha, beta: g.Beta,
		a: g.B, b: g.A, c: g.C,
		lda: g.LDB, ldb: g.LDA, ldc: g.LDC,
		strideA: g.StrideB, strideB: g.StrideA, strideC: g.StrideC,
	}
	if g.Batch > 1 {
		cm.batch = g.Batch
	}
	if b.tf32 {
		cm.compute = 77 // CUBLAS_COMPUTE_32F_FAST_TF32
	}
	rc := b.c.d.native.cublasGemm(b.c.h, b.h, &cm)
	return b.c.d.cublasError(call, rc, fmt.Sprintf("m=%d n=%d k=%d batch=%d", g.M, g.N, g.K, max(g.Batch, 1)))
}

func (d *Driver) cublasError(call string, code int, detail string) error {
	if code == 0 {
		return nil
	}
	return statusError(&d.libs.CUBLAS, call, code, detail, d.native.cublasStatusName(code), cublasNames, "CUBLAS_STATUS_", cublasHint, reportBug)
}
