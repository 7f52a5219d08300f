package engine

import (
	"math"
	"slices"
)

type binaryKind int

const (
	opAdd binaryKind = iota
	opSub
	opMul
	opDiv
)

var binaryNames = [...]string{"Add", "Sub", "Mul", "Div"}

// Add returns a + b with broadcasting.
func Add(a, b *Tensor) *Tensor { return binary(opAdd, a, b) }

// Sub returns a − b with broadcasting.
func Sub(a, b *Tensor) *Tensor { return binary(opSub, a, b) }

// Mul returns a · b elementwise with broadcasting.
func Mul(a, b *Tensor) *Tensor { return binary(opMul, a, b) }

// Div returns a / b elementwise with broadcasting.
func Div(a, b *Tensor) *Tensor { return binary(opDiv, a, b) }

func binary(kind binaryKind, a, b *Tensor) *Tensor {
	name := binaryNames[kind]
	outShape, ok := broadcastShape(a.shape, b.shape)
	check(ok, name, "shapes do not broadcast", nil, a, b)
	out := newResultNoZero(outShape)
	sa := broadcastStrides(a.shape, outShape)
	sb := broadcastStrides(b.shape, outShape)
	ad, bd, od := a.data, b.data, out.data
	forEachBroadcast(outShape, sa, sb, func(i, ia, ib, n, stepA, stepB int) {
		o := od[i : i+n]
		switch {
		case stepA == 1 && stepB == 1:
			x, y := ad[ia:ia+n], bd[ib:ib+n]
			switch kind {
			case opAdd:
				for k := range o {
					o[k] = x[k] + y[k]
				}
			case opSub:
				for k := range o {
					o[k] = x[k] - y[k]
				}
			case opMul:
				for k := range o {
					o[k] = x[k] * y[k]
				}
			case opDiv:
				for k := range o {
					o[k] = x[k] / y[k]
				}
			}
		default:
			for k := range o {
				x, y := ad[ia+k*stepA], bd[ib+k*stepB]
				switch kind {
				case opAdd:
					o[k] = x + y
				case opSub:
					o[k] = x - y
				case opMul:
					o[k] = x * y
				case opDiv:
					o[k] = x / y
				}
			}
		}
	})
	record(out, name, func(out *Tensor) {
		g := out.grad
		if a.requiresGrad {
			ga := g
			switch kind {
			case opMul:
				ga = getBufNoZero(len(g))
				binaryInto(ga, g, outShape, b.data, b.shape, func(x, y float32) float32 { return x * y })
			case opDiv:
				ga = getBufNoZero(len(g))
				binaryInto(ga, g, outShape, b.data, b.shape, func(x, y float32) float32 { return x / y })
			}
			sumToShape(a.ensureGrad(), a.shape, ga, outShape)
			if kind == opMul || kind == opDiv {
				putBuf(ga)
			}
		}
		if b.requiresGrad {
			gb := g
			switch kind {
			case opSub:
				gb = getBufNoZero(len(g))
				for i, v := range g {
					gb[i] = -v
				}
			case opMul:
				gb = getBufNoZero(len(g))
				binaryInto(gb, g, outShape, a.data, a.shape, func(x, y float32) float32 { return x * y })
			case opDiv:
				// d(a/b)/db = −out/b
				gb = getBufNoZero(len(g))
				binaryInto(gb, g, outShape, b.data, b.shape, func(x, y float32) float32 { return x / y })
				for i := range gb {
					gb[i] *= -out.data[i]
				}
			}
			sumToShape(b.ensureGrad(), b.shape, gb, outShape)
			if kind != opAdd {
				putBuf(gb)
			}
		}
	}, a, b)
	return out
}

// binaryInto writes dst[i] = f(x[i], y[bcast(i)]) where x has the output
// shape and y broadcasts to it.
func binaryInto(dst, x []float32, outShape []int, y []float32, yShape []int, f func(x, y float32) float32) {
	if slices.Equal(outShape, yShape) {
		for i := range dst {
			dst[i] = f(x[i], y[i])
		}
		return
	}
	sx := broadcastStrides(outShape, outShape)
	sy := broadcastStrides(yShape, outShape)
	forEachBroadcast(outShape, sx, sy, func(i, _, iy, n, _, stepY int) {
		for k := 0; k < n; k++ {
			dst[i+k] = f(x[i+k], y[iy+k*stepY])
		}
	})
}

// unary applies f elementwise; df returns the derivative given input x and
// output y.
func unary(name string, a *Tensor, f func(x float32) float32, df func(x, y float32) float32) *Tensor {
	out := newResultNoZero(slices.Clone(a.shape))
	parallelRange(len(a.data), func(lo, hi int) {
		dst := out.data[lo:hi]
		for i, x := range a.data[lo:hi] {
			dst[i] = f(x)
		}
	})
	record(out, name, func(out *Tensor) {
		ga := a.ensureGrad()
		parallelRange(len(ga), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ga[i] += out.grad[i] * df(a.data[i], out.data[i])
			}
		})
	}, a)
	return out
}

// AddScalar returns a + s.
func AddScalar(a *Tensor, s float32) *Tensor {
	return unary("AddScalar", a, func(x float32) float32 { return x + s }, func(_, _ float32) float32 { return 1 })
}

// MulScalar returns a · s.
func MulScalar(a *Tensor, s float32) *Tensor {
	return unary("MulScalar", a, func(x float32) float32 { return x * s }, func(_, _ float32) float32 { return s })
}

// Neg returns −a.
func Neg(a *Tensor) *Tensor { return MulScalar(a, -1) }

// Exp returns eˣ.
func Exp(a *Tensor) *Tensor {
	return unary("Exp", a, func(x float32) float32 { return float32(math.Exp(float64(x))) }, func(_, y float32) float32 { return y })
}

// Log returns the natural logarithm.
func Log(a *Tensor) *Tensor {
	return unary("Log", a, func(x float32) float32 { return float32(math.Log(float64(x))) }, func(x, _ float32) float32 { return 1 / x })
}

// Sqrt returns √x.
func Sqrt(a *Tensor) *Tensor {
	return unary("Sqrt", a, func(x float32) float32 { return float32(math.Sqrt(float64(x))) }, func(_, y float32) float32 { return 0.5 / y })
}

// Abs returns |x|; its derivative at 0 is taken as 0.
func Abs(a *Tensor) *Tensor {
	return unary("Abs", a, func(x float32) float32 { return float32(math.Abs(float64(x))) }, func(x, _ float32) float32 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return 0
	})
}

// Pow returns xᵖ for a constant exponent p.
func Pow(a *Tensor, p float32) *Tensor {
	return unary("Pow", a, func(x float32) float32 { return float32(math.Pow(float64(x), float64(p))) }, func(x, _ float32) float32 {
		return p * float32(math.Pow(float64(x), float64(p-1)))
	})
}

// Clamp limits values to [lo, hi]; the gradient is zero outside the range.
func Clamp(a *Tensor, lo, hi float32) *Tensor {
	return unary("Clamp", a, func(x float32) float32 { return min(max(x, lo), hi) }, func(x, _ float32) float32 {
		if x < lo || x > hi {
			return 0
		}
		return 1
	})
}

// Where selects a where mask is non-zero and b elsewhere. mask has the
// output shape and takes no gradient; a and b must have the mask's shape.
func Where(mask, a, b *Tensor) *Tensor {
	check(slices.Equal(mask.shape, a.shape) && slices.Equal(a.shape, b.shape), "Where", "mask, a and b must have one shape", nil, mask, a, b)
	out := newResultNoZero(slices.Clone(a.shape))
	for i, m := range mask.data {
		if m != 0 {
			out.data[i] = a.data[i]
		} else {
			out.data[i] = b.data[i]
		}
	}
	record(out, "Where", func(out *Tensor) {
		if a.requiresGrad {
			ga := a.ensureGrad()
			for i, m := range mask.data {
				if m != 0 {
					ga[i] += out.grad[i]
				}
			}
		}
		if b.requiresGrad {
			gb := b.ensureGrad()
			for i, m := range mask.data {
				if m == 0 {
					gb[i] += out.grad[i]
				}
			}
		}
	}, a, b)
	return out
}

// MaskedFill returns a with value written where mask is non-zero.
func MaskedFill(a, mask *Tensor, value float32) *Tensor {
	return Where(mask, Full(value, a.shape...), a)
}
