package models

import (
	"fmt"
	"math/rand/v2"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/geom"
)

// Loss parts of the two-stage family.
const (
	LossRPNCls = "rpn_cls"
	LossRPNBox = "rpn_box"
	LossROICls = "roi_cls"
	LossROIBox = "roi_box"
)

// gtOf returns an image's non-crowd ground truth: boxes (G·4) and classes.
// Crowd regions are left out of both stages' training, as the reference
// implementations' data loaders drop them.
func gtOf(ts []dataset.Target) (boxes []float32, classes []int) {
	for _, t := range ts {
		if t.Crowd {
			continue
		}
		boxes = append(boxes, float32(t.Box.X1), float32(t.Box.Y1), float32(t.Box.X2), float32(t.Box.Y2))
		classes = append(classes, t.Class)
	}
	return boxes, classes
}

// boxLoss is the two-stage family's box loss on encoded deltas: smooth L1
// with β, or L1 when β is 0 (one elementwise value per delta).
func boxLoss(pred, target *engine.Tensor, beta float32) *engine.Tensor {
	if beta == 0 {
		return engine.L1Loss(pred, target)
	}
	return engine.SmoothL1Loss(pred, target, beta)
}

// twoStageLoss is Loss for the two-stage family. Per image:
//
//   - RPN: the anchors are matched by the assigner section (IoU ≥ pos_iou
//     positive, < neg_iou negative, in between ignored, plus low-quality
//     matches), rpn.batch_per_image of them sampled with at most
//     rpn.positive_fraction positives; rpn_cls is the binary cross-entropy
//     of their objectness and rpn_box the loss section's smooth L1 on the
//     positives' encoded deltas (times box_weight), both summed and
//     divided by N·batch_per_image.
//   - Box head: the proposals of the training settings, plus the ground-
//     truth boxes, are matched to the ground truth (IoU ≥ roi_head.fg_iou:
//     that box's class, else background) and roi_head.batch_per_image of
//     them sampled with at most roi_head.positive_fraction foreground;
//     roi_cls is the softmax cross-entropy over K+1 classes and roi_box the
//     smooth L1 (β roi_head.smooth_l1_beta; L1 at 0) of the foreground
//     regions' deltas for their own class (times roi_head.box_weight), both
//     summed and divided by the number of sampled regions.
//
// Sampling draws from a generator seeded by the step's values (see
// samplerFor), so --resume repeats it exactly. Host crossings: one read of
// the RPN outputs (proposals and sampler seeds), uploads of the sampled
// rows, labels, targets and regions, and one read of the four parts.
func (d *Detector) twoStageLoss(o *Outputs, targets [][]dataset.Target) (*engine.Tensor, map[string]float32, error) {
	cfg := d.Config
	rpn, rh := cfg.RPN, cfg.ROIHead
	n, k := len(targets), cfg.NumClasses
	p := d.Priors(o.InputH, o.InputW)
	r := p.Len()
	cls, reg := Flatten(o)
	if cls.Dim(1) != r {
		panic(&engine.OpError{Op: "models.Loss", Shapes: [][]int{cls.Shape()}, Err: engine.ErrShape, Detail: fmt.Sprintf("outputs have %d positions, priors of %dx%d have %d", cls.Dim(1), o.InputH, o.InputW, r)})
	}
	host := readRPN(o)
	gtBoxes := make([][]float32, n)
	gtClasses := make([][]int, n)
	for i, ts := range targets {
		gtBoxes[i], gtClasses[i] = gtOf(ts)
	}

	// RPN: sampled anchors.
	var objRows, posRows []int
	var objLabels, posAnchors, posGT []float32
	for i := range n {
		var pos, neg []int
		assign := AssignIoU(p.Anchors, gtBoxes[i], cfg.Assigner.PosIoU, cfg.Assigner.NegIoU, cfg.Assigner.LowQuality)
		for a, g := range assign {
			switch {
			case g >= 0:
				pos = append(pos, a)
			case g == Negative:
				neg = append(neg, a)
			}
		}
		sp, sn := Subsample(pos, neg, rpn.BatchPerImage, rpn.PositiveFraction, samplerFor(saltRPN, i, targets[i], host.logits[i]))
		for _, a := range sp {
			objRows, objLabels = append(objRows, i*r+a), append(objLabels, 1)
			posRows = append(posRows, i*r+a)
			posAnchors = append(posAnchors, p.Anchors[4*a:4*a+4]...)
			g := assign[a]
			posGT = append(posGT, gtBoxes[i][4*g:4*g+4]...)
		}
		for _, a := range sn {
			objRows, objLabels = append(objRows, i*r+a), append(objLabels, 0)
		}
	}
	rpnNorm := 1 / float32(n*rpn.BatchPerImage)
	var rpnCls, rpnBox *engine.Tensor
	if len(objRows) > 0 {
		obj := engine.IndexSelect(engine.Reshape(cls, n*r, 1), 0, objRows)
		rpnCls = engine.MulScalar(engine.Sum(engine.BCEWithLogits(obj, engine.FromHost(objLabels, len(objRows), 1))), rpnNorm)
	} else {
		rpnCls = engine.Scalar(0)
	}
	if len(posRows) > 0 {
		deltas := EncodeDeltas(posAnchors, posGT, cfg.Loss.BoxCoderWeights)
		pred := engine.IndexSelect(engine.Reshape(reg, n*r, 4), 0, posRows)
		l := engine.Sum(engine.SmoothL1Loss(pred, engine.FromHost(deltas, len(posRows), 4), cfg.Loss.SmoothL1Beta))
		rpnBox = engine.MulScalar(l, rpnNorm*cfg.Loss.BoxWeight)
	} else {
		rpnBox = engine.Scalar(0)
	}

	// Box head: sampled proposals and ground truth.
	props := d.proposalsFrom(o, host, true)
	var rois, fgBoxes, fgGT []float32
	var labels, fgRows []int
	for i := range n {
		cand := append(append([]float32(nil), props[i].Boxes...), gtBoxes[i]...)
		rng := samplerFor(saltROI, i, targets[i], props[i].Boxes)
		for _, s := range sampleRegions(cand, gtBoxes[i], gtClasses[i], k, *rh, rng) {
			b := cand[4*s.Index : 4*s.Index+4]
			if s.Label < k {
				fgRows = append(fgRows, len(labels)*k+s.Label)
				fgBoxes = append(fgBoxes, b...)
				fgGT = append(fgGT, gtBoxes[i][4*s.GT:4*s.GT+4]...)
			}
			rois = append(rois, float32(i), b[0], b[1], b[2], b[3])
			labels = append(labels, s.Label)
		}
	}
	roiCls, roiBox := engine.Scalar(0), engine.Scalar(0)
	if m := len(labels); m > 0 {
		logits, deltas := d.roiHead(&pass{}, o.Features, rois)
		inv := 1 / float32(m)
		roiCls = engine.MulScalar(engine.Sum(engine.CrossEntropy(logits, labels)), inv)
		if len(fgRows) > 0 {
			target := EncodeDeltas(fgBoxes, fgGT, rh.BoxCoderWeights)
			pred := engine.IndexSelect(engine.Reshape(deltas, m*k, 4), 0, fgRows)
			l := engine.Sum(boxLoss(pred, engine.FromHost(target, len(fgRows), 4), rh.SmoothL1Beta))
			roiBox = engine.MulScalar(l, inv*rh.BoxWeight)
		}
	}

	terms := []*engine.Tensor{rpnCls, rpnBox, roiCls, roiBox}
	total := engine.Add(engine.Add(rpnCls, rpnBox), engine.Add(roiCls, roiBox))
	var vals []float32
	engine.NoGrad(func() {
		flat := make([]*engine.Tensor, len(terms))
		for i, t := range terms {
			flat[i] = engine.Reshape(t.Detach(), 1)
		}
		vals = engine.Concat(0, flat...).ToHost()
	})
	parts := map[string]float32{LossRPNCls: vals[0], LossRPNBox: vals[1], LossROICls: vals[2], LossROIBox: vals[3]}
	return total, parts, nil
}

// sampledRegion is one region the box head trains on.
type sampledRegion struct {
	Index int // into the candidates
	Label int // class, or K for background
	GT    int // matched ground-truth box (foreground only)
}

// sampleRegions is the box head's assigner and sampler for one image:
// each candidate box (C·4) takes the class of the ground-truth box it
// overlaps most when that IoU is at least h.FgIoU, else the background
// label k; then h.BatchPerImage of them are sampled with at most
// h.PositiveFraction foreground (Subsample). Foreground comes first.
func sampleRegions(cand, gts []float32, classes []int, k int, h ROIHeadConfig, rng *rand.Rand) []sampledRegion {
	c, g := len(cand)/4, len(gts)/4
	match := make([]int, c)
	var pos, neg []int
	var iou []float32
	if g > 0 {
		iou = geom.IoUMatrix(cand, gts)
	}
	for q := range c {
		best, bestIoU := -1, float32(0)
		for j := range g {
			if v := iou[q*g+j]; v > bestIoU {
				best, bestIoU = j, v
			}
		}
		if best >= 0 && bestIoU >= h.FgIoU {
			match[q] = best
			pos = append(pos, q)
		} else {
			neg = append(neg, q)
		}
	}
	sp, sn := Subsample(pos, neg, h.BatchPerImage, h.PositiveFraction, rng)
	out := make([]sampledRegion, 0, len(sp)+len(sn))
	for _, q := range sp {
		out = append(out, sampledRegion{Index: q, Label: classes[match[q]], GT: match[q]})
	}
	for _, q := range sn {
		out = append(out, sampledRegion{Index: q, Label: k, GT: -1})
	}
	return out
}
