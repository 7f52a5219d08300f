package models

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// Backbone turns an image batch into the C3, C4, C5 feature maps (strides
// 8, 16 and 32).
type Backbone interface {
	nn.Module
	// OutChannels are the widths of C3, C4 and C5.
	OutChannels() [3]int
	forward(p *pass, x *engine.Tensor) [3]*engine.Tensor
}

// Block is one residual unit of a backbone stage.
type Block interface {
	nn.Module
	forward(p *pass, x *engine.Tensor) *engine.Tensor
}

// Stages is the shared skeleton of both backbones: stride-2 stem
// convolutions, then blocks; Taps are the indices of the blocks whose
// outputs are C3, C4 and C5.
type Stages struct {
	Stem     []*nn.ConvBNAct
	Blocks   []Block
	Taps     [3]int
	Channels [3]int
}

// OutChannels implements Backbone.
func (s *Stages) OutChannels() [3]int { return s.Channels }

func (s *Stages) forward(p *pass, x *engine.Tensor) [3]*engine.Tensor {
	for _, c := range s.Stem {
		x = p.convBNAct(c, x)
	}
	var out [3]*engine.Tensor
	for i, b := range s.Blocks {
		x = b.forward(p, x)
		for k, t := range s.Taps {
			if t == i {
				out[k] = x
			}
		}
	}
	return out
}

// Visit implements nn.Module.
func (s *Stages) Visit(prefix string, v nn.Visitor) {
	for i, c := range s.Stem {
		c.Visit(nn.Join(prefix, "stem."+strconv.Itoa(i)), v)
	}
	for i, b := range s.Blocks {
		b.Visit(nn.Join(prefix, "blocks."+strconv.Itoa(i)), v)
	}
}

// newBackbone builds the backbone a validated config describes.
func newBackbone(rng *rand.Rand, c BackboneConfig) (Backbone, error) {
	if c.Type == BackboneImported {
		if c.Graph == nil {
			return nil, fmt.Errorf("models: backbone.type %q needs backbone.graph", BackboneImported)
		}
		return &GraphBackbone{Graph: NewGraphModule(rng, c.Graph)}, nil
	}
	s := &Stages{}
	in := 3
	for _, w := range c.Stem {
		s.Stem = append(s.Stem, nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: w, Kernel: 3, Stride: 2, Pad: 1}, c.Act))
		in = w
	}
	stride := 1 << len(c.Stem)
	for _, st := range c.Stages {
		for d := 0; d < st.Depth; d++ {
			bs := 1
			if d == 0 {
				bs = st.Stride
			}
			var b Block
			switch c.Type {
			case BackboneResNet:
				b = newBasicBlock(rng, in, st.Out, bs, c.Act)
			case BackboneMobileNetV2:
				b = newInvertedResidual(rng, in, st.Out, bs, st.Expand, c.Act)
			default:
				return nil, fmt.Errorf("models: backbone.type %q, want %q, %q or %q", c.Type, BackboneResNet, BackboneMobileNetV2, BackboneImported)
			}
			s.Blocks = append(s.Blocks, b)
			stride *= bs
			in = st.Out
		}
		for k, want := range []int{8, 16, 32} {
			if stride == want {
				s.Taps[k] = len(s.Blocks) - 1
				s.Channels[k] = in
			}
		}
	}
	return s, nil
}

// BasicBlock is ResNet's two-convolution residual block; a 1×1 projection
// matches the shortcut when the shape changes. The second batch norm starts
// at zero scale so every block starts as the identity, which lets a deep
// network train from scratch.
type BasicBlock struct {
	Conv1, Conv2 *nn.ConvBNAct
	Shortcut     *nn.ConvBNAct // nil when input and output shapes agree
	Act          nn.Activation
}

func newBasicBlock(rng *rand.Rand, in, out, stride int, act nn.Activation) *BasicBlock {
	b := &BasicBlock{
		Conv1: nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: out, Kernel: 3, Stride: stride, Pad: 1}, act),
		Conv2: nn.NewConvBNAct(rng, nn.ConvConfig{In: out, Out: out, Kernel: 3, Pad: 1}, nn.ActNone),
		Act:   act,
	}
	nn.Fill(b.Conv2.BN.Gamma, 0)
	if stride != 1 || in != out {
		b.Shortcut = nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: out, Kernel: 1, Stride: stride}, nn.ActNone)
	}
	return b
}

func (b *BasicBlock) forward(p *pass, x *engine.Tensor) *engine.Tensor {
	y := p.convBNAct(b.Conv2, p.convBNAct(b.Conv1, x))
	short := x
	if b.Shortcut != nil {
		short = p.convBNAct(b.Shortcut, x)
	}
	return b.Act.Apply(engine.Add(y, short))
}

// Visit implements nn.Module.
func (b *BasicBlock) Visit(prefix string, v nn.Visitor) {
	b.Conv1.Visit(nn.Join(prefix, "conv1"), v)
	b.Conv2.Visit(nn.Join(prefix, "conv2"), v)
	if b.Shortcut != nil {
		b.Shortcut.Visit(nn.Join(prefix, "shortcut"), v)
	}
}

// InvertedResidual is MobileNetV2's block: 1×1 expansion, depthwise 3×3,
// linear 1×1 projection, with a residual connection when the shape is kept.
type InvertedResidual struct {
	Expand    *nn.ConvBNAct // nil when the expansion ratio is 1
	Depthwise *nn.ConvBNAct
	Project   *nn.ConvBNAct
	Residual  bool
}

func newInvertedResidual(rng *rand.Rand, in, out, stride, expand int, act nn.Activation) *InvertedResidual {
	hidden := in * expand
	b := &InvertedResidual{Residual: stride == 1 && in == out}
	if expand != 1 {
		b.Expand = nn.NewConvBNAct(rng, nn.ConvConfig{In: in, Out: hidden, Kernel: 1}, act)
	}
	b.Depthwise = nn.NewConvBNAct(rng, nn.ConvConfig{In: hidden, Out: hidden, Kernel: 3, Stride: stride, Pad: 1, Groups: hidden}, act)
	b.Project = nn.NewConvBNAct(rng, nn.ConvConfig{In: hidden, Out: out, Kernel: 1}, nn.ActNone)
	if b.Residual {
		nn.Fill(b.Project.BN.Gamma, 0)
	}
	return b
}

func (b *InvertedResidual) forward(p *pass, x *engine.Tensor) *engine.Tensor {
	y := x
	if b.Expand != nil {
		y = p.convBNAct(b.Expand, y)
	}
	y = p.convBNAct(b.Project, p.convBNAct(b.Depthwise, y))
	if b.Residual {
		return engine.Add(y, x)
	}
	return y
}

// Visit implements nn.Module.
func (b *InvertedResidual) Visit(prefix string, v nn.Visitor) {
	if b.Expand != nil {
		b.Expand.Visit(nn.Join(prefix, "expand"), v)
	}
	b.Depthwise.Visit(nn.Join(prefix, "dw"), v)
	b.Project.Visit(nn.Join(prefix, "project"), v)
}
