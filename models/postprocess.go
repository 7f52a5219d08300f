package models

import (
	"cmp"
	"math"
	"slices"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/geom"
)

// Detection is one detected object in input pixels.
type Detection struct {
	Box   [4]float32 // x1, y1, x2, y2, clipped to the input
	Score float32
	Class int
}

type candidate struct {
	pos   int // flattened position within the image
	class int
	score float32
}

// Postprocess turns a batch's outputs into detections per image: class
// probabilities (sigmoid; FCOS multiplies by the centerness probability and
// takes the square root), the score threshold, the top-k (position, class)
// pairs per level, box decoding, class-aware NMS and the per-image limit,
// all from Config.Postprocess. Detections are sorted by descending score.
//
// The outputs are read to the host once per level (classification and
// centerness logits always, box regressions for levels with candidates):
// these are the detector's host crossings at inference. The two-stage
// family works differently: see postprocessTwoStage.
func (d *Detector) Postprocess(o *Outputs) [][]Detection {
	if d.Config.TwoStage() {
		return d.postprocessTwoStage(o)
	}
	cfg := d.Config
	pp := cfg.Postprocess
	p := d.Priors(o.InputH, o.InputW)
	n := o.ClsLogits[0].Dim(0)
	k, a := cfg.NumClasses, p.NumAnchors
	h := newHostOutputs(o)
	out := make([][]Detection, n)
	for i := 0; i < n; i++ {
		var all []candidate
		for l, lv := range p.Levels {
			hw := lv.H * lv.W
			logits := h.cls[l][i*a*k*hw : (i+1)*a*k*hw]
			var ctr []float32
			if h.ctr != nil {
				ctr = h.ctr[l][i*hw : (i+1)*hw]
			}
			var cands []candidate
			for s := 0; s < hw; s++ {
				var c float32 = 1
				if ctr != nil {
					c = sigmoid(ctr[s])
				}
				for an := 0; an < a; an++ {
					for cl := 0; cl < k; cl++ {
						score := sigmoid(logits[(an*k+cl)*hw+s])
						if ctr != nil {
							score = float32(math.Sqrt(float64(score * c)))
						}
						if score > pp.ScoreThreshold {
							cands = append(cands, candidate{pos: lv.Start + s*a + an, class: cl, score: score})
						}
					}
				}
			}
			if len(cands) > pp.TopKPerLevel {
				slices.SortStableFunc(cands, func(x, y candidate) int { return cmp.Compare(y.score, x.score) })
				cands = cands[:pp.TopKPerLevel]
			}
			all = append(all, cands...)
		}
		out[i] = d.finish(h, p, i, all)
	}
	return out
}

// hostOutputs holds a batch's outputs copied to the host: classification
// and centerness logits per level, box regressions per level on first use.
type hostOutputs struct {
	o        *Outputs
	cls, ctr [][]float32
	reg      [][]float32
}

func newHostOutputs(o *Outputs) *hostOutputs {
	h := &hostOutputs{o: o, cls: make([][]float32, len(o.ClsLogits)), reg: make([][]float32, len(o.BoxRegs))}
	for l, t := range o.ClsLogits {
		h.cls[l] = t.ToHost()
	}
	if len(o.Centerness) > 0 {
		h.ctr = make([][]float32, len(o.Centerness))
		for l, t := range o.Centerness {
			h.ctr[l] = t.ToHost()
		}
	}
	return h
}

// boxRegs returns level l's box regressions.
func (h *hostOutputs) boxRegs(l int) []float32 {
	if h.reg[l] == nil {
		h.reg[l] = h.o.BoxRegs[l].ToHost()
	}
	return h.reg[l]
}

// finish decodes the candidates' boxes, runs class-aware NMS and keeps the
// best MaxDetections.
func (d *Detector) finish(host *hostOutputs, p *Priors, img int, cands []candidate) []Detection {
	if len(cands) == 0 {
		return nil
	}
	a := p.NumAnchors
	reg := make([]float32, 4*len(cands))
	for q, c := range cands {
		l := p.Level[c.pos]
		lv := p.Levels[l]
		hw := lv.H * lv.W
		local := c.pos - lv.Start
		s, an := local/a, local%a
		data := host.boxRegs(l)[img*a*4*hw : (img+1)*a*4*hw]
		for j := 0; j < 4; j++ {
			reg[4*q+j] = data[(an*4+j)*hw+s]
		}
	}
	var boxes []float32
	if d.Config.Family == FamilyFCOS {
		pts := make([]float32, 2*len(cands))
		st := make([]float32, len(cands))
		for q, c := range cands {
			pts[2*q], pts[2*q+1] = p.Points[2*c.pos], p.Points[2*c.pos+1]
			st[q] = p.Strides[c.pos]
		}
		boxes = DecodeDistances(pts, st, reg)
	} else {
		anchors := make([]float32, 4*len(cands))
		for q, c := range cands {
			copy(anchors[4*q:4*q+4], p.Anchors[4*c.pos:4*c.pos+4])
		}
		boxes = DecodeDeltas(anchors, reg, d.Config.Loss.BoxCoderWeights)
	}
	scores := make([]float32, len(cands))
	classes := make([]int, len(cands))
	for q, c := range cands {
		scores[q], classes[q] = c.score, c.class
	}
	return d.keepDetections(boxes, scores, classes, p.InputW, p.InputH)
}

// keepDetections clips candidate boxes (modified in place) to the w×h input, runs
// class-aware NMS, keeps the best MaxDetections and drops empty boxes.
func (d *Detector) keepDetections(boxes, scores []float32, classes []int, w, h int) []Detection {
	fw, fh := float32(w), float32(h)
	for q := range scores {
		b := boxes[4*q : 4*q+4]
		b[0], b[2] = min(max(b[0], 0), fw), min(max(b[2], 0), fw)
		b[1], b[3] = min(max(b[1], 0), fh), min(max(b[3], 0), fh)
	}
	keep := geom.BatchedNMS(boxes, scores, classes, d.Config.Postprocess.NMSIoU)
	if len(keep) > d.Config.Postprocess.MaxDetections {
		keep = keep[:d.Config.Postprocess.MaxDetections]
	}
	dets := make([]Detection, 0, len(keep))
	for _, q := range keep {
		b := boxes[4*q : 4*q+4]
		if b[2] <= b[0] || b[3] <= b[1] {
			continue
		}
		dets = append(dets, Detection{Box: [4]float32{b[0], b[1], b[2], b[3]}, Score: scores[q], Class: classes[q]})
	}
	return dets
}

func sigmoid(x float32) float32 {
	if x >= 0 {
		return 1 / (1 + float32(math.Exp(float64(-x))))
	}
	e := float32(math.Exp(float64(x)))
	return e / (1 + e)
}

// postprocessTwoStage is Postprocess for the two-stage family: the
// proposals of the inference settings (one read of the RPN outputs), the
// box head on them (no gradients), softmax class probabilities with the
// background dropped, class-specific boxes decoded from each proposal,
// then the score threshold, clipping, class-aware NMS and the per-image
// limit, as for the one-stage families. The probabilities and deltas are
// read in one transfer.
func (d *Detector) postprocessTwoStage(o *Outputs) [][]Detection {
	props := d.Proposals(o, false)
	out := make([][]Detection, len(props))
	probs, reg := d.SecondStage(o, props)
	k := d.Config.NumClasses
	thr := d.Config.Postprocess.ScoreThreshold
	row := 0
	for i, pr := range props {
		n := pr.Len()
		if n == 0 {
			continue
		}
		all := d.DecodeROIBoxes(pr.Boxes, reg[row*4*k:(row+n)*4*k])
		var boxes, scores []float32
		var classes []int
		for q := range n {
			for c := range k {
				if s := probs[(row+q)*k+c]; s > thr {
					boxes = append(boxes, all[(q*k+c)*4:(q*k+c+1)*4]...)
					scores = append(scores, s)
					classes = append(classes, c)
				}
			}
		}
		row += n
		if len(scores) > 0 {
			out[i] = d.keepDetections(boxes, scores, classes, o.InputW, o.InputH)
		}
	}
	return out
}

// SecondStage runs a two-stage detector's box head, without gradients, on
// the proposals of every image of o (in image order) and returns, on the
// host, the foreground class probabilities (softmax over K+1 classes, the
// background column dropped; ΣP·K values) and the class-specific deltas
// (ΣP·4K values), read in one transfer. Both are empty when no image has a
// proposal.
func (d *Detector) SecondStage(o *Outputs, props []Proposals) (probs, reg []float32) {
	d.mustTwoStage("SecondStage")
	var rois []float32
	for i, pr := range props {
		for q := range pr.Len() {
			b := pr.Boxes[4*q : 4*q+4]
			rois = append(rois, float32(i), b[0], b[1], b[2], b[3])
		}
	}
	m := len(rois) / 5
	if m == 0 {
		return nil, nil
	}
	k := d.Config.NumClasses
	var flat []float32
	engine.NoGrad(func() {
		cls, deltas := d.ROIHeadForward(o.Features, rois)
		fg := engine.Slice(engine.Softmax(cls, 1), 1, 0, k)
		flat = engine.Concat(1, fg, deltas).ToHost()
	})
	probs, reg = make([]float32, 0, m*k), make([]float32, 0, 4*m*k)
	for q := range m {
		row := flat[q*5*k : (q+1)*5*k]
		probs = append(probs, row[:k]...)
		reg = append(reg, row[k:]...)
	}
	return probs, reg
}
