package engine

import (
	"slices"
)

// Reshape returns t viewed with a new shape of the same size; one dimension
// may be -1 and is inferred. The data is shared with t.
func Reshape(t *Tensor, shape ...int) *Tensor {
	shape = slices.Clone(shape)
	infer := -1
	known := 1
	for i, d := range shape {
		if d == -1 {
			check(infer < 0, "Reshape", "more than one -1 in %v", []any{shape}, t)
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 {
		check(known > 0 && t.Len()%known == 0, "Reshape", "cannot infer -1 in %v", []any{shape}, t)
		shape[infer] = t.Len() / known
	}
	check(numel(shape) == t.Len(), "Reshape", "target %v has %d elements, tensor has %d", []any{shape, numel(shape), t.Len()}, t)
	out := &Tensor{shape: shape, data: t.data}
	record(out, "Reshape", func(out *Tensor) {
		g := t.ensureGrad()
		for i, v := range out.grad {
			g[i] += v
		}
	}, t)
	if out.node != nil {
		// The output shares t's data, so its gradient buffer is its own but
		// its data must never go back to the pool.
		out.pooled = false
	}
	return out
}

// Flatten reshapes to [d0, rest].
func Flatten(t *Tensor) *Tensor { return Reshape(t, t.shape[0], -1) }

func stridesOf(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// Permute reorders dimensions: output dimension i is input dimension perm[i].
func Permute(t *Tensor, perm ...int) *Tensor {
	r := t.Rank()
	check(len(perm) == r, "Permute", "permutation %v for rank %d", []any{perm, r}, t)
	seen := make([]bool, r)
	for _, p := range perm {
		check(p >= 0 && p < r && !seen[p], "Permute", "invalid permutation %v", []any{perm}, t)
		seen[p] = true
	}
	outShape := make([]int, r)
	inStrides := stridesOf(t.shape)
	permStrides := make([]int, r)
	for i, p := range perm {
		outShape[i] = t.shape[p]
		permStrides[i] = inStrides[p]
	}
	out := newResultNoZero(outShape)
	gatherStrided(out.data, t.data, outShape, permStrides, false)
	record(out, "Permute", func(out *Tensor) {
		gatherStrided(out.grad, t.ensureGrad(), outShape, permStrides, true)
	}, t)
	return out
}

// gatherStrided copies src (addressed through strides) into dense dst of
// shape, or with reverse adds dst back into src.
func gatherStrided(dst, src []float32, shape, strides []int, reverse bool) {
	zero := make([]int, len(shape))
	forEachBroadcast(shape, strides, zero, func(i, is, _, n, step, _ int) {
		if reverse {
			for k := 0; k < n; k++ {
				src[is+k*step] += dst[i+k]
			}
			return
		}
		for k := 0; k < n; k++ {
			dst[i+k] = src[is+k*step]
		}
	})
}

// Transpose swaps two dimensions.
func Transpose(t *Tensor, a, b int) *Tensor {
	perm := make([]int, t.Rank())
	for i := range perm {
		perm[i] = i
	}
	perm[a], perm[b] = perm[b], perm[a]
	return Permute(t, perm...)
}

// Concat joins tensors along axis; all other dimensions must agree.
func Concat(axis int, ts ...*Tensor) *Tensor {
	check(len(ts) > 0, "Concat", "no tensors", nil)
	r := ts[0].Rank()
	if axis < 0 {
		axis += r
	}
	outShape := slices.Clone(ts[0].shape)
	outShape[axis] = 0
	for _, t := range ts {
		check(t.Rank() == r, "Concat", "ranks differ", nil, ts...)
		for d := 0; d < r; d++ {
			check(d == axis || t.shape[d] == ts[0].shape[d], "Concat", "dimension %d differs", []any{d}, ts...)
		}
		outShape[axis] += t.shape[axis]
	}
	outer := numel(outShape[:axis])
	inner := numel(outShape[axis+1:])
	out := newResultNoZero(outShape)
	rowOut := outShape[axis] * inner
	off := 0
	for _, t := range ts {
		rowIn := t.shape[axis] * inner
		for o := 0; o < outer; o++ {
			copy(out.data[o*rowOut+off:o*rowOut+off+rowIn], t.data[o*rowIn:(o+1)*rowIn])
		}
		off += rowIn
	}
	record(out, "Concat", func(out *Tensor) {
		off := 0
		for _, t := range ts {
			rowIn := t.shape[axis] * inner
			if t.requiresGrad {
				g := t.ensureGrad()
				for o := 0; o < outer; o++ {
					src := out.grad[o*rowOut+off : o*rowOut+off+rowIn]
					dst := g[o*rowIn : (o+1)*rowIn]
					for k, v := range src {
						dst[k] += v
					}
				}
			}
			off += rowIn
		}
	}, ts...)
	return out
}

// Slice returns t[..., start:end, ...] along axis.
func Slice(t *Tensor, axis, start, end int) *Tensor {
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
	out := newResultNoZero(outShape)
	for o := 0; o < outer; o++ {
		copy(out.data[o*rowOut:(o+1)*rowOut], t.data[o*rowIn+start*inner:o*rowIn+end*inner])
	}
	record(out, "Slice", func(out *Tensor) {
		g := t.ensureGrad()
		for o := 0; o < outer; o++ {
			dst := g[o*rowIn+start*inner : o*rowIn+end*inner]
			for k, v := range out.grad[o*rowOut : (o+1)*rowOut] {
				dst[k] += v
			}
		}
	}, t)
	return out
}

// Split cuts t along axis into pieces of the given sizes.
func Split(t *Tensor, axis int, sizes ...int) []*Tensor {
	if axis < 0 {
		axis += t.Rank()
	}
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
