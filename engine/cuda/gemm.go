package cuda

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/ref"
)

// Gemm implements backend.Backend with cuBLAS (SGEMM, strided batched for
// Batch > 1; TF32 when switched on).
func (b *Backend) Gemm(a backend.GemmArgs) {
	const k = "Gemm"
	na, nb, nc := ref.CheckGemm(Name, k, a)
	if a.M == 0 || a.N == 0 || a.Batch == 0 {
		return
	}
	pa := b.f32(k, "A", a.A.Buf, na)
	pb := b.f32(k, "B", a.B.Buf, nb)
	pc := b.f32(k, "C", a.C.Buf, nc)
	if pc == 0 {
		backend.Fail(Name, k, "C is missing")
	}
	if a.K == 0 {
		b.scaleMatrices(k, a, at(pc, a.C.Offset))
		return
	}
	if pa == 0 || pb == 0 {
		backend.Fail(Name, k, "A and B are required when K > 0")
	}
	b.gemm(k, driver.Gemm{
		TransA: a.A.Trans, TransB: a.B.Trans,
		M: a.M, N: a.N, K: a.K, Alpha: a.Alpha, Beta: a.Beta,
		A: at(pa, a.A.Offset), B: at(pb, a.B.Offset), C: at(pc, a.C.Offset),
		LDA: a.A.LD, LDB: a.B.LD, LDC: a.C.LD,
		StrideA: int64(a.A.BatchStride), StrideB: int64(a.B.BatchStride), StrideC: int64(a.C.BatchStride),
		Batch: a.Batch,
	})
}

// gemm runs one (batched) SGEMM on the compute stream.
func (b *Backend) gemm(k string, g driver.Gemm) {
	if err := b.blas.Sgemm(g); err != nil {
		b.deviceFail(k, err)
	}
}

// scaleMatrices computes C = Beta·C over Gemm's C matrices (K = 0: the
// product is empty), with β = 0 writing zeros without reading C.
func (b *Backend) scaleMatrices(k string, a backend.GemmArgs, c driver.DevicePtr) {
	shape := []int{a.Batch, a.M, a.N}
	cs := []int{a.C.BatchStride, a.C.LD, 1}
	n := numel(shape)
	scalar := b.Alloc(backend.Float32, 1).(*Buffer)
	defer b.Free(scalar)
	b.FromHost(scalar, []float32{a.Beta})
	if a.Beta == 0 {
		l := layout(k, shape, cs, []int{0, 0, 0})
		b.launch(k, "gidedge_strided_copy", elementwise(n), ptr(c), ptr(scalar.mem.Ptr), f32(0), l.Arg())
		return
	}
	l := layout(k, shape, cs, cs, []int{0, 0, 0})
	b.launch(k, "gidedge_binary", elementwise(n), ptr(c), ptr(c), ptr(scalar.mem.Ptr), i32(kernels.BinaryMul), f32(0), l.Arg())
}
