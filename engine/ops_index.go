package engine

import (
	"math"
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// IndexSelect picks entries idx along axis: the result has t's shape with
// dimension axis replaced by len(idx), and out[..., j, ...] = t[..., idx[j], ...].
// Indices may repeat; their gradients add up. The indices are uploaded
// to t's device.
func IndexSelect(t *Tensor, axis int, idx []int) *Tensor {
	d := device("IndexSelect", t)
	axis = normAxis(t, "IndexSelect", axis)
	outer, size, inner := reduceDims(t.shape, axis)
	for j, k := range idx {
		check(k >= 0 && k < size, "IndexSelect", "index %d at position %d out of range [0, %d) on axis %d", []any{k, j, size, axis}, t)
	}
	outShape := slices.Clone(t.shape)
	outShape[axis] = len(idx)
	out := alloc(d, outShape)
	index := uploadIndices(d, idx)
	g := backend.GatherArgs{Outer: outer, Size: size, Inner: inner, Count: len(idx), Index: index}
	fwd := g
	fwd.Src, fwd.Dst = t.buf, backend.Dest{Buf: out.buf}
	d.Gather(fwd)
	record(out, "IndexSelect", func(out *Tensor) {
		bwd := g
		bwd.Src, bwd.Dst = out.grad, t.gradDest()
		d.ScatterAdd(bwd)
	}, func() { d.Free(index) }, t)
	return out
}

// ScatterAdd returns a copy of dst with src added at positions idx along
// axis (PyTorch's index_add): src has dst's shape except that dimension axis
// has len(idx) entries, and out[..., idx[j], ...] += src[..., j, ...].
// It is the adjoint of IndexSelect. Both dst and src take gradients.
func ScatterAdd(dst *Tensor, axis int, idx []int, src *Tensor) *Tensor {
	d := device("ScatterAdd", dst, src)
	axis = normAxis(dst, "ScatterAdd", axis)
	outer, size, inner := reduceDims(dst.shape, axis)
	want := slices.Clone(dst.shape)
	want[axis] = len(idx)
	check(slices.Equal(src.shape, want), "ScatterAdd", "src must be %v for %d indices on axis %d", []any{want, len(idx), axis}, dst, src)
	for j, k := range idx {
		check(k >= 0 && k < size, "ScatterAdd", "index %d at position %d out of range [0, %d) on axis %d", []any{k, j, size, axis}, dst, src)
	}
	out := alloc(d, slices.Clone(dst.shape))
	copyDense(d, out.buf, dst.buf, out.Len(), false)
	index := uploadIndices(d, idx)
	g := backend.GatherArgs{Outer: outer, Size: size, Inner: inner, Count: len(idx), Index: index}
	fwd := g
	fwd.Src, fwd.Dst = src.buf, backend.Dest{Buf: out.buf, Accumulate: true}
	d.ScatterAdd(fwd)
	record(out, "ScatterAdd", func(out *Tensor) {
		if dst.requiresGrad {
			gd := dst.gradDest()
			copyDense(d, gd.Buf, out.grad, out.Len(), gd.Accumulate)
		}
		if src.requiresGrad {
			bwd := g
			bwd.Src, bwd.Dst = out.grad, src.gradDest()
			d.Gather(bwd)
		}
	}, func() { d.Free(index) }, dst, src)
	return out
}

// Gather picks values along axis with a per-element index tensor (PyTorch's
// gather): idx has t's rank, idx.Dim(d) ≤ t.Dim(d) for every d ≠ axis, its
// values are integers in [0, t.Dim(axis)), and the result has idx's shape
// with out[i][j][k] = t[i][idx[i][j][k]][k] for axis 1. idx takes no
// gradient. The index values are read on the host to check them.
func Gather(t *Tensor, axis int, idx *Tensor) *Tensor {
	d := device("Gather", t, idx)
	axis = normAxis(t, "Gather", axis)
	check(idx.Rank() == t.Rank(), "Gather", "index rank %d differs from input rank %d", []any{idx.Rank(), t.Rank()}, t, idx)
	for dim := range t.shape {
		check(dim == axis || idx.shape[dim] <= t.shape[dim], "Gather", "index dimension %d is %d, larger than the input's %d", []any{dim, idx.shape[dim], t.shape[dim]}, t, idx)
	}
	size := t.shape[axis]
	flat := make([]int, idx.Len()) // flat position in t of each output element
	inStrides := backend.DenseStrides(t.shape)
	coord := make([]int, idx.Rank())
	for i, v := range idx.ToHost() {
		k := int(v)
		check(float64(v) == math.Trunc(float64(v)) && k >= 0 && k < size, "Gather", "index value %v at flat position %d is not an integer in [0, %d)", []any{v, i, size}, t, idx)
		off := 0
		for dim, cd := range coord {
			if dim == axis {
				cd = k
			}
			off += cd * inStrides[dim]
		}
		flat[i] = off
		for dim := len(coord) - 1; dim >= 0; dim-- {
			coord[dim]++
			if coord[dim] < idx.shape[dim] {
				break
			}
			coord[dim] = 0
		}
	}
	out := alloc(d, slices.Clone(idx.shape))
	index := uploadIndices(d, flat)
	g := backend.GatherArgs{Outer: 1, Size: t.Len(), Inner: 1, Count: len(flat), Index: index}
	fwd := g
	fwd.Src, fwd.Dst = t.buf, backend.Dest{Buf: out.buf}
	d.Gather(fwd)
	record(out, "Gather", func(out *Tensor) {
		bwd := g
		bwd.Src, bwd.Dst = out.grad, t.gradDest()
		d.ScatterAdd(bwd)
	}, func() { d.Free(index) }, t)
	return out
}
