package engine

import (
	"math"
	"slices"
)

// IndexSelect picks entries idx along axis: the result has t's shape with
// dimension axis replaced by len(idx), and out[..., j, ...] = t[..., idx[j], ...].
// Indices may repeat; their gradients add up.
func IndexSelect(t *Tensor, axis int, idx []int) *Tensor {
	axis = normAxis(t, "IndexSelect", axis)
	outer, size, inner := reduceDims(t.shape, axis)
	for j, k := range idx {
		check(k >= 0 && k < size, "IndexSelect", "index %d at position %d out of range [0, %d) on axis %d", []any{k, j, size, axis}, t)
	}
	outShape := slices.Clone(t.shape)
	outShape[axis] = len(idx)
	out := newResultNoZero(outShape)
	m := len(idx)
	for o := 0; o < outer; o++ {
		for j, k := range idx {
			copy(out.data[(o*m+j)*inner:(o*m+j+1)*inner], t.data[(o*size+k)*inner:(o*size+k+1)*inner])
		}
	}
	idx = slices.Clone(idx)
	record(out, "IndexSelect", func(out *Tensor) {
		indexAdd(t.ensureGrad(), out.grad, outer, size, inner, idx)
	}, t)
	return out
}

// indexAdd adds src (outer × len(idx) × inner) into dst (outer × size × inner)
// at rows idx along the middle axis.
func indexAdd(dst, src []float32, outer, size, inner int, idx []int) {
	m := len(idx)
	for o := 0; o < outer; o++ {
		for j, k := range idx {
			d := dst[(o*size+k)*inner : (o*size+k+1)*inner]
			for c, v := range src[(o*m+j)*inner : (o*m+j+1)*inner] {
				d[c] += v
			}
		}
	}
}

// ScatterAdd returns a copy of dst with src added at positions idx along
// axis (PyTorch's index_add): src has dst's shape except that dimension axis
// has len(idx) entries, and out[..., idx[j], ...] += src[..., j, ...].
// It is the adjoint of IndexSelect. Both dst and src take gradients.
func ScatterAdd(dst *Tensor, axis int, idx []int, src *Tensor) *Tensor {
	axis = normAxis(dst, "ScatterAdd", axis)
	outer, size, inner := reduceDims(dst.shape, axis)
	want := slices.Clone(dst.shape)
	want[axis] = len(idx)
	check(slices.Equal(src.shape, want), "ScatterAdd", "src must be %v for %d indices on axis %d", []any{want, len(idx), axis}, dst, src)
	for j, k := range idx {
		check(k >= 0 && k < size, "ScatterAdd", "index %d at position %d out of range [0, %d) on axis %d", []any{k, j, size, axis}, dst, src)
	}
	out := newResultNoZero(slices.Clone(dst.shape))
	copy(out.data, dst.data)
	indexAdd(out.data, src.data, outer, size, inner, idx)
	idx = slices.Clone(idx)
	record(out, "ScatterAdd", func(out *Tensor) {
		if dst.requiresGrad {
			g := dst.ensureGrad()
			for i, v := range out.grad {
				g[i] += v
			}
		}
		if src.requiresGrad {
			g := src.ensureGrad()
			m := len(idx)
			for o := 0; o < outer; o++ {
				for j, k := range idx {
					s := out.grad[(o*size+k)*inner : (o*size+k+1)*inner]
					d := g[(o*m+j)*inner : (o*m+j+1)*inner]
					for c, v := range s {
						d[c] += v
					}
				}
			}
		}
	}, dst, src)
	return out
}

// Gather picks values along axis with a per-element index tensor (PyTorch's
// gather): idx has t's rank, idx.Dim(d) ≤ t.Dim(d) for every d ≠ axis, its
// values are integers in [0, t.Dim(axis)), and the result has idx's shape
// with out[i][j][k] = t[i][idx[i][j][k]][k] for axis 1. idx takes no gradient.
func Gather(t *Tensor, axis int, idx *Tensor) *Tensor {
	axis = normAxis(t, "Gather", axis)
	check(idx.Rank() == t.Rank(), "Gather", "index rank %d differs from input rank %d", []any{idx.Rank(), t.Rank()}, t, idx)
	for d := range t.shape {
		check(d == axis || idx.shape[d] <= t.shape[d], "Gather", "index dimension %d is %d, larger than the input's %d", []any{d, idx.shape[d], t.shape[d]}, t, idx)
	}
	size := t.shape[axis]
	src := make([]int, idx.Len()) // flat position in t for each output element
	inStrides := stridesOf(t.shape)
	coord := make([]int, idx.Rank())
	for i, v := range idx.data {
		k := int(v)
		check(float64(v) == math.Trunc(float64(v)) && k >= 0 && k < size, "Gather", "index value %v at flat position %d is not an integer in [0, %d)", []any{v, i, size}, t, idx)
		off := 0
		for d, cd := range coord {
			if d == axis {
				off += k * inStrides[d]
			} else {
				off += cd * inStrides[d]
			}
		}
		src[i] = off
		for d := len(coord) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < idx.shape[d] {
				break
			}
			coord[d] = 0
		}
	}
	out := newResultNoZero(slices.Clone(idx.shape))
	for i, s := range src {
		out.data[i] = t.data[s]
	}
	record(out, "Gather", func(out *Tensor) {
		g := t.ensureGrad()
		for i, s := range src {
			g[s] += out.grad[i]
		}
	}, t)
	return out
}
