package cpu

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// Unary implements backend.Backend: element ranges across workers; ReLU,
// the hottest pointwise op of conv nets, has its own branch-free loop.
func (b *Backend) Unary(a backend.UnaryArgs) {
	const k = "Unary"
	x := floats(k, a.X, a.N)
	y := floats(k, a.Y, a.N)
	if a.Op == backend.UnaryReLU || a.Op == backend.UnaryClamp {
		b.activation(a.Op, y, x, a.Alpha, a.Beta)
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

// UnaryBackward implements backend.Backend.
func (b *Backend) UnaryBackward(a backend.UnaryBackwardArgs) {
	const k = "UnaryBackward"
	dx, acc := dest(k, a.DX, a.N)
	if dx == nil {
		return
	}
	dy := floats(k, a.DY, a.N)
	switch a.Op {
	case backend.UnaryReLU:
		b.activationGrad(a.Op, dx, dy, nil, floats(k, a.Y, a.N), 0, 0, acc)
		return
	case backend.UnaryClamp:
		b.activationGrad(a.Op, dx, dy, floats(k, a.X, a.N), nil, a.Alpha, a.Beta, acc)
		return
	}
	y := floats(k, a.Y, a.N)
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
