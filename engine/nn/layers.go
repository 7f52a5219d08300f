package nn

import (
	"math/rand/v2"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
)

// Conv2d is a convolution layer with weight [Cout, Cin/groups, K, K] and
// optional bias [Cout].
type Conv2d struct {
	Weight, Bias *engine.Tensor
	Options      engine.ConvOptions
}

// ConvConfig describes a Conv2d layer.
type ConvConfig struct {
	In, Out, Kernel int
	Stride, Pad     int
	Groups          int
	Dilation        int
	Bias            bool
}

// NewConv2d builds a convolution with Kaiming-normal weights (fan-out,
// ReLU gain, as detection backbones use) and zero bias.
func NewConv2d(rng *rand.Rand, c ConvConfig) *Conv2d {
	groups := max(c.Groups, 1)
	w := engine.Zeros(c.Out, c.In/groups, c.Kernel, c.Kernel)
	KaimingNormal(rng, w, c.Out*c.Kernel*c.Kernel)
	conv := &Conv2d{Weight: w.SetRequiresGrad(true), Options: engine.ConvOptions{Stride: c.Stride, Pad: c.Pad, Groups: groups, Dilation: c.Dilation}}
	if c.Bias {
		conv.Bias = engine.Zeros(c.Out).SetRequiresGrad(true)
	}
	return conv
}

// Forward applies the convolution.
func (c *Conv2d) Forward(x *engine.Tensor) *engine.Tensor {
	return engine.Conv2d(x, c.Weight, c.Bias, c.Options)
}

// Visit implements Module.
func (c *Conv2d) Visit(prefix string, v Visitor) {
	v(Join(prefix, "weight"), c.Weight, true)
	if c.Bias != nil {
		v(Join(prefix, "bias"), c.Bias, true)
	}
}

// BatchNorm2d normalises channels with learnt scale and shift.
type BatchNorm2d struct {
	Gamma, Beta *engine.Tensor
	State       engine.BatchNormState
}

// NewBatchNorm2d returns a batch norm with gamma 1, beta 0, momentum 0.1 and
// eps 1e-5 (PyTorch defaults).
func NewBatchNorm2d(channels int) *BatchNorm2d {
	return &BatchNorm2d{
		Gamma: engine.Full(1, channels).SetRequiresGrad(true),
		Beta:  engine.Zeros(channels).SetRequiresGrad(true),
		State: engine.BatchNormState{
			RunningMean: engine.Zeros(channels),
			RunningVar:  engine.Full(1, channels),
			Momentum:    0.1,
			Eps:         1e-5,
		},
	}
}

// Forward normalises with batch statistics when training, running ones otherwise.
func (b *BatchNorm2d) Forward(x *engine.Tensor, training bool) *engine.Tensor {
	return engine.BatchNorm2d(x, b.Gamma, b.Beta, &b.State, training)
}

// ForwardAct is act.Apply(Forward(x, training)), with ReLU and ReLU6 run
// inside batch norm's kernel where the device fuses them.
func (b *BatchNorm2d) ForwardAct(x *engine.Tensor, training bool, act Activation) *engine.Tensor {
	if f, ok := act.fused(); ok {
		return engine.BatchNorm2dAct(x, b.Gamma, b.Beta, &b.State, training, f)
	}
	return act.Apply(b.Forward(x, training))
}

// Visit implements Module.
func (b *BatchNorm2d) Visit(prefix string, v Visitor) {
	v(Join(prefix, "weight"), b.Gamma, true)
	v(Join(prefix, "bias"), b.Beta, true)
	v(Join(prefix, "running_mean"), b.State.RunningMean, false)
	v(Join(prefix, "running_var"), b.State.RunningVar, false)
}

// Activation names a pointwise non-linearity.
type Activation string

// Activations layers may use.
const (
	ActNone      Activation = "none"
	ActReLU      Activation = "relu"
	ActReLU6     Activation = "relu6"
	ActLeakyReLU Activation = "leaky_relu"
	ActSiLU      Activation = "silu"
	ActHardSwish Activation = "hardswish"
)

// Apply runs the activation.
func (a Activation) Apply(x *engine.Tensor) *engine.Tensor {
	switch a {
	case ActReLU:
		return engine.ReLU(x)
	case ActReLU6:
		return engine.Clamp(x, 0, 6)
	case ActLeakyReLU:
		return engine.LeakyReLU(x, 0.1)
	case ActSiLU:
		return engine.SiLU(x)
	case ActHardSwish:
		return engine.HardSwish(x)
	}
	return x
}

// fused returns the engine's form of the activations batch norm can apply
// in its own kernel (ReLU, ReLU6).
func (a Activation) fused() (engine.Activation, bool) {
	switch a {
	case ActReLU:
		return engine.Activation{Op: backend.UnaryReLU}, true
	case ActReLU6:
		return engine.Activation{Op: backend.UnaryClamp, Alpha: 0, Beta: 6}, true
	}
	return engine.Activation{}, false
}

// ConvBNAct is conv → batch norm → activation, the unit of both backbones.
type ConvBNAct struct {
	Conv *Conv2d
	BN   *BatchNorm2d
	Act  Activation
}

// NewConvBNAct builds the block; the conv has no bias (batch norm supplies it).
func NewConvBNAct(rng *rand.Rand, c ConvConfig, act Activation) *ConvBNAct {
	c.Bias = false
	return &ConvBNAct{Conv: NewConv2d(rng, c), BN: NewBatchNorm2d(c.Out), Act: act}
}

// Forward applies the block.
func (b *ConvBNAct) Forward(x *engine.Tensor, training bool) *engine.Tensor {
	return b.BN.ForwardAct(b.Conv.Forward(x), training, b.Act)
}

// Visit implements Module.
func (b *ConvBNAct) Visit(prefix string, v Visitor) {
	b.Conv.Visit(Join(prefix, "conv"), v)
	b.BN.Visit(Join(prefix, "bn"), v)
}
