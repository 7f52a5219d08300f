package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// Copy implements backend.Backend.
func (r *Backend) Copy(a backend.CopyArgs) {
	const k = "Copy"
	checkShape(k, a.Shape)
	if numel(a.Shape) == 0 {
		return
	}
	dst, ds := viewFloats(k, "Dst", a.Shape, a.Dst)
	src, ss := viewFloats(k, "Src", a.Shape, a.Src)
	for _, s := range ds {
		if s == 0 {
			backend.Fail(Name, k, "Dst has a zero stride in %v", ds)
		}
	}
	idx := make([]int, len(a.Shape))
	for {
		put(dst, offset(a.Dst.Offset, idx, ds), src[offset(a.Src.Offset, idx, ss)], a.Accumulate)
		if !next(idx, a.Shape) {
			return
		}
	}
}

// gatherChecks validates GatherArgs and returns the index values.
func gatherChecks(k string, a backend.GatherArgs) []int32 {
	if a.Outer < 0 || a.Size < 0 || a.Inner < 0 || a.Count < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d, %d indices", a.Outer, a.Size, a.Inner, a.Count)
	}
	idx := Ints(Name, k, a.Index, a.Count)
	for j, v := range idx {
		if v < 0 || int(v) >= a.Size {
			backend.Fail(Name, k, "index %d at position %d is outside [0, %d)", v, j, a.Size)
		}
	}
	return idx
}

// Gather implements backend.Backend.
func (r *Backend) Gather(a backend.GatherArgs) {
	const k = "Gather"
	idx := gatherChecks(k, a)
	src := Floats(Name, k, a.Src, a.Outer*a.Size*a.Inner)
	dst := dest(k, a.Dst, a.Outer*a.Count*a.Inner)
	for o := 0; o < a.Outer; o++ {
		for j, row := range idx {
			for c := 0; c < a.Inner; c++ {
				dst[(o*a.Count+j)*a.Inner+c] += src[(o*a.Size+int(row))*a.Inner+c]
			}
		}
	}
}

// ScatterAdd implements backend.Backend.
func (r *Backend) ScatterAdd(a backend.GatherArgs) {
	const k = "ScatterAdd"
	idx := gatherChecks(k, a)
	src := Floats(Name, k, a.Src, a.Outer*a.Count*a.Inner)
	dst := dest(k, a.Dst, a.Outer*a.Size*a.Inner)
	for o := 0; o < a.Outer; o++ {
		for j, row := range idx {
			for c := 0; c < a.Inner; c++ {
				dst[(o*a.Size+int(row))*a.Inner+c] += src[(o*a.Count+j)*a.Inner+c]
			}
		}
	}
}

// Sigmoid is 1/(1+e⁻ˣ) without overflow for large |x|.
func Sigmoid(x float32) float32 {
	if x >= 0 {
		return 1 / (1 + float32(math.Exp(float64(-x))))
	}
	e := float32(math.Exp(float64(x)))
	return e / (1 + e)
}

// UnaryFunc returns f for a pointwise op.
func UnaryFunc(op backend.UnaryOp, alpha, beta float32) func(x float32) float32 {
	switch op {
	case backend.UnaryScale:
		return func(x float32) float32 { return alpha*x + beta }
	case backend.UnaryExp:
		return func(x float32) float32 { return float32(math.Exp(float64(x))) }
	case backend.UnaryLog:
		return func(x float32) float32 { return float32(math.Log(float64(x))) }
	case backend.UnarySqrt:
		return func(x float32) float32 { return float32(math.Sqrt(float64(x))) }
	case backend.UnaryAbs:
		return func(x float32) float32 { return float32(math.Abs(float64(x))) }
	case backend.UnaryPow:
		return func(x float32) float32 { return float32(math.Pow(float64(x), float64(alpha))) }
	case backend.UnaryClamp:
		return func(x float32) float32 { return min(max(x, alpha), beta) }
	case backend.UnaryReLU:
		return func(x float32) float32 {
			if x > 0 || x != x {
				return x
			}
			return 0
		}
	case backend.UnaryLeakyReLU:
		return func(x float32) float32 {
			if x > 0 {
				return x
			}
			return alpha * x
		}
	case backend.UnarySigmoid:
		return Sigmoid
	case backend.UnarySiLU:
		return func(x float32) float32 { return x * Sigmoid(x) }
	case backend.UnaryHardSwish:
		return func(x float32) float32 {
			switch {
			case x <= -3:
				return 0
			case x >= 3:
				return x
			}
			return x * (x + 3) / 6
		}
	case backend.UnaryTanh:
		return func(x float32) float32 { return float32(math.Tanh(float64(x))) }
	}
	backend.Fail(Name, "Unary", "unknown op %d", op)
	return nil
}

// UnaryDerivative returns f′ for a pointwise op, given the input x and the
// output y.
func UnaryDerivative(op backend.UnaryOp, alpha, beta float32) func(x, y float32) float32 {
	switch op {
	case backend.UnaryScale:
		return func(_, _ float32) float32 { return alpha }
	case backend.UnaryExp:
		return func(_, y float32) float32 { return y }
	case backend.UnaryLog:
		return func(x, _ float32) float32 { return 1 / x }
	case backend.UnarySqrt:
		return func(_, y float32) float32 { return 0.5 / y }
	case backend.UnaryAbs:
		return func(x, _ float32) float32 {
			switch {
			case x > 0:
				return 1
			case x < 0:
				return -1
			}
			return 0
		}
	case backend.UnaryPow:
		return func(x, _ float32) float32 { return alpha * float32(math.Pow(float64(x), float64(alpha-1))) }
	case backend.UnaryClamp:
		return func(x, _ float32) float32 {
			if x < alpha || x > beta {
				return 0
			}
			return 1
		}
	case backend.UnaryReLU:
		return func(_, y float32) float32 {
			if y <= 0 { // a NaN output passes the gradient, as in PyTorch
				return 0
			}
			return 1
		}
	case backend.UnaryLeakyReLU:
		return func(x, _ float32) float32 {
			if x > 0 {
				return 1
			}
			return alpha
		}
	case backend.UnarySigmoid:
		return func(_, y float32) float32 { return y * (1 - y) }
	case backend.UnarySiLU:
		return func(x, _ float32) float32 {
			s := Sigmoid(x)
			return s * (1 + x*(1-s))
		}
	case backend.UnaryHardSwish:
		return func(x, _ float32) float32 {
			switch {
			case x < -3:
				return 0
			case x > 3:
				return 1
			}
			return (2*x + 3) / 6
		}
	case backend.UnaryTanh:
		return func(_, y float32) float32 { return 1 - y*y }
	}
	backend.Fail(Name, "UnaryBackward", "unknown op %d", op)
	return nil
}

// Unary implements backend.Backend.
func (r *Backend) Unary(a backend.UnaryArgs) {
	const k = "Unary"
	f := UnaryFunc(a.Op, a.Alpha, a.Beta)
	x := Floats(Name, k, a.X, a.N)
	y := Floats(Name, k, a.Y, a.N)
	for i, v := range x {
		y[i] = f(v)
	}
}

// UnaryBackward implements backend.Backend.
func (r *Backend) UnaryBackward(a backend.UnaryBackwardArgs) {
	const k = "UnaryBackward"
	df := UnaryDerivative(a.Op, a.Alpha, a.Beta)
	if a.DX.Buf == nil {
		return
	}
	x := Floats(Name, k, a.X, a.N)
	y := Floats(Name, k, a.Y, a.N)
	dy := Floats(Name, k, a.DY, a.N)
	dx := Floats(Name, k, a.DX.Buf, a.N)
	for i := range dx {
		put(dx, i, dy[i]*df(x[i], y[i]), a.DX.Accumulate)
	}
}

// BinaryFunc returns the function of a binary op.
func BinaryFunc(op backend.BinaryOp) func(a, b float32) float32 {
	switch op {
	case backend.BinaryAdd:
		return func(a, b float32) float32 { return a + b }
	case backend.BinarySub:
		return func(a, b float32) float32 { return a - b }
	case backend.BinaryMul:
		return func(a, b float32) float32 { return a * b }
	case backend.BinaryDiv:
		return func(a, b float32) float32 { return a / b }
	}
	backend.Fail(Name, "Binary", "unknown op %d", op)
	return nil
}

// Binary implements backend.Backend.
func (r *Backend) Binary(a backend.BinaryArgs) {
	const k = "Binary"
	f := BinaryFunc(a.Op)
	checkShape(k, a.Shape)
	n := numel(a.Shape)
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	dst := Floats(Name, k, a.Dst.Buf, n)
	if n == 0 {
		return
	}
	x, xs := viewFloats(k, "A", a.Shape, a.A)
	y, ys := viewFloats(k, "B", a.Shape, a.B)
	idx := make([]int, len(a.Shape))
	for i := 0; ; i++ {
		v := f(x[offset(a.A.Offset, idx, xs)], y[offset(a.B.Offset, idx, ys)])
		put(dst, i, v, a.Dst.Accumulate)
		if !next(idx, a.Shape) {
			return
		}
	}
}

// Where implements backend.Backend.
func (r *Backend) Where(a backend.WhereArgs) {
	const k = "Where"
	mask := Floats(Name, k, a.Mask, a.N)
	x := Floats(Name, k, a.A, a.N)
	y := Floats(Name, k, a.B, a.N)
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	dst := Floats(Name, k, a.Dst.Buf, a.N)
	for i, m := range mask {
		var v float32
		switch {
		case m != 0 && x != nil:
			v = x[i]
		case m == 0 && y != nil:
			v = y[i]
		}
		put(dst, i, v, a.Dst.Accumulate)
	}
}
