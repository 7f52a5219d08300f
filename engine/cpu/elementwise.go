package cpu

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// Unary implements backend.Backend: element ranges across workers; ReLU,
// the hottest pointwise op of conv nets, has its own branch-free loop.
func (b *Backend) Unary(a backend.UnaryArgs) {
	const k = "Unary"
	x := floats(k, a.X, a.N)
	y := floats(k, a.Y, a.N)
	if a.Op == backend.UnaryReLU {
		b.parallelRange(a.N, func(lo, hi int) { reluRange(y[lo:hi], x[lo:hi]) })
		return
	}
	f := ref.UnaryFunc(a.Op, a.Alpha, a.Beta)
	b.parallelRange(a.N, func(lo, hi int) {
		dst := y[lo:hi]
		for i, v := range x[lo:hi] {
			dst[i] = f(v)
		}
	})
}

// reluRange writes max(x, 0) into dst; NaN stays NaN. Activations are
// positive or negative at random, so it masks instead of branching. As an
// int32, a float is a negative number or −0 (to be zeroed) exactly when it
// lies in [math.MinInt32, −0x800000]: beyond that are the negative NaNs
// (x86 makes NaNs negative), so both x and x + 0x7fffff are negative.
func reluRange(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		x := int32(math.Float32bits(v))
		zero := uint32((x & (x + 0x7fffff)) >> 31)
		dst[i] = math.Float32frombits(uint32(x) &^ zero)
	}
}

// UnaryBackward implements backend.Backend.
func (b *Backend) UnaryBackward(a backend.UnaryBackwardArgs) {
	const k = "UnaryBackward"
	dx, acc := dest(k, a.DX, a.N)
	if dx == nil {
		return
	}
	dy := floats(k, a.DY, a.N)
	y := floats(k, a.Y, a.N)
	if a.Op == backend.UnaryReLU {
		b.parallelRange(a.N, func(lo, hi int) { reluGradRange(dx[lo:hi], dy[lo:hi], y[lo:hi], acc) })
		return
	}
	x := floats(k, a.X, a.N)
	df := ref.UnaryDerivative(a.Op, a.Alpha, a.Beta)
	b.parallelRange(a.N, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := dy[i] * df(x[i], y[i])
			if acc {
				dx[i] += v
			} else {
				dx[i] = v
			}
		}
	})
}

// reluGradRange passes dy where the ReLU output y is not ≤ 0 and writes 0
// elsewhere, branch-free. A ReLU output is +0, positive or NaN, so that is
// where its bits are non-zero: −int64(bits) is then negative.
func reluGradRange(dx, dy, y []float32, accumulate bool) {
	dx = dx[:len(dy)]
	y = y[:len(dy)]
	for i, g := range dy {
		keep := uint32(-int64(math.Float32bits(y[i])) >> 63)
		masked := math.Float32frombits(math.Float32bits(g) & keep)
		if accumulate {
			dx[i] += masked
		} else {
			dx[i] = masked
		}
	}
}

// forEachRun calls fn for every run of the innermost dimension of shape:
// the flat output index i, the operand offsets ia and ib and the run
// length n with the operands' innermost strides.
func forEachRun(shape, sa, sb []int, offA, offB int, fn func(i, ia, ib, n, stepA, stepB int)) {
	total := 1
	for _, d := range shape {
		total *= d
	}
	if total == 0 {
		return
	}
	r := len(shape)
	if r == 0 {
		fn(0, offA, offB, 1, 0, 0)
		return
	}
	inner := shape[r-1]
	stepA, stepB := sa[r-1], sb[r-1]
	idx := make([]int, r)
	ia, ib := offA, offB
	for i := 0; i < total; i += inner {
		fn(i, ia, ib, inner, stepA, stepB)
		// advance the odometer over dimensions 0..r-2
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			ia += sa[d]
			ib += sb[d]
			if idx[d] < shape[d] {
				break
			}
			ia -= sa[d] * shape[d]
			ib -= sb[d] * shape[d]
			idx[d] = 0
		}
	}
}

// Binary implements backend.Backend: a tight loop per contiguous run.
func (b *Backend) Binary(a backend.BinaryArgs) {
	const k = "Binary"
	ref.CheckShape(Name, k, a.Shape)
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	dst := floats(k, a.Dst.Buf, n)
	if n == 0 {
		return
	}
	x, xs := ref.ViewFloats(Name, k, "A", a.Shape, a.A)
	y, ys := ref.ViewFloats(Name, k, "B", a.Shape, a.B)
	f := ref.BinaryFunc(a.Op)
	acc := a.Dst.Accumulate
	forEachRun(a.Shape, xs, ys, a.A.Offset, a.B.Offset, func(i, ia, ib, cnt, stepA, stepB int) {
		o := dst[i : i+cnt]
		if stepA == 1 && stepB == 1 {
			binaryDense(a.Op, o, x[ia:ia+cnt], y[ib:ib+cnt], acc)
			return
		}
		for j := range o {
			v := f(x[ia+j*stepA], y[ib+j*stepB])
			if acc {
				o[j] += v
			} else {
				o[j] = v
			}
		}
	})
}

// binaryDense is Binary on contiguous operands, one loop per op.
func binaryDense(op backend.BinaryOp, o, x, y []float32, accumulate bool) {
	x, y = x[:len(o)], y[:len(o)]
	if accumulate {
		switch op {
		case backend.BinaryAdd:
			for k := range o {
				o[k] += x[k] + y[k]
			}
		case backend.BinarySub:
			for k := range o {
				o[k] += x[k] - y[k]
			}
		case backend.BinaryMul:
			for k := range o {
				o[k] += x[k] * y[k]
			}
		case backend.BinaryDiv:
			for k := range o {
				o[k] += x[k] / y[k]
			}
		}
		return
	}
	switch op {
	case backend.BinaryAdd:
		for k := range o {
			o[k] = x[k] + y[k]
		}
	case backend.BinarySub:
		for k := range o {
			o[k] = x[k] - y[k]
		}
	case backend.BinaryMul:
		for k := range o {
			o[k] = x[k] * y[k]
		}
	case backend.BinaryDiv:
		for k := range o {
			o[k] = x[k] / y[k]
		}
	}
}

// Copy implements backend.Backend: contiguous runs use copy.
func (b *Backend) Copy(a backend.CopyArgs) {
	const k = "Copy"
	ref.CheckShape(Name, k, a.Shape)
	dst, ds := ref.ViewFloats(Name, k, "Dst", a.Shape, a.Dst)
	src, ss := ref.ViewFloats(Name, k, "Src", a.Shape, a.Src)
	for _, s := range ds {
		if s == 0 {
			backend.Fail(Name, k, "Dst has a zero stride in %v", ds)
		}
	}
	forEachRun(a.Shape, ds, ss, a.Dst.Offset, a.Src.Offset, func(_, id, is, n, stepD, stepS int) {
		switch {
		case stepD == 1 && stepS == 1 && !a.Accumulate:
			copy(dst[id:id+n], src[is:is+n])
		case stepD == 1 && stepS == 1:
			d, s := dst[id:id+n], src[is:is+n]
			for j, v := range s {
				d[j] += v
			}
		case a.Accumulate:
			for j := 0; j < n; j++ {
				dst[id+j*stepD] += src[is+j*stepS]
			}
		default:
			for j := 0; j < n; j++ {
				dst[id+j*stepD] = src[is+j*stepS]
			}
		}
	})
}
