package models

import (
	"math/rand/v2"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// pass carries the settings of one forward pass through the module tree:
// batch-norm mode, and a cost counter when Detector.Cost traces the network.
type pass struct {
	training bool
	// frozen runs the imported backbone and neck as fixed feature
	// extractors: batch norms on running statistics (Detector.Frozen).
	frozen bool
	// inputH and inputW are the image size, against which imported parts'
	// output strides are checked.
	inputH, inputW int
	cost           *Cost
}

// conv runs c and, when tracing, counts its multiply-accumulates:
// every weight is used once per output position.
func (p *pass) conv(c *nn.Conv2d, x *engine.Tensor) *engine.Tensor {
	y := c.Forward(x)
	if p.cost != nil {
		p.cost.MACs += int64(c.Weight.Len()) * int64(y.Dim(0)*y.Dim(2)*y.Dim(3))
		p.cost.Convs++
	}
	return y
}

func (p *pass) convBNAct(b *nn.ConvBNAct, x *engine.Tensor) *engine.Tensor {
	return b.BN.ForwardAct(p.conv(b.Conv, x), p.training, b.Act)
}

// SepConv is a 3×3 block: either one full convolution, or (Depthwise) a
// depthwise 3×3 followed by a pointwise 1×1, each with batch norm.
type SepConv struct {
	Full      *nn.ConvBNAct
	Depthwise *nn.ConvBNAct
	Pointwise *nn.ConvBNAct
}

func newSepConv(rng *rand.Rand, in, out, stride int, separable bool, act nn.Activation) *SepConv {
	if !separable {
		return &SepConv{Full: nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: out, Kernel: 3, Stride: stride, Pad: 1}, act)}
	}
	return &SepConv{
		Depthwise: nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: in, Kernel: 3, Stride: stride, Pad: 1, Groups: in}, act),
		Pointwise: nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: out, Kernel: 1}, act),
	}
}

func (s *SepConv) forward(p *pass, x *engine.Tensor) *engine.Tensor {
	if s.Full != nil {
		return p.convBNAct(s.Full, x)
	}
	return p.convBNAct(s.Pointwise, p.convBNAct(s.Depthwise, x))
}

// Visit implements nn.Module.
func (s *SepConv) Visit(prefix string, v nn.Visitor) {
	if s.Full != nil {
		s.Full.Visit(nn.Join(prefix, "conv"), v)
		return
	}
	s.Depthwise.Visit(nn.Join(prefix, "dw"), v)
	s.Pointwise.Visit(nn.Join(prefix, "pw"), v)
}
