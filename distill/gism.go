package distill

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gidedge/gidedge/geom"
)

// GIType says how a general instance relates to the ground truth.
type GIType int8

// GI types, as in the paper's analysis of general instances.
const (
	// GIPositive: the GI's position is a positive of the detector's own
	// assigner for the ground-truth boxes.
	GIPositive GIType = iota
	// GISemi: not positive there, but the GI box overlaps a ground-truth box.
	GISemi
	// GINegative: the GI box overlaps no ground-truth box.
	GINegative
)

func (t GIType) String() string {
	switch t {
	case GIPositive:
		return "positive"
	case GISemi:
		return "semi"
	case GINegative:
		return "negative"
	}
	return fmt.Sprintf("GIType(%d)", int8(t))
}

// GI is one general instance of an image.
type GI struct {
	// Box is x1, y1, x2, y2 in input pixels, clipped to the input.
	Box [4]float32
	// Score is the GI score max_c |P_t − P_s| at its position (1 for a
	// ground-truth box used as a GI).
	Score float32
	// Position is the flattened prior index (level, y, x, anchor) the GI was
	// selected at; −1 for a ground-truth box.
	Position int
	// FromTeacher is set when the box is the teacher's prediction (the
	// teacher was more confident there), unset for the student's.
	FromTeacher bool
	Type        GIType
}

// SelectInput is one image's head outputs as GISM needs them. Teacher and
// student share the head layout, so row r means the same position in both.
type SelectInput struct {
	// TeacherProb and StudentProb hold R·K class probabilities (sigmoid of
	// the logits), row-major by position.
	TeacherProb, StudentProb []float32
	NumClasses               int
	// TeacherReg and StudentReg hold R·4 raw box-regression values.
	TeacherReg, StudentReg []float32
	// Decode turns the regression values of the given positions (len(rows)·4,
	// in rows order) into boxes x1, y1, x2, y2 in input pixels.
	Decode func(reg []float32, rows []int) []float32
	// Width and Height are the input size boxes are clipped to.
	Width, Height float32
	// GTBoxes (G·4, input pixels) and Positive (R: the assigner's positives
	// for them) classify the selected GIs.
	GTBoxes  []float32
	Positive []bool
}

// SelectOptions are GISM's settings (see Options).
type SelectOptions struct {
	PreTopK int
	MinSize float32
	NMSIoU  float32
	TopK    int
	// Keep, when set, restricts the kept GIs to one type; others still take
	// part in NMS, so they suppress their overlapping neighbours as usual.
	Keep *GIType
}

// Select is the general instance selection module (GISM). For every
// position r it takes the GI score max_c |P_t[r,c] − P_s[r,c]| and the box
// predicted there by whichever model is more confident (the teacher's when
// its maximum class score is strictly higher, else the student's); it keeps the
// PreTopK highest scores, clips their boxes to the input, drops boxes under
// MinSize, runs NMS at NMSIoU in GI-score order and returns at most TopK
// GIs, best first, each classified against the ground truth. Selection works
// on plain values: no gradient flows through it.
func Select(in SelectInput, opt SelectOptions) ([]GI, error) {
	k := in.NumClasses
	if k <= 0 || len(in.TeacherProb)%k != 0 {
		return nil, fmt.Errorf("distill: gism: %d teacher probabilities for %d classes", len(in.TeacherProb), k)
	}
	r := len(in.TeacherProb) / k
	switch {
	case len(in.StudentProb) != r*k:
		return nil, fmt.Errorf("distill: gism: student has %d probabilities, teacher %d (R %d × K %d)", len(in.StudentProb), len(in.TeacherProb), r, k)
	case len(in.TeacherReg) != 4*r || len(in.StudentReg) != 4*r:
		return nil, fmt.Errorf("distill: gism: box regression has %d (teacher) and %d (student) values, want R·4 = %d", len(in.TeacherReg), len(in.StudentReg), 4*r)
	case in.Positive != nil && len(in.Positive) != r:
		return nil, fmt.Errorf("distill: gism: positive mask has %d entries for %d positions", len(in.Positive), r)
	case len(in.GTBoxes)%4 != 0:
		return nil, fmt.Errorf("distill: gism: %d ground-truth values, want G·4", len(in.GTBoxes))
	}
	score := make([]float32, r)
	teacherWins := make([]bool, r)
	for p := 0; p < r; p++ {
		t, s := in.TeacherProb[p*k:(p+1)*k], in.StudentProb[p*k:(p+1)*k]
		var best, tMax, sMax float32
		for c := range t {
			d := t[c] - s[c]
			if d < 0 {
				d = -d
			}
			best = max(best, d)
			tMax, sMax = max(tMax, t[c]), max(sMax, s[c])
		}
		score[p], teacherWins[p] = best, tMax > sMax
	}
	order := make([]int, r)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[b], score[a]) })
	if len(order) > opt.PreTopK {
		order = order[:opt.PreTopK]
	}

	// Decode only the candidates, each from the model that wins there.
	var tRows, sRows []int
	for _, p := range order {
		if teacherWins[p] {
			tRows = append(tRows, p)
		} else {
			sRows = append(sRows, p)
		}
	}
	boxOf := make(map[int][4]float32, len(order))
	decode := func(reg []float32, rows []int) {
		if len(rows) == 0 {
			return
		}
		vals := make([]float32, 4*len(rows))
		for i, p := range rows {
			copy(vals[4*i:4*i+4], reg[4*p:4*p+4])
		}
		boxes := in.Decode(vals, rows)
		for i, p := range rows {
			boxOf[p] = [4]float32(boxes[4*i : 4*i+4])
		}
	}
	decode(in.TeacherReg, tRows)
	decode(in.StudentReg, sRows)

	var kept []GI
	wanted := 0
	for _, p := range order {
		b := boxOf[p]
		b[0], b[2] = clamp(b[0], 0, in.Width), clamp(b[2], 0, in.Width)
		b[1], b[3] = clamp(b[1], 0, in.Height), clamp(b[3], 0, in.Height)
		if !(b[2]-b[0] >= opt.MinSize && b[3]-b[1] >= opt.MinSize) || b[2] <= b[0] || b[3] <= b[1] {
			continue
		}
		suppressed := false
		for _, g := range kept {
			if geom.IoU(b, g.Box) > opt.NMSIoU {
				suppressed = true
				break
			}
		}
		if suppressed {
			continue
		}
		gi := GI{Box: b, Score: score[p], Position: p, FromTeacher: teacherWins[p]}
		gi.Type = classify(gi.Box, p, in.GTBoxes, in.Positive)
		kept = append(kept, gi)
		if opt.Keep == nil || gi.Type == *opt.Keep {
			wanted++
			if wanted == opt.TopK {
				break
			}
		}
	}
	if opt.Keep == nil {
		return kept, nil
	}
	out := kept[:0:0]
	for _, g := range kept {
		if g.Type == *opt.Keep {
			out = append(out, g)
		}
	}
	return out, nil
}

// classify types a GI at position pos against the ground truth.
func classify(b [4]float32, pos int, gts []float32, positive []bool) GIType {
	if pos >= 0 && positive != nil && positive[pos] {
		return GIPositive
	}
	for j := 0; j+4 <= len(gts); j += 4 {
		if geom.IoU(b, [4]float32(gts[j:j+4])) > 0 {
			return GISemi
		}
	}
	return GINegative
}

// GroundTruthGIs turns one image's ground-truth boxes (G·4) into GIs: the
// paper's "GT only" ablation.
func GroundTruthGIs(gts []float32, topK int) []GI {
	var out []GI
	for j := 0; j+4 <= len(gts) && len(out) < topK; j += 4 {
		b := [4]float32(gts[j : j+4])
		if b[2] <= b[0] || b[3] <= b[1] {
			continue
		}
		out = append(out, GI{Box: b, Score: 1, Position: -1, Type: GIPositive})
	}
	return out
}

func clamp(v, lo, hi float32) float32 { return min(max(v, lo), hi) }
