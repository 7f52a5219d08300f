package kernels_test

import (
	"slices"

	"github.com/gidedge/gidedge/engine"
	_ "github.com/gidedge/gidedge/engine/cpu" // the engine's ops run on the CPU backend: the oracle
)

// The engine's CPU ops are the oracle: the kernels implement the same
// semantics (torchvision's ROIAlign, PyTorch's losses and optimizers), so
// each test runs the engine op forward and backward on the same inputs.
// Every use of the engine's API is in this file.

// oracle runs op on copies of inputs that require gradients, back-propagates
// gy and returns the output and each input's gradient (nil when the input
// takes none).
func oracle(op func(in []*engine.Tensor) *engine.Tensor, gy []float32, inputs ...tensor) ([]float32, [][]float32) {
	ts := make([]*engine.Tensor, len(inputs))
	for i, in := range inputs {
		ts[i] = engine.FromHost(slices.Clone(in.data), in.shape...)
		if !in.constant {
			ts[i].SetRequiresGrad(true)
		}
	}
	out := op(ts)
	data := slices.Clone(out.ToHost())
	grads := make([][]float32, len(inputs))
	if gy != nil {
		out.BackwardWith(engine.FromHost(slices.Clone(gy), out.Shape()...))
		for i, t := range ts {
			if g := t.GradToHost(); g != nil {
				grads[i] = slices.Clone(g)
			} else if !inputs[i].constant {
				grads[i] = make([]float32, len(inputs[i].data))
			}
		}
	}
	return data, grads
}

// tensor is a test input: data, shape, and whether it is a constant (takes
// no gradient).
type tensor struct {
	data     []float32
	shape    []int
	constant bool
}

func tns(data []float32, shape ...int) tensor { return tensor{data: data, shape: shape} }
func konst(data []float32, shape ...int) tensor {
	return tensor{data: data, shape: shape, constant: true}
}
