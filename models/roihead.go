package models

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// BoxHead is the two-stage family's second stage on pooled regions
// [K, C, S, S]: two fully connected layers with ReLU (written as an S×S
// convolution and a 1×1 convolution, so the ONNX export and the quantizer
// see ordinary Conv nodes), then K+1 class logits (background last) and
// 4·K class-specific box deltas per region.
type BoxHead struct {
	FC1, FC2 *nn.Conv2d
	Cls, Reg *nn.Conv2d
}

func newBoxHead(rng *rand.Rand, cfg Config) *BoxHead {
	h := cfg.ROIHead
	c, s, d := cfg.FPN.Channels, h.PoolSize, h.FCDim
	fc := func(in, kernel int) *nn.Conv2d {
		conv := nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: d, Kernel: kernel, Bias: true})
		// Caffe2's "xavier" fill of the reference box heads: U(±√(3/fan_in)).
		bound := math.Sqrt(3 / float64(in*kernel*kernel))
		nn.Uniform(rng, conv.Weight, -bound, bound)
		return conv
	}
	out := func(n int, std float64) *nn.Conv2d {
		conv := nn.NewConv2d(rng, nn.ConvConfig{In: d, Out: n, Kernel: 1, Bias: true})
		nn.Normal(rng, conv.Weight, std)
		return conv
	}
	return &BoxHead{
		FC1: fc(c, s),
		FC2: fc(d, 1),
		Cls: out(cfg.NumClasses+1, 0.01),
		Reg: out(4*cfg.NumClasses, 0.001),
	}
}

// forward maps pooled regions x [K, C, S, S] to class logits [K, K+1] and
// box deltas [K, 4·K].
func (b *BoxHead) forward(p *pass, x *engine.Tensor) (cls, reg *engine.Tensor) {
	k := x.Dim(0)
	h := engine.ReLU(p.conv(b.FC1, x))
	h = engine.ReLU(p.conv(b.FC2, h))
	cls = engine.Reshape(p.conv(b.Cls, h), k, -1)
	reg = engine.Reshape(p.conv(b.Reg, h), k, -1)
	return cls, reg
}

// Visit implements nn.Module.
func (b *BoxHead) Visit(prefix string, v nn.Visitor) {
	b.FC1.Visit(nn.Join(prefix, "fc1"), v)
	b.FC2.Visit(nn.Join(prefix, "fc2"), v)
	b.Cls.Visit(nn.Join(prefix, "cls"), v)
	b.Reg.Visit(nn.Join(prefix, "reg"), v)
}

// LevelThresholds returns the box areas at which FPN's level rule
// k = ⌊k0 + log2(√(wh)/s0)⌋ moves a box from one of the pyramid levels
// (e.g. [3 4 5]) to the next: a box belongs to level index i (0 = finest)
// when its area w·h reaches thresholds[0..i−1] but not thresholds[i]. The
// rule is evaluated as these area comparisons, in float32, so the engine
// and an exported graph agree on every box, boundaries included.
func LevelThresholds(levels []int, k0 int, s0 float32) []float32 {
	t := make([]float32, 0, len(levels)-1)
	for _, l := range levels[1:] {
		side := float64(s0) * math.Exp2(float64(l-k0))
		t = append(t, float32(side*side))
	}
	return t
}

// ROILevels returns, for each box (P·4, input pixels), the index of the
// pyramid level (0 = finest of levels) FPN's rule pools it from, with
// canonical level k0 and size s0 (see LevelThresholds).
func ROILevels(boxes []float32, levels []int, k0 int, s0 float32) []int {
	t := LevelThresholds(levels, k0, s0)
	out := make([]int, len(boxes)/4)
	for i := range out {
		b := boxes[4*i : 4*i+4]
		area := (b[2] - b[0]) * (b[3] - b[1])
		for _, v := range t {
			if area >= v {
				out[i]++
			}
		}
	}
	return out
}

// ROIPoolOptions are the ROIAlign settings of PoolROIs.
type ROIPoolOptions struct {
	// Size is the side of each pooled region; SamplingRatio its bilinear
	// samples per bin and axis (0: adaptive).
	Size, SamplingRatio int
}

// PoolROIs pools K regions, each from its own pyramid level: rois holds
// K×5 values (batch index, x1, y1, x2, y2 in input pixels), levels the K
// level indices (into strides), and feature(l) returns level l's map
// [N, C, H, W]; it is called once for each level that has regions, so a
// caller may compute maps lazily. ROIAlign is torchvision's aligned form
// (half-pixel centres: detectron2's ROIAlignV2, ONNX RoiAlign's half_pixel
// mode). The result is [K, C, Size, Size] in the order of rois and stays in
// the autograd graph of the maps. Host crossings: one upload of regions
// per level used and, when levels interleave, one of reordering indices.
// K must be positive.
func PoolROIs(feature func(level int) *engine.Tensor, strides []int, rois []float32, levels []int, opt ROIPoolOptions) *engine.Tensor {
	k := len(rois) / 5
	if k == 0 || len(rois) != 5*k || len(levels) != k {
		panic(&engine.OpError{Op: "models.PoolROIs", Shapes: [][]int{{len(rois)}, {len(levels)}}, Err: engine.ErrShape,
			Detail: fmt.Sprintf("%d region values and %d levels, want K×5 and K with K > 0", len(rois), len(levels))})
	}
	perLevel := make([][]float32, len(strides))
	members := make([][]int, len(strides))
	for i, l := range levels {
		perLevel[l] = append(perLevel[l], rois[5*i:5*i+5]...)
		members[l] = append(members[l], i)
	}
	var parts []*engine.Tensor
	perm := make([]int, k) // region index → row of the level-ordered concatenation
	row := 0
	identity := true
	for l, list := range perLevel {
		if len(list) == 0 {
			continue
		}
		parts = append(parts, engine.ROIAlign(feature(l), list, engine.ROIAlignOptions{
			OutH: opt.Size, OutW: opt.Size, SpatialScale: 1 / float32(strides[l]), SamplingRatio: opt.SamplingRatio, Aligned: true}))
		for _, i := range members[l] {
			perm[i] = row
			identity = identity && i == row
			row++
		}
	}
	out := parts[0]
	if len(parts) > 1 {
		out = engine.Concat(0, parts...)
	}
	if !identity {
		out = engine.IndexSelect(out, 0, perm)
	}
	return out
}

// ROIHeadForward runs the second stage of a two-stage detector on regions
// of its pyramid features: rois holds K×5 values (batch index, x1, y1, x2,
// y2 in input pixels), each pooled from the level the roi_head section's
// rule gives it. It returns class logits [K, K+1] (background last) and
// class-specific deltas [K, 4·K], in the autograd graph of the features
// and the head. K must be positive.
func (d *Detector) ROIHeadForward(features []*engine.Tensor, rois []float32) (cls, reg *engine.Tensor) {
	d.mustTwoStage("ROIHeadForward")
	return d.roiHead(&pass{}, features, rois)
}

func (d *Detector) roiHead(p *pass, features []*engine.Tensor, rois []float32) (cls, reg *engine.Tensor) {
	h := d.Config.ROIHead
	boxes := make([]float32, 0, len(rois)/5*4)
	for i := 0; i+5 <= len(rois); i += 5 {
		boxes = append(boxes, rois[i+1:i+5]...)
	}
	levels := ROILevels(boxes, d.Config.FPN.Levels, h.CanonicalLevel, h.CanonicalSize)
	x := PoolROIs(func(l int) *engine.Tensor { return features[l] }, d.Config.Strides(), rois, levels, ROIPoolOptions{Size: h.PoolSize, SamplingRatio: h.SamplingRatio})
	return d.BoxHead.forward(p, x)
}

// DecodeROIBoxes decodes the class-specific deltas of P regions: boxes
// holds their P·4 boxes and reg their P·4K deltas (row-major [P, K, 4],
// the box head's layout). The result is P·K·4 boxes, [P, K, 4], not
// clipped, with the roi_head section's box-coder weights.
func (d *Detector) DecodeROIBoxes(boxes, reg []float32) []float32 {
	k := d.Config.NumClasses
	p := len(boxes) / 4
	if len(reg) != 4*k*p {
		panic(&engine.OpError{Op: "models.DecodeROIBoxes", Shapes: [][]int{{len(boxes)}, {len(reg)}}, Err: engine.ErrShape,
			Detail: fmt.Sprintf("%d deltas for %d regions and %d classes, want %d", len(reg), p, k, 4*k*p)})
	}
	anchors := make([]float32, 0, 4*k*p)
	for i := range p {
		for range k {
			anchors = append(anchors, boxes[4*i:4*i+4]...)
		}
	}
	return DecodeDeltas(anchors, reg, d.Config.ROIHead.BoxCoderWeights)
}
