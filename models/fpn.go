package models

import (
	"math/rand/v2"
	"strconv"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// FPN is the feature pyramid: 1×1 laterals on C3–C5, a top-down pathway
// that adds the upsampled coarser level, a 3×3 output block per level, and
// optional P6/P7 made by stride-2 3×3 convolutions from P5 (RetinaNet's
// "P6 from P5" variant, ReLU before P7).
//
// With an imported neck (Config.Neck) the neck's graph makes P3–P5 from
// C3–C5 instead of the laterals and output blocks; P6/P7 are made the same
// way.
type FPN struct {
	Lateral []*nn.ConvBNAct // C3, C4, C5 → Channels
	Output  []*SepConv      // P3, P4, P5
	Neck    *GraphModule    // replaces Lateral and Output when set
	Extra   []*nn.ConvBNAct // P6, P7 when configured
}

func newFPN(rng *rand.Rand, in [3]int, c FPNConfig, neck *GraphConfig) *FPN {
	f := &FPN{}
	if neck != nil {
		f.Neck = NewGraphModule(rng, neck)
	}
	for _, ch := range in {
		if f.Neck != nil {
			break
		}
		f.Lateral = append(f.Lateral, nn.NewConvBNAct(rng, nn.ConvConfig{In: ch, Out: c.Channels, Kernel: 1}, nn.ActNone))
		f.Output = append(f.Output, newSepConv(rng, c.Channels, c.Channels, 1, c.Depthwise, nn.ActNone))
	}
	for range len(c.Levels) - 3 {
		f.Extra = append(f.Extra, nn.NewConvBNAct(rng, nn.ConvConfig{In: c.Channels, Out: c.Channels, Kernel: 3, Stride: 2, Pad: 1}, nn.ActNone))
	}
	return f
}

func (f *FPN) forward(p *pass, cs [3]*engine.Tensor) []*engine.Tensor {
	if f.Neck != nil {
		out := f.Neck.forward(p, p.frozen, cs[:])
		checkPorts("models.FPN neck", f.Neck.Config.Outputs, out, p.inputH, p.inputW)
		return f.extra(p, out)
	}
	lat := make([]*engine.Tensor, 3)
	for i := range cs {
		lat[i] = p.convBNAct(f.Lateral[i], cs[i])
	}
	// Top-down: upsample to the finer level's exact size, which need not be
	// twice the coarser one when the input is not a multiple of 32.
	for i := 1; i >= 0; i-- {
		up := engine.UpsampleNearest(lat[i+1], lat[i].Dim(2), lat[i].Dim(3))
		lat[i] = engine.Add(lat[i], up)
	}
	out := make([]*engine.Tensor, 0, 3+len(f.Extra))
	for i := range lat {
		out = append(out, f.Output[i].forward(p, lat[i]))
	}
	return f.extra(p, out)
}

// extra appends P6 and P7, made from P5, to P3–P5.
func (f *FPN) extra(p *pass, out []*engine.Tensor) []*engine.Tensor {
	x := out[2]
	for i, e := range f.Extra {
		if i > 0 {
			x = engine.ReLU(x)
		}
		x = p.convBNAct(e, x)
		out = append(out, x)
	}
	return out
}

// Visit implements nn.Module.
func (f *FPN) Visit(prefix string, v nn.Visitor) {
	if f.Neck != nil {
		f.Neck.Visit(nn.Join(prefix, "neck"), v)
	}
	for i := range f.Lateral {
		f.Lateral[i].Visit(nn.Join(prefix, "lateral."+strconv.Itoa(i)), v)
		f.Output[i].Visit(nn.Join(prefix, "output."+strconv.Itoa(i)), v)
	}
	for i, e := range f.Extra {
		e.Visit(nn.Join(prefix, "extra."+strconv.Itoa(i)), v)
	}
}
