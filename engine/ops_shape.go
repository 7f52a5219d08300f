package engine

import (
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// Reshape returns t viewed with a new shape of the same size; one dimension
// may be -1 and is inferred. The values are shared with t.
func Reshape(t *Tensor, shape ...int) *Tensor {
	d := device("Reshape", t)
	shape = slices.Clone(shape)
	infer := -1
	known := 1
	for i, dim := range shape {
		if dim == -1 {
			check(infer < 0, "Reshape", "more than one -1 in %v", []any{shape}, t)
			infer = i
			continue
		}
		check(dim >= 0, "Reshape", "negative dimension in %v", []any{shape}, t)
		known *= dim
	}
	if infer >= 0 {
		check(known > 0 && t.Len()%known == 0, "Reshape", "cannot infer -1 in %v", []any{shape}, t)
		shape[infer] = t.Len() / known
	}
	check(numel(shape) == t.Len(), "Reshape", "target %v has %d elements, tensor has %d", []any{shape, numel(shape), t.Len()}, t)
	checkDims("Reshape", shape)
	// The output shares t's buffer (not owned); its gradient is its own.
	out := &Tensor{shape: shape, dtype: t.dtype, dev: d, buf: t.buf}
	record(out, "Reshape", func(out *Tensor) {
		dst := t.gradDest()
		copyDense(d, dst.Buf, out.grad, t.Len(), dst.Accumulate)
	}, nil, t)
	return out
}

// Flatten reshapes to [d0, rest].
func Flatten(t *Tensor) *Tensor { return Reshape(t, t.shape[0], -1) }

// Permute reorders dimensions: output dimension i is input dimension perm[i].
func Permute(t *Tensor, perm ...int) *Tensor {
	d := device("Permute", t)
	r := t.Rank()
	check(len(perm) == r, "Permute", "permutation %v for rank %d", []any{perm, r}, t)
	seen := make([]bool, r)
	for _, p := range perm {
		check(p >= 0 && p < r && !seen[p], "Permute", "invalid permutation %v", []any{perm}, t)
		seen[p] = true
	}
	outShape := make([]int, r)
	inStrides := backend.DenseStrides(t.shape)
	permStrides := make([]int, r)
	for i, p := range perm {
		outShape[i] = t.shape[p]
		permStrides[i] = inStrides[p]
	}
	out := alloc(d, outShape)
	d.Copy(backend.CopyArgs{Shape: outShape, Dst: backend.View{Buf: out.buf}, Src: backend.View{Buf: t.buf, Strides: permStrides}})
	record(out, "Permute", func(out *Tensor) {
		dst := t.gradDest()
		d.Copy(backend.CopyArgs{Shape: outShape, Dst: backend.View{Buf: dst.Buf, Strides: permStrides}, Src: backend.View{Buf: out.grad}, Accumulate: dst.Accumulate})
	}, nil, t)
	return out
}

// Transpose swaps two dimensions.
func Transpose(t *Tensor, a, b int) *Tensor {
	perm := make([]int, t.Rank())
	for i := range perm {
		perm[i] = i
	}
	check(a >= 0 && a < t.Rank() && b >= 0 && b < t.Rank(), "Transpose", "axes %d and %d out of range", []any{a, b}, t)
	perm[a], perm[b] = perm[b], perm[a]
	return Permute(t, perm...)
}

// Concat joins tensors along axis; all other dimensions must agree.
func Concat(axis int, ts ...*Tensor) *Tensor {
	check(len(ts) > 0, "Concat", "no tensors", nil)
	d := device("Concat", ts...)
	r := ts[0].Rank()
	if axis < 0 {
		axis += r
	}
	check(axis >= 0 && axis < r, "Concat", "axis %d out of range", []any{axis}, ts...)
	outShape := slices.Clone(ts[0].shape)
	outShape[axis] = 0
	for _, t := range ts {
		check(t.Rank() == r, "Concat", "ranks differ", nil, ts...)
		for dim := 0; dim < r; dim++ {
			check(dim == axis || t.shape[dim] == ts[0].shape[dim], "Concat", "dimension %d differs", []any{dim}, ts...)
		}
		outShape[axis] += t.shape[axis]
	}
	outer := numel(outShape[:axis])
	inner := numel(outShape[axis+1:])
	out := alloc(d, outShape)
	rowOut := outShape[axis] * inner
	// block addresses the [outer, rowIn] slab of one input inside out.
	block := func(buf backend.Buffer, off int) backend.View {
		return backend.View{Buf: buf, Offset: off, Strides: []int{rowOut, 1}}
	}
	off := 0
	for _, t := range ts {
		rowIn := t.shape[axis] * inner
		d.Copy(backend.CopyArgs{Shape: []int{outer, rowIn}, Dst: block(out.buf, off), Src: backend.View{Buf: t.buf}})
		off += rowIn
	}
	record(out, "Concat", func(out *Tensor) {
		off := 0
		for _, t := range ts {
			rowIn := t.shape[axis] * inner
			if t.requiresGrad {
				dst := t.gradDest()
				d.Copy(backend.CopyArgs{Shape: []int{outer, rowIn}, Dst: backend.View{Buf: dst.Buf}, Src: block(out.grad, off), Accumulate: dst.Accumulate})
			}
			off += rowIn
		}
	}, nil, ts...)
	return out
}

// Slice returns t[..., start:end, ...] along axis.
func Slice(t *Tensor, axis, start, end int) *Tensor {
	d := device("Slice", t)
	r := t.Rank()
	if axis < 0 {
		axis += r
	}
	check(axis >= 0 && axis < r && start >= 0 && end <= t.shape[axis] && start <= end, "Slice", "range [%d:%d] on axis %d", []any{start, end, axis}, t)
	outShape := slices.Clone(t.shape)
	outShape[axis] = end - start
	outer := numel(t.shape[:axis])
	inner := numel(t.shape[axis+1:])
	rowIn := t.shape[axis] * inner
	rowOut := (end - start) * inner
	out := alloc(d, outShape)
	window := func(buf backend.Buffer) backend.View {
		return backend.View{Buf: buf, Offset: start * inner, Strides: []int{rowIn, 1}}
	}
	d.Copy(backend.CopyArgs{Shape: []int{outer, rowOut}, Dst: backend.View{Buf: out.buf}, Src: window(t.buf)})
	record(out, "Slice", func(out *Tensor) {
		// Only the window receives gradient: the rest must be zero.
		dst := t.zeroedGrad()
		d.Copy(backend.CopyArgs{Shape: []int{outer, rowOut}, Dst: window(dst.Buf), Src: backend.View{Buf: out.grad}, Accumulate: true})
	}, nil, t)
	return out
}

// Split cuts t along axis into pieces of the given sizes.
func Split(t *Tensor, axis int, sizes ...int) []*Tensor {
	if axis < 0 {
		axis += t.Rank()
	}
	check(axis >= 0 && axis < t.Rank(), "Split", "axis %d out of range", []any{axis}, t)
	total := 0
	for _, s := range sizes {
		total += s
	}
	check(total == t.shape[axis], "Split", "sizes %v sum to %d, axis %d has %d", []any{sizes, total, axis, t.shape[axis]}, t)
	outs := make([]*Tensor, len(sizes))
	start := 0
	for i, s := range sizes {
		outs[i] = Slice(t, axis, start, start+s)
		start += s
	}
	return outs
}

// SliceStep returns t[..., start:end:step, ...] along axis: every step-th
// element from start while below end (step ≥ 1). Space-to-depth stems
// (YOLOv5's Focus) take x[..., ::2, ::2] this way.
func SliceStep(t *Tensor, axis, start, end, step int) *Tensor {
	if step == 1 {
		return Slice(t, axis, start, end)
	}
	d := device("SliceStep", t)
	r := t.Rank()
	if axis < 0 {
		axis += r
	}
	check(axis >= 0 && axis < r && step > 0 && start >= 0 && start < end && end <= t.shape[axis], "SliceStep",
		"range [%d:%d:%d] on axis %d", []any{start, end, step, axis}, t)
	count := (end - start + step - 1) / step
	outShape := slices.Clone(t.shape)
	outShape[axis] = count
	outer := numel(t.shape[:axis])
	inner := numel(t.shape[axis+1:])
	shape := []int{outer, count, inner}
	window := func(buf backend.Buffer) backend.View {
		return backend.View{Buf: buf, Offset: start * inner, Strides: []int{t.shape[axis] * inner, step * inner, 1}}
	}
	out := alloc(d, outShape)
	d.Copy(backend.CopyArgs{Shape: shape, Dst: backend.View{Buf: out.buf}, Src: window(t.buf)})
	record(out, "SliceStep", func(out *Tensor) {
		dst := t.zeroedGrad()
		d.Copy(backend.CopyArgs{Shape: shape, Dst: window(dst.Buf), Src: backend.View{Buf: out.grad}, Accumulate: true})
	}, nil, t)
	return out
}

// Pad2d surrounds the planes of x [N, C, H, W] with zeros: top and bottom
// rows, left and right columns. The result is
// [N, C, top+H+bottom, left+W+right].
func Pad2d(x *Tensor, top, left, bottom, right int) *Tensor {
	d := device("Pad2d", x)
	check(x.Rank() == 4 && top >= 0 && left >= 0 && bottom >= 0 && right >= 0, "Pad2d",
		"input must be NCHW and padding (%d, %d, %d, %d) non-negative", []any{top, left, bottom, right}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh, ow := top+h+bottom, left+w+right
	out := alloc(d, []int{n, c, oh, ow})
	shape := []int{n * c, h, w}
	interior := func(buf backend.Buffer) backend.View {
		return backend.View{Buf: buf, Offset: top*ow + left, Strides: []int{oh * ow, ow, 1}}
	}
	d.Fill(out.buf, 0)
	d.Copy(backend.CopyArgs{Shape: shape, Dst: interior(out.buf), Src: backend.View{Buf: x.buf}})
	record(out, "Pad2d", func(out *Tensor) {
		dst := x.gradDest()
		d.Copy(backend.CopyArgs{Shape: shape, Dst: backend.View{Buf: dst.Buf}, Src: interior(out.grad), Accumulate: dst.Accumulate})
	}, nil, x)
	return out
}
