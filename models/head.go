package models

import (
	"math/rand/v2"
	"strconv"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// TowerLayer is one convolution of a head tower. Its weights are shared by
// every pyramid level (as in RetinaNet and FCOS) while batch norm keeps
// separate statistics per level, because the levels' activations differ in
// scale. When Depthwise is set the layer is a depthwise 3×3 (with its own
// per-level norm) followed by the 1×1 Conv; otherwise Conv is a full 3×3.
type TowerLayer struct {
	Depthwise     *nn.Conv2d
	DepthwiseNorm []*nn.BatchNorm2d
	Conv          *nn.Conv2d
	Norm          []*nn.BatchNorm2d
	Act           nn.Activation
}

func newTowerLayer(rng *rand.Rand, in, out, levels int, depthwise bool, act nn.Activation) *TowerLayer {
	t := &TowerLayer{Act: act}
	if depthwise {
		t.Depthwise = nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: in, Kernel: 3, Pad: 1, Groups: in})
		t.Conv = nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: out, Kernel: 1})
	} else {
		t.Conv = nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: out, Kernel: 3, Pad: 1})
	}
	for range levels {
		if depthwise {
			t.DepthwiseNorm = append(t.DepthwiseNorm, nn.NewBatchNorm2d(in))
		}
		t.Norm = append(t.Norm, nn.NewBatchNorm2d(out))
	}
	return t
}

func (t *TowerLayer) forward(p *pass, level int, x *engine.Tensor) *engine.Tensor {
	if t.Depthwise != nil {
		x = t.DepthwiseNorm[level].ForwardAct(p.conv(t.Depthwise, x), p.training, t.Act)
	}
	return t.Norm[level].ForwardAct(p.conv(t.Conv, x), p.training, t.Act)
}

// Visit implements nn.Module.
func (t *TowerLayer) Visit(prefix string, v nn.Visitor) {
	if t.Depthwise != nil {
		t.Depthwise.Visit(nn.Join(prefix, "dw"), v)
		for i, n := range t.DepthwiseNorm {
			n.Visit(nn.Join(prefix, "dw_norm."+strconv.Itoa(i)), v)
		}
	}
	t.Conv.Visit(nn.Join(prefix, "conv"), v)
	for i, n := range t.Norm {
		n.Visit(nn.Join(prefix, "norm."+strconv.Itoa(i)), v)
	}
}

// Head is the detection head shared by all levels: a classification tower
// ending in A·K logits per position and a regression tower ending in A·4
// box values (RetinaNet deltas or FCOS log-distances) and, for FCOS, one
// centerness logit.
type Head struct {
	ClsTower   []*TowerLayer
	RegTower   []*TowerLayer
	ClsOut     *nn.Conv2d
	RegOut     *nn.Conv2d
	Centerness *nn.Conv2d // FCOS only
}

func newHead(rng *rand.Rand, cfg Config) *Head {
	h := &Head{}
	c := cfg.Head
	levels := len(cfg.FPN.Levels)
	in := cfg.FPN.Channels
	for i := 0; i < c.Convs; i++ {
		h.ClsTower = append(h.ClsTower, newTowerLayer(rng, in, c.Channels, levels, c.Depthwise, c.Act))
		h.RegTower = append(h.RegTower, newTowerLayer(rng, in, c.Channels, levels, c.Depthwise, c.Act))
		in = c.Channels
	}
	a := cfg.NumAnchors()
	out := func(n int) *nn.Conv2d {
		conv := nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: n, Kernel: 3, Pad: 1, Bias: true})
		nn.Normal(rng, conv.Weight, 0.01)
		return conv
	}
	h.ClsOut = out(a * cfg.NumClasses)
	nn.Fill(h.ClsOut.Bias, nn.PriorProbBias(c.PriorProb))
	h.RegOut = out(a * 4)
	if cfg.Family == FamilyFCOS {
		h.Centerness = out(1)
	}
	return h
}

func (h *Head) forward(p *pass, feats []*engine.Tensor, o *Outputs) {
	for l, f := range feats {
		c, r := f, f
		for i := range h.ClsTower {
			c = h.ClsTower[i].forward(p, l, c)
			r = h.RegTower[i].forward(p, l, r)
		}
		o.ClsLogits = append(o.ClsLogits, p.conv(h.ClsOut, c))
		o.BoxRegs = append(o.BoxRegs, p.conv(h.RegOut, r))
		if h.Centerness != nil {
			o.Centerness = append(o.Centerness, p.conv(h.Centerness, r))
		}
	}
}

// Visit implements nn.Module.
func (h *Head) Visit(prefix string, v nn.Visitor) {
	for i := range h.ClsTower {
		h.ClsTower[i].Visit(nn.Join(prefix, "cls_tower."+strconv.Itoa(i)), v)
		h.RegTower[i].Visit(nn.Join(prefix, "reg_tower."+strconv.Itoa(i)), v)
	}
	h.ClsOut.Visit(nn.Join(prefix, "cls_out"), v)
	h.RegOut.Visit(nn.Join(prefix, "reg_out"), v)
	if h.Centerness != nil {
		h.Centerness.Visit(nn.Join(prefix, "centerness"), v)
	}
}
