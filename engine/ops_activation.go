package engine

import (
	"math"
	"slices"
)

// ReLU returns max(x, 0). It is the hottest pointwise op of conv nets, so
// it has its own loops (no per-element call) split across workers.
func ReLU(a *Tensor) *Tensor {
	out := newResultNoZero(slices.Clone(a.shape))
	src, dst := a.data, out.data
	// Activations are positive or negative at random, so both loops use
	// sign-bit masks instead of branches the CPU would mispredict.
	parallelRange(len(src), func(lo, hi int) {
		s, d := src[lo:hi], dst[lo:hi]
		for i, v := range s {
			b := math.Float32bits(v)
			d[i] = math.Float32frombits(b &^ uint32(int32(b)>>31))
		}
	})
	record(out, "ReLU", func(out *Tensor) {
		ga, overwrite := a.gradSink()
		g, y := out.grad, out.data
		parallelRange(len(g), func(lo, hi int) {
			gs, ys, dst := g[lo:hi], y[lo:hi], ga[lo:hi]
			dst = dst[:len(gs)]
			ys = ys[:len(gs)]
			for i, v := range gs {
				// y ≥ +0 here; keep = all ones where y > 0, else 0.
				keep := uint32(-int32(math.Float32bits(ys[i])) >> 31)
				masked := math.Float32frombits(math.Float32bits(v) & keep)
				if overwrite {
					dst[i] = masked
				} else {
					dst[i] += masked
				}
			}
		})
	}, a)
	return out
}

// LeakyReLU returns x for x > 0 and slope·x otherwise.
func LeakyReLU(a *Tensor, slope float32) *Tensor {
	return unary("LeakyReLU", a, func(x float32) float32 {
		if x > 0 {
			return x
		}
		return slope * x
	}, func(x, _ float32) float32 {
		if x > 0 {
			return 1
		}
		return slope
	})
}

func sigmoid(x float32) float32 {
	if x >= 0 {
		return 1 / (1 + float32(math.Exp(float64(-x))))
	}
	e := float32(math.Exp(float64(x)))
	return e / (1 + e)
}

// Sigmoid returns 1/(1+e⁻ˣ).
func Sigmoid(a *Tensor) *Tensor {
	return unary("Sigmoid", a, sigmoid, func(_, y float32) float32 { return y * (1 - y) })
}

// SiLU returns x·sigmoid(x).
func SiLU(a *Tensor) *Tensor {
	return unary("SiLU", a, func(x float32) float32 { return x * sigmoid(x) }, func(x, _ float32) float32 {
		s := sigmoid(x)
		return s * (1 + x*(1-s))
	})
}

// HardSwish returns x·relu6(x+3)/6.
func HardSwish(a *Tensor) *Tensor {
	return unary("HardSwish", a, func(x float32) float32 {
		switch {
		case x <= -3:
			return 0
		case x >= 3:
			return x
		}
		return x * (x + 3) / 6
	}, func(x, _ float32) float32 {
		switch {
		case x < -3:
			return 0
		case x > 3:
			return 1
		}
		return (2*x + 3) / 6
	})
}

// Tanh returns the hyperbolic tangent.
func Tanh(a *Tensor) *Tensor {
	return unary("Tanh", a, func(x float32) float32 { return float32(math.Tanh(float64(x))) }, func(_, y float32) float32 { return 1 - y*y })
}
