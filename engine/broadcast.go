package engine

import "slices"

// broadcastShape returns the NumPy-style broadcast of a and b, or ok=false.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, false
		}
	}
	return out, true
}

// broadcastStrides returns, for each output dimension, the stride of shape
// in the flattened input (0 where the input is broadcast).
func broadcastStrides(shape, out []int) []int {
	strides := make([]int, len(out))
	s := 1
	for i := len(out) - 1; i >= 0; i-- {
		j := len(shape) - len(out) + i
		if j >= 0 && shape[j] != 1 {
			strides[i] = s
		}
		if j >= 0 {
			s *= shape[j]
		}
	}
	return strides
}

// forEachBroadcast calls fn(i, ia, ib) for every flat output index i with the
// matching flat indices into a and b. The innermost dimension runs in a tight
// loop.
func forEachBroadcast(out, sa, sb []int, fn func(i, ia, ib, n, stepA, stepB int)) {
	total := numel(out)
	if total == 0 {
		return
	}
	r := len(out)
	if r == 0 {
		fn(0, 0, 0, 1, 0, 0)
		return
	}
	inner := out[r-1]
	stepA, stepB := sa[r-1], sb[r-1]
	idx := make([]int, r)
	ia, ib := 0, 0
	for i := 0; i < total; i += inner {
		fn(i, ia, ib, inner, stepA, stepB)
		// advance the odometer over dimensions 0..r-2
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			ia += sa[d]
			ib += sb[d]
			if idx[d] < out[d] {
				break
			}
			ia -= sa[d] * out[d]
			ib -= sb[d] * out[d]
			idx[d] = 0
		}
	}
}

// sumToShape reduces a gradient of shape out down to shape in (the adjoint
// of broadcasting) and adds it into dst.
func sumToShape(dst []float32, in []int, grad []float32, out []int) {
	if slices.Equal(in, out) {
		for i, g := range grad {
			dst[i] += g
		}
		return
	}
	si := broadcastStrides(in, out)
	zero := make([]int, len(out))
	forEachBroadcast(out, si, zero, func(i, ia, _, n, stepA, _ int) {
		g := grad[i : i+n]
		if stepA == 0 {
			var s float32
			for _, v := range g {
				s += v
			}
			dst[ia] += s
			return
		}
		d := dst[ia : ia+n]
		for k, v := range g {
			d[k] += v
		}
	})
}
