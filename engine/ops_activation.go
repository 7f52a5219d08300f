package engine

import "math"

// ReLU returns max(x, 0).
func ReLU(a *Tensor) *Tensor {
	return unary("ReLU", a, func(x float32) float32 { return max(x, 0) }, func(x, _ float32) float32 {
		if x > 0 {
			return 1
		}
		return 0
	})
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
