package models

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/geom"
)

// RPNHead is the two-stage family's region proposal network: a tower of
// 3×3 convolutions shared by every pyramid level (batch norm per level, as
// the one-stage heads have), then two 1×1 convolutions, one objectness
// logit and four box deltas per anchor.
type RPNHead struct {
	Tower      []*TowerLayer
	Objectness *nn.Conv2d // [A, C, 1, 1]
	Deltas     *nn.Conv2d // [4A, C, 1, 1]
}

func newRPNHead(rng *rand.Rand, cfg Config) *RPNHead {
	h := &RPNHead{}
	c := cfg.Head
	in := cfg.FPN.Channels
	for range c.Convs {
		h.Tower = append(h.Tower, newTowerLayer(rng, in, c.Channels, len(cfg.FPN.Levels), c.Depthwise, c.Act))
		in = c.Channels
	}
	a := cfg.NumAnchors()
	out := func(n int) *nn.Conv2d {
		conv := nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: n, Kernel: 1, Bias: true})
		nn.Normal(rng, conv.Weight, 0.01)
		return conv
	}
	h.Objectness = out(a)
	nn.Fill(h.Objectness.Bias, nn.PriorProbBias(c.PriorProb))
	h.Deltas = out(4 * a)
	return h
}

// forward fills o.ClsLogits (objectness, [N, A, H, W]) and o.BoxRegs
// (deltas, [N, 4A, H, W]) for every level.
func (h *RPNHead) forward(p *pass, feats []*engine.Tensor, o *Outputs) {
	for l, f := range feats {
		x := f
		for _, t := range h.Tower {
			x = t.forward(p, l, x)
		}
		o.ClsLogits = append(o.ClsLogits, p.conv(h.Objectness, x))
		o.BoxRegs = append(o.BoxRegs, p.conv(h.Deltas, x))
	}
}

// Visit implements nn.Module.
func (h *RPNHead) Visit(prefix string, v nn.Visitor) {
	for i, t := range h.Tower {
		t.Visit(nn.Join(prefix, "tower."+strconv.Itoa(i)), v)
	}
	h.Objectness.Visit(nn.Join(prefix, "objectness"), v)
	h.Deltas.Visit(nn.Join(prefix, "deltas"), v)
}

// Proposals are one image's region proposals, best first.
type Proposals struct {
	// Boxes holds P·4 values x1, y1, x2, y2 in input pixels, clipped.
	Boxes []float32
	// Scores holds the P objectness logits.
	Scores []float32
}

// Len is P.
func (p Proposals) Len() int { return len(p.Scores) }

// ProposalOptions are the settings of GenerateProposals for one pass.
type ProposalOptions struct {
	// PreNMSTopK anchors with the highest objectness per level enter NMS;
	// PostNMSTopK proposals per image leave it.
	PreNMSTopK, PostNMSTopK int
	NMSIoU                  float32
	// MinSize drops boxes whose width or height is not above it.
	MinSize float32
	// Width and Height are the input size boxes are clipped to.
	Width, Height float32
	// Weights are the RPN's box-coder weights.
	Weights [4]float32
}

// GenerateProposals turns one image's RPN outputs into proposals, as the
// reference implementations do: per pyramid level the PreNMSTopK anchors
// with the highest objectness logits (ties: lower position first) are
// decoded, clipped to the input, stripped of boxes not wider and taller
// than MinSize and of non-finite ones, and reduced by NMS at NMSIoU within
// the level; the survivors of all levels are sorted by logit (ties: level
// order) and the best PostNMSTopK kept. logits holds the R objectness
// logits and deltas the R·4 box deltas of the image, in the flattened
// order of p.
func GenerateProposals(p *Priors, logits, deltas []float32, opt ProposalOptions) Proposals {
	var boxes, scores []float32
	for _, lv := range p.Levels {
		idx := make([]int, lv.Count)
		for i := range idx {
			idx[i] = lv.Start + i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(logits[b], logits[a]) })
		if len(idx) > opt.PreNMSTopK {
			idx = idx[:opt.PreNMSTopK]
		}
		anchors := make([]float32, 0, 4*len(idx))
		reg := make([]float32, 0, 4*len(idx))
		for _, r := range idx {
			anchors = append(anchors, p.Anchors[4*r:4*r+4]...)
			reg = append(reg, deltas[4*r:4*r+4]...)
		}
		decoded := DecodeDeltas(anchors, reg, opt.Weights)
		var lb, ls []float32
		for q, r := range idx {
			b := decoded[4*q : 4*q+4]
			b[0], b[2] = min(max(b[0], 0), opt.Width), min(max(b[2], 0), opt.Width)
			b[1], b[3] = min(max(b[1], 0), opt.Height), min(max(b[3], 0), opt.Height)
			s := logits[r]
			if !finite(s) || !finite(b[0]) || !finite(b[1]) || !finite(b[2]) || !finite(b[3]) {
				continue
			}
			if !(b[2]-b[0] > opt.MinSize && b[3]-b[1] > opt.MinSize) {
				continue
			}
			lb = append(lb, b...)
			ls = append(ls, s)
		}
		for _, k := range geom.NMS(lb, ls, opt.NMSIoU) {
			boxes = append(boxes, lb[4*k:4*k+4]...)
			scores = append(scores, ls[k])
		}
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	if len(order) > opt.PostNMSTopK {
		order = order[:opt.PostNMSTopK]
	}
	out := Proposals{Boxes: make([]float32, 0, 4*len(order)), Scores: make([]float32, 0, len(order))}
	for _, k := range order {
		out.Boxes = append(out.Boxes, boxes[4*k:4*k+4]...)
		out.Scores = append(out.Scores, scores[k])
	}
	return out
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// rpnHost holds a batch's RPN outputs on the host, per image: R logits and
// R·4 deltas in the flattened order.
type rpnHost struct {
	logits, deltas [][]float32
}

// readRPN copies the RPN outputs of o to the host in one transfer: the
// flattened objectness [N, R, 1] and deltas [N, R, 4] joined as [N, R, 5].
func readRPN(o *Outputs) rpnHost {
	var flat []float32
	var n, r int
	engine.NoGrad(func() {
		cls, reg := Flatten(o)
		n, r = cls.Dim(0), cls.Dim(1)
		flat = engine.Concat(2, cls.Detach(), reg.Detach()).ToHost()
	})
	h := rpnHost{logits: make([][]float32, n), deltas: make([][]float32, n)}
	for i := range n {
		h.logits[i] = make([]float32, r)
		h.deltas[i] = make([]float32, 4*r)
		for q := range r {
			row := flat[(i*r+q)*5 : (i*r+q+1)*5]
			h.logits[i][q] = row[0]
			copy(h.deltas[i][4*q:4*q+4], row[1:])
		}
	}
	return h
}

// proposalOptions returns the RPN settings of a training or inference pass
// for an h×w input.
func (d *Detector) proposalOptions(training bool, h, w int) ProposalOptions {
	r := d.Config.RPN
	opt := ProposalOptions{PreNMSTopK: r.PreNMSTopKTest, PostNMSTopK: r.PostNMSTopKTest, NMSIoU: r.NMSIoU, MinSize: r.MinSize,
		Width: float32(w), Height: float32(h), Weights: d.Config.Loss.BoxCoderWeights}
	if training {
		opt.PreNMSTopK, opt.PostNMSTopK = r.PreNMSTopKTrain, r.PostNMSTopKTrain
	}
	return opt
}

// Proposals returns each image's region proposals from the RPN outputs of
// o (two-stage detectors only), with the training settings of the rpn
// section (training) or its inference ones. It reads the RPN outputs to
// the host in one transfer; nothing it returns is in the autograd graph.
func (d *Detector) Proposals(o *Outputs, training bool) []Proposals {
	d.mustTwoStage("Proposals")
	return d.proposalsFrom(o, readRPN(o), training)
}

func (d *Detector) proposalsFrom(o *Outputs, h rpnHost, training bool) []Proposals {
	p := d.Priors(o.InputH, o.InputW)
	opt := d.proposalOptions(training, o.InputH, o.InputW)
	out := make([]Proposals, len(h.logits))
	for i := range out {
		out[i] = GenerateProposals(p, h.logits[i], h.deltas[i], opt)
	}
	return out
}

// mustTwoStage panics with an *engine.OpError when d is a one-stage
// detector: calling a two-stage method on it is a programmer error.
func (d *Detector) mustTwoStage(op string) {
	if !d.Config.TwoStage() {
		panic(&engine.OpError{Op: "models." + op, Err: engine.ErrShape, Detail: "the " + d.Config.Family + " detector " + d.Config.Name + " has no second stage"})
	}
}
