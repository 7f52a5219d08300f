package cpu

/*
#include <cblas.h>
*/
import "C"

import (
	"unsafe"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major slices with
// cblas_sgemm; the caller has checked that the slices hold the operands.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row) // BLAS semantics: C is not read
				continue
			}
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = uint32(C.CblasTrans)
	}
	if transB {
		tb = uint32(C.CblasTrans)
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb),
		C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&bm[0])), C.blasint(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// Gemm implements backend.Backend: batch entries are split across
// workers; a single large product is split by columns of C.
func (b *Backend) Gemm(a backend.GemmArgs) {
	const k = "Gemm"
	na, nb, nc := ref.CheckGemm(Name, k, a)
	if a.M == 0 || a.N == 0 || a.Batch == 0 {
		return
	}
	av := floats(k, a.A.Buf, na)
	bv := floats(k, a.B.Buf, nb)
	cv := floats(k, a.C.Buf, nc)
	one := func(i, c0, c1 int) {
		var opA, opB []float32 // K == 0 reads neither
		if a.K > 0 {
			offB := a.B.Offset + i*a.B.BatchStride
			if a.B.Trans {
				offB += c0 * a.B.LD
			} else {
				offB += c0
			}
			opA, opB = av[a.A.Offset+i*a.A.BatchStride:], bv[offB:]
		}
		sgemm(a.A.Trans, a.B.Trans, a.M, c1-c0, a.K, a.Alpha, opA, a.A.LD, opB, a.B.LD, a.Beta, cv[a.C.Offset+i*a.C.BatchStride+c0:], a.C.LD)
	}
	if a.Batch > 1 {
		b.parallel(a.Batch, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				one(i, 0, a.N)
			}
		})
		return
	}
	if a.M*a.N*a.K < 1<<18 {
		one(0, 0, a.N)
		return
	}
	b.parallelColumns(a.N, func(c0, c1 int) { one(0, c0, c1) })
}
