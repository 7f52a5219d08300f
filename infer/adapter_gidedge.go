package infer

import (
	"fmt"
	"math"
)

// gidedgeAdapter reads a `gidedge export` model through the ModelInfo in its
// metadata; the head's outputs are already decoded into boxes [1,R,4] (input
// pixels) and per-class probabilities [1,R,C]. A two-stage export gives
// class-specific boxes [1,R,C,4] instead: class c of row r is scored by
// scores[r,c] and placed at boxes[r,c].
type gidedgeAdapter struct {
	info ModelInfo
	// classBoxes is set for class-specific boxes [1,R,C,4].
	classBoxes bool
}

func matchGidedge(sig Signature) (Adapter, bool, error) {
	info, ok, err := ReadModelInfo(sig.Metadata)
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	if info.Head.Outputs != OutputsDecoded {
		return nil, true, fmt.Errorf("head outputs are %q; the server runs only models exported with decoded outputs (boxes_output and scores_output)", info.Head.Outputs)
	}
	in, h, w, err := imageInput(sig)
	if err != nil {
		return nil, true, err
	}
	if (h != 0 && h != info.Input.Height) || (w != 0 && w != info.Input.Width) {
		return nil, true, fmt.Errorf("input %q has shape %v but metadata says %dx%d", in.Name, in.Shape, info.Input.Width, info.Input.Height)
	}
	boxes, ok := sig.Output(info.Head.BoxesOutput)
	if !ok {
		return nil, true, fmt.Errorf("boxes_output %q is not an output (outputs %s)", info.Head.BoxesOutput, outputNames(sig))
	}
	scores, ok := sig.Output(info.Head.ScoresOutput)
	if !ok {
		return nil, true, fmt.Errorf("scores_output %q is not an output (outputs %s)", info.Head.ScoresOutput, outputNames(sig))
	}
	nc := int64(len(info.ClassNames))
	last := boxes.Shape[len(boxes.Shape)-1]
	switch {
	case len(boxes.Shape) == 3 && (last < 0 || last == 4):
	case len(boxes.Shape) == 4 && (last < 0 || last == 4) && (boxes.Shape[2] < 0 || boxes.Shape[2] == nc):
	default:
		return nil, true, fmt.Errorf("boxes output %q has shape %v, want [N,R,4] or class-specific [N,R,%d,4]", boxes.Name, boxes.Shape, nc)
	}
	if len(scores.Shape) != 3 || (scores.Shape[2] >= 0 && scores.Shape[2] != nc) {
		return nil, true, fmt.Errorf("scores output %q has shape %v, want [N,R,%d] for %d class names", scores.Name, scores.Shape, nc, nc)
	}
	if name := info.Head.CenternessOutput; name != "" {
		ctr, ok := sig.Output(name)
		if !ok {
			return nil, true, fmt.Errorf("centerness_output %q is not an output (outputs %s)", name, outputNames(sig))
		}
		if len(ctr.Shape) != 3 || (ctr.Shape[2] >= 0 && ctr.Shape[2] != 1) {
			return nil, true, fmt.Errorf("centerness output %q has shape %v, want [N,R,1]", ctr.Name, ctr.Shape)
		}
	}
	return &gidedgeAdapter{info: info, classBoxes: len(boxes.Shape) == 4}, true, nil
}

func (a *gidedgeAdapter) Name() string           { return "gidedge" }
func (a *gidedgeAdapter) Preprocess() Preprocess { return a.info.Input }
func (a *gidedgeAdapter) ClassNames() []string   { return a.info.ClassNames }

func (a *gidedgeAdapter) Defaults() Params {
	h := a.info.Head
	return Params{ScoreThreshold: h.ScoreThreshold, IoUThreshold: h.NMSIoU, MaxDetections: h.MaxDetections}
}

func (a *gidedgeAdapter) Decode(out Outputs, p Params, dst []Detection) ([]Detection, error) {
	nc := int64(len(a.info.ClassNames))
	scores, err := out.get(a.info.Head.ScoresOutput, 1, -1, nc)
	if err != nil {
		return dst, err
	}
	r := scores.Shape[1]
	want := []int64{1, r, 4}
	if a.classBoxes {
		want = []int64{1, r, nc, 4}
	}
	boxes, err := out.get(a.info.Head.BoxesOutput, want...)
	if err != nil {
		return dst, err
	}
	var centerness []float32
	if name := a.info.Head.CenternessOutput; name != "" {
		ctr, err := out.get(name, 1, r, 1)
		if err != nil {
			return dst, err
		}
		centerness = ctr.Data
	}
	w, h := float32(a.info.Input.Width), float32(a.info.Input.Height)
	for i := range int(r) {
		row := scores.Data[i*int(nc) : (i+1)*int(nc)]
		var ctr float32 = 1
		if centerness != nil {
			ctr = centerness[i]
		}
		b := boxes.Data[4*i : 4*i+4]
		box := [4]float32{clamp(b[0], 0, w), clamp(b[1], 0, h), clamp(b[2], 0, w), clamp(b[3], 0, h)}
		for c, s := range row {
			if centerness != nil {
				s = float32(math.Sqrt(float64(s * ctr)))
			}
			if s <= p.ScoreThreshold {
				continue
			}
			if a.classBoxes {
				b := boxes.Data[(i*int(nc)+c)*4 : (i*int(nc)+c+1)*4]
				box = [4]float32{clamp(b[0], 0, w), clamp(b[1], 0, h), clamp(b[2], 0, w), clamp(b[3], 0, h)}
			}
			dst = append(dst, Detection{Box: box, Score: s, Class: c})
		}
	}
	return dst, nil
}
