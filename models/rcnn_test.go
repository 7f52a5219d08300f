package models

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/geom"
)

func TestGenerateProposals(t *testing.T) {
	// Two levels of hand-placed anchors: level 0 has four, level 1 two.
	p := &Priors{
		Levels: []PriorLevel{{Stride: 8, Start: 0, Count: 4}, {Stride: 16, Start: 4, Count: 2}},
		Anchors: []float32{
			0, 0, 10, 10, // A0
			1, 0, 11, 10, // A1: IoU .82 with A0, suppressed by it
			20, 20, 30, 30, // A2: the lowest logit of level 0, cut by pre-NMS top-3
			-5, -5, -4, -4, // A3: clipped to an empty box, dropped
			0, 0, 10, 10, // B0: A0's box on another level: not suppressed by it
			50, 48, 60, 60, // B1: doubled in width by its deltas, clipped at 64
		},
	}
	logits := []float32{3, 2, 1, 5, 2.5, 4}
	deltas := make([]float32, 24)
	deltas[4*5+2] = float32(math.Log(2))
	opt := ProposalOptions{PreNMSTopK: 3, PostNMSTopK: 10, NMSIoU: 0.7, Width: 64, Height: 64, Weights: [4]float32{1, 1, 1, 1}}
	got := GenerateProposals(p, logits, deltas, opt)
	want := Proposals{Boxes: []float32{45, 48, 64, 60, 0, 0, 10, 10, 0, 0, 10, 10}, Scores: []float32{4, 3, 2.5}}
	if !slices.Equal(got.Scores, want.Scores) || !closeAll(got.Boxes, want.Boxes, 1e-4) {
		t.Fatalf("proposals %+v, want %+v", got, want)
	}
	opt.PostNMSTopK = 2
	if got := GenerateProposals(p, logits, deltas, opt); !slices.Equal(got.Scores, []float32{4, 3}) {
		t.Fatalf("post-NMS top 2 scores %v, want [4 3]", got.Scores)
	}
	// Boxes must be wider and taller than MinSize: only B1 (19×12) is
	// above 10; the 10×10 boxes are not.
	opt.PostNMSTopK, opt.MinSize = 10, 10
	if got := GenerateProposals(p, logits, deltas, opt); !slices.Equal(got.Scores, []float32{4}) {
		t.Fatalf("min size 10 keeps scores %v, want [4]", got.Scores)
	}
	// Non-finite values never become proposals.
	logits[4] = float32(math.NaN())
	opt.MinSize = 0
	if got := GenerateProposals(p, logits, deltas, opt); !slices.Equal(got.Scores, []float32{4, 3}) {
		t.Fatalf("with a NaN logit scores %v, want [4 3]", got.Scores)
	}
}

func closeAll(a, b []float32, tol float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i], tol) {
			return false
		}
	}
	return true
}

func TestRPNAssigner(t *testing.T) {
	gt := []float32{0, 0, 10, 10, 100, 100, 110, 120}
	anchors := []float32{
		0, 0, 10, 10, // IoU 1: positive
		0, 0, 10, 8, // .8: positive
		0, 0, 10, 5, // .5: between 0.3 and 0.7, ignored
		0, 0, 10, 2, // .2: negative
		100, 100, 110, 105, // .25 with the second box, its best anchor: a low-quality positive
		200, 200, 210, 210, // no overlap: negative
	}
	want := []int{0, 0, Ignored, Negative, 1, Negative}
	if got := AssignIoU(anchors, gt, 0.7, 0.3, true); !slices.Equal(got, want) {
		t.Fatalf("RPN assignment %v, want %v", got, want)
	}
	// The detector's own assigner uses the config's RPN thresholds.
	d := tinyDetector(t, "faster-rcnn-tiny", 2)
	p := d.Priors(64, 64)
	boxes := []float32{4, 6, 30, 28, 33, 20, 60, 62}
	a := d.Config.Assigner
	if got, want := d.Assign(p, boxes), AssignIoU(p.Anchors, boxes, a.PosIoU, a.NegIoU, a.LowQuality); !slices.Equal(got, want) || a.PosIoU != 0.7 || a.NegIoU != 0.3 {
		t.Fatalf("Detector.Assign differs from the RPN's IoU assigner (thresholds %v/%v)", a.PosIoU, a.NegIoU)
	}
}

func TestSubsample(t *testing.T) {
	seq := func(from, n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = from + i
		}
		return out
	}
	for _, c := range []struct {
		name             string
		pos, neg, num    int
		fraction         float32
		wantPos, wantNeg int
	}{
		{"few positives: negatives fill", 10, 1000, 64, 0.5, 10, 54},
		{"positives capped at the fraction", 100, 1000, 64, 0.5, 32, 32},
		{"few negatives too", 100, 5, 64, 0.5, 32, 5},
		{"fraction truncates", 100, 100, 10, 0.25, 2, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			pos, neg := seq(0, c.pos), seq(10000, c.neg)
			sp, sn := Subsample(pos, neg, c.num, c.fraction, rand.New(rand.NewPCG(1, 2)))
			if len(sp) != c.wantPos || len(sn) != c.wantNeg {
				t.Fatalf("sampled %d positives and %d negatives, want %d and %d", len(sp), len(sn), c.wantPos, c.wantNeg)
			}
			seen := map[int]bool{}
			for _, v := range append(slices.Clone(sp), sn...) {
				if seen[v] {
					t.Fatalf("%d sampled twice", v)
				}
				seen[v] = true
			}
			for _, v := range sp {
				if v >= c.pos {
					t.Fatalf("positive sample %d is not a positive", v)
				}
			}
			for _, v := range sn {
				if v < 10000 {
					t.Fatalf("negative sample %d is not a negative", v)
				}
			}
			again, _ := Subsample(pos, neg, c.num, c.fraction, rand.New(rand.NewPCG(1, 2)))
			if !slices.Equal(sp, again) {
				t.Fatal("the same seed samples differently")
			}
		})
	}
	pos := seq(0, 100)
	a, _ := Subsample(pos, nil, 10, 1, samplerFor(saltROI, 0, nil, []float32{1, 2}))
	b, _ := Subsample(pos, nil, 10, 1, samplerFor(saltROI, 0, nil, []float32{1, 3}))
	c, _ := Subsample(pos, nil, 10, 1, samplerFor(saltROI, 0, nil, []float32{1, 2}))
	if slices.Equal(a, b) || !slices.Equal(a, c) {
		t.Fatalf("samplers seeded by the step's values: %v %v %v, want the first and last equal, the middle different", a, b, c)
	}
}

func TestROISampler(t *testing.T) {
	gts := []float32{0, 0, 20, 20, 40, 40, 60, 60}
	classes := []int{1, 0}
	cand := []float32{
		0, 0, 20, 20, // IoU 1 with gt 0: class 1
		0, 0, 20, 10, // .5 with gt 0: foreground (≥ fg_iou)
		0, 0, 20, 9, // .45: background
		42, 40, 62, 60, // .82 with gt 1: class 0
		100, 100, 120, 120, // nothing: background
	}
	h := ROIHeadConfig{BatchPerImage: 100, PositiveFraction: 1, FgIoU: 0.5}
	got := sampleRegions(cand, gts, classes, 2, h, rand.New(rand.NewPCG(3, 4)))
	labels := map[int]int{}
	for _, s := range got {
		labels[s.Index] = s.Label
		if s.Label < 2 && classes[s.GT] != s.Label {
			t.Fatalf("region %d has label %d but its matched box %d has class %d", s.Index, s.Label, s.GT, classes[s.GT])
		}
	}
	want := map[int]int{0: 1, 1: 1, 2: 2, 3: 0, 4: 2}
	if len(got) != 5 || len(labels) != 5 {
		t.Fatalf("sampled %+v, want all five candidates", got)
	}
	for q, l := range want {
		if labels[q] != l {
			t.Fatalf("candidate %d labelled %d, want %d (2 is background): %+v", q, labels[q], l, got)
		}
	}
	// Two regions with at most a quarter foreground: one of the three.
	h.BatchPerImage, h.PositiveFraction = 4, 0.25
	got = sampleRegions(cand, gts, classes, 2, h, rand.New(rand.NewPCG(3, 4)))
	fg := 0
	for _, s := range got {
		if s.Label < 2 {
			fg++
		}
	}
	if len(got) != 3 || fg != 1 {
		t.Fatalf("batch 4 at a quarter foreground sampled %d regions, %d foreground: %+v; want 3 and 1 (two backgrounds exist)", len(got), fg, got)
	}
	if none := sampleRegions(cand, nil, nil, 2, h, rand.New(rand.NewPCG(3, 4))); len(none) != 4 {
		t.Fatalf("without ground truth every region is background: %+v", none)
	}
}

func TestROILevels(t *testing.T) {
	levels := []int{3, 4, 5}
	if got := LevelThresholds(levels, 4, 224); !slices.Equal(got, []float32{224 * 224, 448 * 448}) {
		t.Fatalf("thresholds %v", got)
	}
	boxes := []float32{
		0, 0, 10, 10, // small: the finest level
		0, 0, 224, 224, // canonical: level 4
		0, 0, 223.9, 224, // just under: level 3
		0, 0, 448, 448, // twice: level 5
		0, 0, 2000, 2000, // clamped to level 5
		5, 5, 5, 9, // empty: finest
	}
	if got := ROILevels(boxes, levels, 4, 224); !slices.Equal(got, []int{0, 1, 0, 2, 2, 0}) {
		t.Fatalf("levels %v, want [0 1 0 2 2 0]", got)
	}
	// Away from the boundaries the area rule is FPN's formula.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		w, h := 1+300*rng.Float64(), 1+300*rng.Float64()
		k := math.Floor(4 + math.Log2(math.Sqrt(w*h)/64))
		if math.Abs(4+math.Log2(math.Sqrt(w*h)/64)-math.Round(4+math.Log2(math.Sqrt(w*h)/64))) < 1e-4 {
			continue
		}
		want := int(min(max(k, 3), 5)) - 3
		if got := ROILevels([]float32{0, 0, float32(w), float32(h)}, levels, 4, 64); got[0] != want {
			t.Fatalf("box %.2f×%.2f: level %d, FPN's rule %d", w, h, got[0], want)
		}
	}
}

func TestPoolROIs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	maps := []*engine.Tensor{engine.RandN(rng, 1, 2, 3, 8, 8), engine.RandN(rng, 1, 2, 3, 4, 4), engine.RandN(rng, 1, 2, 3, 2, 2)}
	strides := []int{8, 16, 32}
	rois := []float32{1, 3, 4, 40, 30, 0, 0, 0, 60, 60, 1, 10, 10, 20, 30, 0, 5, 8, 50, 64}
	levels := []int{1, 2, 0, 1}
	opt := ROIPoolOptions{Size: 3, SamplingRatio: 2}
	called := map[int]int{}
	got := PoolROIs(func(l int) *engine.Tensor { called[l]++; return maps[l] }, strides, rois, levels, opt).ToHost()
	if len(called) != 3 || called[0] != 1 || called[1] != 1 || called[2] != 1 {
		t.Fatalf("feature maps requested %v, want each level once", called)
	}
	per := 3 * 3 * 3
	for i, l := range levels {
		want := engine.ROIAlign(maps[l], rois[5*i:5*i+5], engine.ROIAlignOptions{OutH: 3, OutW: 3, SpatialScale: 1 / float32(strides[l]), SamplingRatio: 2, Aligned: true}).ToHost()
		if !slices.Equal(got[i*per:(i+1)*per], want) {
			t.Fatalf("region %d differs from ROIAlign on level %d", i, l)
		}
	}
}

// zeroOutputs sets the weights of the given convolutions to zero and their
// biases to the given values, so their outputs are known constants.
func zeroOutputs(t *testing.T, c *nn.Conv2d, bias []float32) {
	t.Helper()
	c.Weight.CopyFromHost(make([]float32, c.Weight.Len()))
	c.Bias.CopyFromHost(bias)
}

func softplus(x float64) float64 { return math.Log1p(math.Exp(-math.Abs(x))) + max(x, 0) }

func TestTwoStageLossKnownValues(t *testing.T) {
	d := tinyDetector(t, "faster-rcnn-tiny", 2)
	cfg := d.Config
	// Sample everything so the expected values do not depend on the draw.
	rpnCfg, roiCfg := *cfg.RPN, *cfg.ROIHead
	rpnCfg.BatchPerImage, rpnCfg.PositiveFraction = 100000, 1
	roiCfg.BatchPerImage, roiCfg.PositiveFraction, roiCfg.SmoothL1Beta = 100000, 1, 0
	d.Config.RPN, d.Config.ROIHead = &rpnCfg, &roiCfg
	a, k := cfg.NumAnchors(), cfg.NumClasses
	const objBias = 0.3
	objB := make([]float32, a)
	for i := range objB {
		objB[i] = objBias
	}
	zeroOutputs(t, d.RPN.Objectness, objB)
	rpnDelta := make([]float32, 4*a)
	for i := range rpnDelta {
		rpnDelta[i] = 0.05 * float32(i%5-2)
	}
	zeroOutputs(t, d.RPN.Deltas, rpnDelta)
	clsB := []float32{0.2, -0.4, 0.1}
	zeroOutputs(t, d.BoxHead.Cls, clsB)
	regB := []float32{0.1, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0, -0.3}
	zeroOutputs(t, d.BoxHead.Reg, regB)

	targets := [][]dataset.Target{
		{{Box: dataset.Box{X1: 6, Y1: 8, X2: 30, Y2: 34}, Class: 1}, {Box: dataset.Box{X1: 0, Y1: 0, X2: 64, Y2: 64}, Class: 0, Crowd: true}},
		{{Box: dataset.Box{X1: 20, Y1: 24, X2: 58, Y2: 50}, Class: 0}},
	}
	x := engine.RandN(rand.New(rand.NewPCG(1, 1)), 1, 2, 3, 64, 64)
	o := d.Forward(x, true)
	_, parts, err := d.Loss(o, targets)
	if err != nil {
		t.Fatal(err)
	}

	p := d.Priors(64, 64)
	var rpnCls, rpnBox float64
	var roiCls, roiBox float64
	var regions int
	props := d.Proposals(o, true)
	lse := math.Log(math.Exp(0.2) + math.Exp(-0.4) + math.Exp(0.1))
	for i, ts := range targets {
		gts, classes := gtOf(ts)
		for r, g := range AssignIoU(p.Anchors, gts, 0.7, 0.3, true) {
			switch {
			case g >= 0:
				rpnCls += softplus(-objBias)
				pred := rpnDelta[4*(r%a) : 4*(r%a)+4]
				tgt := EncodeDeltas(p.Anchors[4*r:4*r+4], gts[4*g:4*g+4], cfg.Loss.BoxCoderWeights)
				for j := range 4 {
					rpnBox += smoothL1(float64(pred[j]-tgt[j]), 0.11)
				}
			case g == Negative:
				rpnCls += softplus(objBias)
			}
		}
		cand := append(slices.Clone(props[i].Boxes), gts...)
		for q := range len(cand) / 4 {
			regions++
			best, bestIoU := -1, float32(0)
			for j := range len(gts) / 4 {
				if v := geom.IoU([4]float32(cand[4*q:4*q+4]), [4]float32(gts[4*j:4*j+4])); v > bestIoU {
					best, bestIoU = j, v
				}
			}
			label := k
			if best >= 0 && bestIoU >= 0.5 {
				label = classes[best]
				tgt := EncodeDeltas(cand[4*q:4*q+4], gts[4*best:4*best+4], roiCfg.BoxCoderWeights)
				for j := range 4 {
					roiBox += math.Abs(float64(regB[4*label+j] - tgt[j]))
				}
			}
			roiCls += lse - float64(clsB[label])
		}
	}
	rpnNorm := float64(2 * rpnCfg.BatchPerImage)
	want := map[string]float64{
		LossRPNCls: rpnCls / rpnNorm, LossRPNBox: rpnBox / rpnNorm,
		LossROICls: roiCls / float64(regions), LossROIBox: roiBox / float64(regions),
	}
	for name, w := range want {
		if got := float64(parts[name]); math.Abs(got-w) > 1e-4*max(1, math.Abs(w)) || w == 0 {
			t.Errorf("%s = %v, hand-computed %v", name, got, w)
		}
	}
}

func smoothL1(d, beta float64) float64 {
	if math.Abs(d) < beta {
		return 0.5 * d * d / beta
	}
	return math.Abs(d) - 0.5*beta
}

func TestTwoStageTrains(t *testing.T) {
	d := tinyDetector(t, "faster-rcnn-tiny", 2)
	rng := rand.New(rand.NewPCG(5, 6))
	x := engine.RandN(rng, 1, 2, 3, 64, 64)
	targets := [][]dataset.Target{
		{{Box: dataset.Box{X1: 8, Y1: 10, X2: 30, Y2: 34}, Class: 1}},
		{{Box: dataset.Box{X1: 20, Y1: 20, X2: 60, Y2: 50}, Class: 0}},
	}
	first, last := descend(t, d, x, targets, 30, func(parts map[string]float32) {
		for _, name := range []string{LossRPNCls, LossRPNBox, LossROICls, LossROIBox} {
			if !(parts[name] > 0) {
				t.Fatalf("loss parts %v, want %s positive", parts, name)
			}
		}
	})
	if !(last < 0.6*first) {
		t.Fatalf("loss went from %v to %v, want a clear decrease", first, last)
	}
}

func TestTwoStagePostprocess(t *testing.T) {
	d := tinyDetector(t, "faster-rcnn-tiny", 2)
	// Every region says class 1 with the same probability and keeps its box.
	zeroOutputs(t, d.BoxHead.Cls, []float32{-1, 2, 0})
	zeroOutputs(t, d.BoxHead.Reg, make([]float32, 8))
	x := engine.RandN(rand.New(rand.NewPCG(2, 3)), 1, 1, 3, 64, 64)
	var o *Outputs
	var dets []Detection
	var props []Proposals
	engine.NoGrad(func() {
		o = d.Forward(x, false)
		props = d.Proposals(o, false)
		dets = d.Postprocess(o)[0]
	})
	if props[0].Len() == 0 || len(dets) == 0 {
		t.Fatalf("%d proposals, %d detections", props[0].Len(), len(dets))
	}
	prob := float32(math.Exp(2) / (math.Exp(-1) + math.Exp(2) + math.Exp(0)))
	if dets[0].Box != [4]float32(props[0].Boxes[:4]) {
		t.Fatalf("best detection %v, want the first proposal %v", dets[0].Box, props[0].Boxes[:4])
	}
	for i, det := range dets {
		if det.Class != 1 || !near(det.Score, prob, 1e-6) {
			t.Fatalf("detection %d: %+v, want class 1 with probability %v", i, det, prob)
		}
		for _, other := range dets[:i] {
			if geom.IoU(det.Box, other.Box) > d.Config.Postprocess.NMSIoU {
				t.Fatalf("detections %v and %v overlap beyond NMS", det.Box, other.Box)
			}
		}
	}
	if len(dets) > d.Config.Postprocess.MaxDetections {
		t.Fatalf("%d detections over the limit", len(dets))
	}
	// Class-specific boxes: the deltas of class c apply to proposal q.
	reg := []float32{0, 0, 0, 0, 1, 0, 0, 0}
	boxes := d.DecodeROIBoxes([]float32{0, 0, 10, 20}, reg)
	if !closeAll(boxes, []float32{0, 0, 10, 20, 1, 0, 11, 20}, 1e-5) {
		t.Fatalf("class boxes %v, want class 1 shifted by dx 1 (weight 10 × width 10)", boxes)
	}
}

func TestTwoStageCheckpointAndCost(t *testing.T) {
	d := tinyDetector(t, "faster-rcnn-tiny", 3)
	x := engine.RandN(rand.New(rand.NewPCG(8, 9)), 1, 1, 3, 64, 64)
	d.Forward(x, true)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveCheckpoint(path, d, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, _, _, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b []Detection
	engine.NoGrad(func() {
		a, b = d.Postprocess(d.Forward(x, false))[0], got.Postprocess(got.Forward(x, false))[0]
	})
	if len(a) != len(b) || (len(a) > 0 && a[0] != b[0]) {
		t.Fatal("reloaded two-stage detector detects differently")
	}
	c := d.Cost(64, 64)
	if want := expectedResNetMACs(d.Config, 64, 64); c.MACs != want {
		t.Fatalf("two-stage Cost MACs %d, independent count %d", c.MACs, want)
	}
}

func TestTwoStageConfigErrors(t *testing.T) {
	base, err := Named("faster-rcnn-student")
	if err != nil {
		t.Fatal(err)
	}
	retina, err := Named("retinanet-student")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		config func() Config
		field  string
		want   string
	}{
		{"no rpn", func() Config { c := base; c.RPN = nil; return c }, "rpn", "an rpn section"},
		{"rpn on a one-stage family", func() Config { c := retina; c.RPN = base.RPN; return c }, "rpn", `no rpn section for family "retinanet"`},
		{"canonical level", func() Config { c := base; h := *c.ROIHead; h.CanonicalLevel = 2; c.ROIHead = &h; return c }, "roi_head.canonical_level", "a pyramid level of fpn.levels [3 4 5]"},
		{"fraction", func() Config { c := base; r := *c.RPN; r.PositiveFraction = 0; c.RPN = &r; return c }, "rpn.positive_fraction", "in (0, 1]"},
		{"focal", func() Config { c := base; c.Loss.FocalGamma = 2; return c }, "loss.focal_gamma", "the two-stage family has no focal loss"},
		{"topk per level", func() Config { c := base; c.Postprocess.TopKPerLevel = 100; return c }, "postprocess.topk_per_level", "rpn.post_nms_topk_test"},
		{"giou", func() Config { c := base; c.Loss.Box = BoxLossGIoU; return c }, "loss.box", "the RPN regresses encoded deltas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.config().Validate()
			var fe *FieldError
			found := false
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					if errors.As(e, &fe) && fe.Field == tc.field && strings.Contains(e.Error(), tc.want) {
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("Validate() = %v, want a *FieldError for %s saying %q", err, tc.field, tc.want)
			}
		})
	}
	// The shared sections are not changed by the copies above.
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
}
