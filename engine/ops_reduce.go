package engine

import (
	"math"
	"slices"
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

// SumAxis sums over one axis; keepDim leaves a size-1 dimension.
func SumAxis(t *Tensor, axis int, keepDim bool) *Tensor {
	axis = normAxis(t, "SumAxis", axis)
	outer, size, inner := reduceDims(t.shape, axis)
	out := newResult(reducedShape(t.shape, axis, keepDim))
	for o := 0; o < outer; o++ {
		dst := out.data[o*inner : (o+1)*inner]
		for s := 0; s < size; s++ {
			src := t.data[(o*size+s)*inner : (o*size+s+1)*inner]
			for k, v := range src {
				dst[k] += v
			}
		}
	}
	record(out, "SumAxis", func(out *Tensor) {
		g := t.ensureGrad()
		for o := 0; o < outer; o++ {
			src := out.grad[o*inner : (o+1)*inner]
			for s := 0; s < size; s++ {
				dst := g[(o*size+s)*inner : (o*size+s+1)*inner]
				for k, v := range src {
					dst[k] += v
				}
			}
		}
	}, t)
	return out
}

// MeanAxis averages over one axis.
func MeanAxis(t *Tensor, axis int, keepDim bool) *Tensor {
	axis = normAxis(t, "MeanAxis", axis)
	return MulScalar(SumAxis(t, axis, keepDim), 1/float32(t.shape[axis]))
}

// Sum adds every element into a scalar.
func Sum(t *Tensor) *Tensor {
	out := newResult([]int{})
	var s float64
	for _, v := range t.data {
		s += float64(v)
	}
	out.data[0] = float32(s)
	record(out, "Sum", func(out *Tensor) {
		g := t.ensureGrad()
		gv := out.grad[0]
		for i := range g {
			g[i] += gv
		}
	}, t)
	return out
}

// Mean averages every element into a scalar.
func Mean(t *Tensor) *Tensor {
	check(t.Len() > 0, "Mean", "empty tensor", nil, t)
	return MulScalar(Sum(t), 1/float32(t.Len()))
}

// MaxAxis takes the maximum over one axis; the gradient goes to the first
// maximal element.
func MaxAxis(t *Tensor, axis int, keepDim bool) *Tensor {
	axis = normAxis(t, "MaxAxis", axis)
	outer, size, inner := reduceDims(t.shape, axis)
	check(size > 0, "MaxAxis", "empty axis", nil, t)
	out := newResultNoZero(reducedShape(t.shape, axis, keepDim))
	arg := make([]int32, outer*inner)
	for o := 0; o < outer; o++ {
		for k := 0; k < inner; k++ {
			best := float32(math.Inf(-1))
			bi := 0
			for s := 0; s < size; s++ {
				if v := t.data[(o*size+s)*inner+k]; v > best || s == 0 {
					best, bi = v, s
				}
			}
			out.data[o*inner+k] = best
			arg[o*inner+k] = int32(bi)
		}
	}
	record(out, "MaxAxis", func(out *Tensor) {
		g := t.ensureGrad()
		for o := 0; o < outer; o++ {
			for k := 0; k < inner; k++ {
				g[(o*size+int(arg[o*inner+k]))*inner+k] += out.grad[o*inner+k]
			}
		}
	}, t)
	return out
}

// Softmax normalises exponentials over axis.
func Softmax(t *Tensor, axis int) *Tensor {
	axis = normAxis(t, "Softmax", axis)
	outer, size, inner := reduceDims(t.shape, axis)
	out := newResultNoZero(slices.Clone(t.shape))
	for o := 0; o < outer; o++ {
		for k := 0; k < inner; k++ {
			base := o*size*inner + k
			m := float32(math.Inf(-1))
			for s := 0; s < size; s++ {
				m = max(m, t.data[base+s*inner])
			}
			var z float64
			for s := 0; s < size; s++ {
				e := math.Exp(float64(t.data[base+s*inner] - m))
				out.data[base+s*inner] = float32(e)
				z += e
			}
			for s := 0; s < size; s++ {
				out.data[base+s*inner] = float32(float64(out.data[base+s*inner]) / z)
			}
		}
	}
	record(out, "Softmax", func(out *Tensor) {
		g := t.ensureGrad()
		for o := 0; o < outer; o++ {
			for k := 0; k < inner; k++ {
				base := o*size*inner + k
				var dot float32
				for s := 0; s < size; s++ {
					dot += out.grad[base+s*inner] * out.data[base+s*inner]
				}
				for s := 0; s < size; s++ {
					i := base + s*inner
					g[i] += out.data[i] * (out.grad[i] - dot)
				}
			}
		}
	}, t)
	return out
}

// LogSoftmax is log(Softmax) computed stably.
func LogSoftmax(t *Tensor, axis int) *Tensor {
	axis = normAxis(t, "LogSoftmax", axis)
	outer, size, inner := reduceDims(t.shape, axis)
	out := newResultNoZero(slices.Clone(t.shape))
	for o := 0; o < outer; o++ {
		for k := 0; k < inner; k++ {
			base := o*size*inner + k
			m := float32(math.Inf(-1))
			for s := 0; s < size; s++ {
				m = max(m, t.data[base+s*inner])
			}
			var z float64
			for s := 0; s < size; s++ {
				z += math.Exp(float64(t.data[base+s*inner] - m))
			}
			lz := m + float32(math.Log(z))
			for s := 0; s < size; s++ {
				out.data[base+s*inner] = t.data[base+s*inner] - lz
			}
		}
	}
	record(out, "LogSoftmax", func(out *Tensor) {
		g := t.ensureGrad()
		for o := 0; o < outer; o++ {
			for k := 0; k < inner; k++ {
				base := o*size*inner + k
				var sum float32
				for s := 0; s < size; s++ {
					sum += out.grad[base+s*inner]
				}
				for s := 0; s < size; s++ {
					i := base + s*inner
					g[i] += out.grad[i] - float32(math.Exp(float64(out.data[i])))*sum
				}
			}
		}
	}, t)
	return out
}

// MatMul multiplies a [.., M, K] by b [K, N] or batched b [.., K, N] with the
// same leading dimensions.
func MatMul(a, b *Tensor) *Tensor {
	check(a.Rank() >= 2 && b.Rank() >= 2, "MatMul", "operands must be at least 2-D", nil, a, b)
	m, k := a.shape[a.Rank()-2], a.shape[a.Rank()-1]
	k2, n := b.shape[b.Rank()-2], b.shape[b.Rank()-1]
	check(k == k2, "MatMul", "inner dimensions %d and %d differ", []any{k, k2}, a, b)
	batch := numel(a.shape[:a.Rank()-2])
	shared := b.Rank() == 2
	if !shared {
		check(slices.Equal(a.shape[:a.Rank()-2], b.shape[:b.Rank()-2]), "MatMul", "batch dimensions differ", nil, a, b)
	}
	outShape := append(slices.Clone(a.shape[:a.Rank()-2]), m, n)
	out := newResultNoZero(outShape)
	bk := be()
	bOff := func(i int) int {
		if shared {
			return 0
		}
		return i * k * n
	}
	for i := 0; i < batch; i++ {
		bk.Gemm(false, false, m, n, k, 1, a.data[i*m*k:], k, b.data[bOff(i):], n, 0, out.data[i*m*n:], n)
	}
	record(out, "MatMul", func(out *Tensor) {
		for i := 0; i < batch; i++ {
			if a.requiresGrad {
				bk.Gemm(false, true, m, k, n, 1, out.grad[i*m*n:], n, b.data[bOff(i):], n, 1, a.ensureGrad()[i*m*k:], k)
			}
			if b.requiresGrad {
				bk.Gemm(true, false, k, n, m, 1, a.data[i*m*k:], k, out.grad[i*m*n:], n, 1, b.ensureGrad()[bOff(i):], n)
			}
		}
	}, a, b)
	return out
}
