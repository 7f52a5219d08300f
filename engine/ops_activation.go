package engine

import "github.com/gidedge/gidedge/engine/backend"

// ReLU returns max(x, 0); NaN stays NaN.
func ReLU(a *Tensor) *Tensor { return unary("ReLU", backend.UnaryReLU, a, 0, 0) }

// LeakyReLU returns x for x > 0 and slope·x otherwise.
func LeakyReLU(a *Tensor, slope float32) *Tensor {
	return unary("LeakyReLU", backend.UnaryLeakyReLU, a, slope, 0)
}

// Sigmoid returns 1/(1+e⁻ˣ).
func Sigmoid(a *Tensor) *Tensor { return unary("Sigmoid", backend.UnarySigmoid, a, 0, 0) }

// SiLU returns x·sigmoid(x).
func SiLU(a *Tensor) *Tensor { return unary("SiLU", backend.UnarySiLU, a, 0, 0) }

// HardSwish returns x·relu6(x+3)/6.
func HardSwish(a *Tensor) *Tensor { return unary("HardSwish", backend.UnaryHardSwish, a, 0, 0) }

// Tanh returns the hyperbolic tangent.
func Tanh(a *Tensor) *Tensor { return unary("Tanh", backend.UnaryTanh, a, 0, 0) }
