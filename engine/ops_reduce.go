package engine

import (
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// reduceDims returns (outer, size, inner) for reducing one axis.
func reduceDims(shape []int, axis int) (int, int, int) {
	return numel(shape[:axis]), shape[axis], numel(shape[axis+1:])
}

func normAxis(t *Tensor, op string, axis int) int {
	if axis < 0 {
		axis += t.Rank()
	}
	check(axis >= 0 && axis < t.Rank(), op, "axis %d out of range", []any{axis}, t)
	return axis
}

func reducedShape(shape []int, axis int, keep bool) []int {
	if keep {
		s := slices.Clone(shape)
		s[axis] = 1
		return s
	}
	return slices.Delete(slices.Clone(shape), axis, axis+1)
}

func oneAxis(rank, axis int) []bool {
	axes := make([]bool, rank)
	axes[axis] = true
	return axes
}

// broadcastBack adds a gradient g of a reduction's output back to t's
// gradient along the reduced axes (the adjoint of summing over them).
func broadcastBack(d backend.Backend, t *Tensor, g backend.Buffer, keptShape []int) {
	dst := t.gradDest()
	d.Copy(backend.CopyArgs{Shape: t.shape, Dst: backend.View{Buf: dst.Buf}, Src: backend.View{Buf: g, Strides: backend.BroadcastStrides(keptShape, t.shape)}, Accumulate: dst.Accumulate})
}

// SumAxis sums over one axis; keepDim leaves a size-1 dimension.
func SumAxis(t *Tensor, axis int, keepDim bool) *Tensor {
	d := device("SumAxis", t)
	axis = normAxis(t, "SumAxis", axis)
	out := alloc(d, reducedShape(t.shape, axis, keepDim))
	d.Reduce(backend.ReduceArgs{Op: backend.ReduceSum, Shape: t.shape, Axes: oneAxis(t.Rank(), axis), Src: t.buf, Dst: backend.Dest{Buf: out.buf}, Alpha: 1})
	record(out, "SumAxis", func(out *Tensor) {
		broadcastBack(d, t, out.grad, reducedShape(t.shape, axis, true))
	}, nil, t)
	return out
}

// MeanAxis averages over one axis.
func MeanAxis(t *Tensor, axis int, keepDim bool) *Tensor {
	axis = normAxis(t, "MeanAxis", axis)
	return MulScalar(SumAxis(t, axis, keepDim), 1/float32(t.shape[axis]))
}

// Sum adds every element into a scalar.
func Sum(t *Tensor) *Tensor {
	d := device("Sum", t)
	out := alloc(d, []int{})
	all := make([]bool, t.Rank())
	for i := range all {
		all[i] = true
	}
	d.Reduce(backend.ReduceArgs{Op: backend.ReduceSum, Shape: t.shape, Axes: all, Src: t.buf, Dst: backend.Dest{Buf: out.buf}, Alpha: 1})
	record(out, "Sum", func(out *Tensor) {
		broadcastBack(d, t, out.grad, nil)
	}, nil, t)
	return out
}

// Mean averages every element into a scalar.
func Mean(t *Tensor) *Tensor {
	check(t.Len() > 0, "Mean", "empty tensor", nil, t)
	return MulScalar(Sum(t), 1/float32(t.Len()))
}

// MaxAxis takes the maximum over one axis (NaN counts as the largest); the
// gradient goes to the first maximal element.
func MaxAxis(t *Tensor, axis int, keepDim bool) *Tensor {
	d := device("MaxAxis", t)
	axis = normAxis(t, "MaxAxis", axis)
	check(t.shape[axis] > 0, "MaxAxis", "empty axis", nil, t)
	out := alloc(d, reducedShape(t.shape, axis, keepDim))
	var arg backend.Buffer
	if recorded(t) {
		arg = d.Alloc(backend.Int32, out.Len())
	}
	d.Reduce(backend.ReduceArgs{Op: backend.ReduceMax, Shape: t.shape, Axes: oneAxis(t.Rank(), axis), Src: t.buf, Dst: backend.Dest{Buf: out.buf}, Index: arg, Alpha: 1})
	record(out, "MaxAxis", func(out *Tensor) {
		d.ScatterAdd(backend.GatherArgs{Outer: 1, Size: t.Len(), Inner: 1, Count: out.Len(), Index: arg, Src: out.grad, Dst: t.gradDest()})
	}, func() { d.Free(arg) }, t)
	return out
}

// Softmax normalises exponentials over axis.
func Softmax(t *Tensor, axis int) *Tensor { return softmax("Softmax", t, axis, false) }

// LogSoftmax is log(Softmax) computed stably.
func LogSoftmax(t *Tensor, axis int) *Tensor { return softmax("LogSoftmax", t, axis, true) }

func softmax(name string, t *Tensor, axis int, log bool) *Tensor {
	d := device(name, t)
	axis = normAxis(t, name, axis)
	outer, size, inner := reduceDims(t.shape, axis)
	out := alloc(d, slices.Clone(t.shape))
	d.Softmax(backend.SoftmaxArgs{Outer: outer, Size: size, Inner: inner, X: t.buf, Y: out.buf, Log: log})
	record(out, name, func(out *Tensor) {
		d.SoftmaxBackward(backend.SoftmaxBackwardArgs{Outer: outer, Size: size, Inner: inner, Y: out.buf, DY: out.grad, DX: t.gradDest(), Log: log})
	}, nil, t)
	return out
}

// MatMul multiplies a [.., M, K] by b [K, N] or batched b [.., K, N] with the
// same leading dimensions.
func MatMul(a, b *Tensor) *Tensor {
	d := device("MatMul", a, b)
	check(a.Rank() >= 2 && b.Rank() >= 2, "MatMul", "operands must be at least 2-D", nil, a, b)
	m, k := a.shape[a.Rank()-2], a.shape[a.Rank()-1]
	k2, n := b.shape[b.Rank()-2], b.shape[b.Rank()-1]
	check(k == k2, "MatMul", "inner dimensions %d and %d differ", []any{k, k2}, a, b)
	batch := numel(a.shape[:a.Rank()-2])
	shared := b.Rank() == 2
	if !shared {
		check(slices.Equal(a.shape[:a.Rank()-2], b.shape[:b.Rank()-2]), "MatMul", "batch dimensions differ", nil, a, b)
	}
	out := alloc(d, append(slices.Clone(a.shape[:a.Rank()-2]), m, n))
	mat := func(buf backend.Buffer, ld, stride int, trans bool) backend.Matrix {
		return backend.Matrix{Buf: buf, LD: ld, BatchStride: stride, Trans: trans}
	}
	beta := func(dst backend.Dest) float32 {
		if dst.Accumulate {
			return 1
		}
		return 0
	}
	if shared {
		// One GEMM over all batch rows: [batch·M, K]·[K, N].
		d.Gemm(backend.GemmArgs{M: batch * m, N: n, K: k, Batch: 1, Alpha: 1, A: mat(a.buf, k, 0, false), B: mat(b.buf, n, 0, false), C: mat(out.buf, n, 0, false)})
	} else {
		d.Gemm(backend.GemmArgs{M: m, N: n, K: k, Batch: batch, Alpha: 1, A: mat(a.buf, k, m*k, false), B: mat(b.buf, n, k*n, false), C: mat(out.buf, n, m*n, false)})
	}
	record(out, "MatMul", func(out *Tensor) {
		if a.requiresGrad { // dA = dY·Bᵀ
			ga := a.gradDest()
			if shared {
				d.Gemm(backend.GemmArgs{M: batch * m, N: k, K: n, Batch: 1, Alpha: 1, Beta: beta(ga), A: mat(out.grad, n, 0, false), B: mat(b.buf, n, 0, true), C: mat(ga.Buf, k, 0, false)})
			} else {
				d.Gemm(backend.GemmArgs{M: m, N: k, K: n, Batch: batch, Alpha: 1, Beta: beta(ga), A: mat(out.grad, n, m*n, false), B: mat(b.buf, n, k*n, true), C: mat(ga.Buf, k, m*k, false)})
			}
		}
		if b.requiresGrad { // dB = Aᵀ·dY
			gb := b.gradDest()
			if shared {
				d.Gemm(backend.GemmArgs{M: k, N: n, K: batch * m, Batch: 1, Alpha: 1, Beta: beta(gb), A: mat(a.buf, k, 0, true), B: mat(out.grad, n, 0, false), C: mat(gb.Buf, n, 0, false)})
			} else {
				d.Gemm(backend.GemmArgs{M: k, N: n, K: m, Batch: batch, Alpha: 1, Beta: beta(gb), A: mat(a.buf, k, m*k, true), B: mat(out.grad, n, m*n, false), C: mat(gb.Buf, n, k*n, false)})
			}
		}
	}, nil, a, b)
	return out
}
