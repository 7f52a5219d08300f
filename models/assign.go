package models

import (
	"math"

	"github.com/gidedge/gidedge/geom"
)

// Assignment values of positions that match no ground-truth box.
const (
	Negative = -1 // background: trained towards zero scores
	Ignored  = -2 // neither positive nor negative: no loss at all
)

// AssignIoU is RetinaNet's IoU assigner. For each of the R anchors
// (anchors, R·4) it returns the index of the ground-truth box (gts, G·4) it
// regresses, Negative when its best IoU is below neg, or Ignored when that
// IoU lies in [neg, pos). With lowQuality, every box also claims the anchors
// that overlap it best (its highest non-zero IoU, ties included), so a box
// no anchor covers at pos still gets trained; such an anchor takes its own
// best box, as torchvision's Matcher does.
func AssignIoU(anchors, gts []float32, pos, neg float32, lowQuality bool) []int {
	r, g := len(anchors)/4, len(gts)/4
	out := make([]int, r)
	for i := range out {
		out[i] = Negative
	}
	if g == 0 {
		return out
	}
	iou := geom.IoUMatrix(anchors, gts) // r×g
	bestIdx := make([]int, r)
	for i := 0; i < r; i++ {
		row := iou[i*g : (i+1)*g]
		bi, bv := 0, row[0]
		for j := 1; j < g; j++ {
			if row[j] > bv {
				bi, bv = j, row[j]
			}
		}
		bestIdx[i] = bi
		switch {
		case bv >= pos:
			out[i] = bi
		case bv >= neg:
			out[i] = Ignored
		}
	}
	if !lowQuality {
		return out
	}
	for j := 0; j < g; j++ {
		var m float32
		for i := 0; i < r; i++ {
			m = max(m, iou[i*g+j])
		}
		if m <= 0 {
			continue
		}
		for i := 0; i < r; i++ {
			if iou[i*g+j] == m {
				out[i] = bestIdx[i]
			}
		}
	}
	return out
}

// AssignFCOS is FCOS's assigner. A position of p is positive for a box
// (gts, G·4) when its point lies strictly inside the box, within
// radius·stride of the box centre on both axes (center sampling; radius 0
// turns it off), and the largest of its (l, t, r, b) distances lies in
// [lo, hi] of its level's size range. When several boxes qualify the one
// with the smallest area wins. Others are Negative.
func AssignFCOS(p *Priors, gts []float32, ranges [][2]float32, radius float32) []int {
	n, g := p.Len(), len(gts)/4
	out := make([]int, n)
	areas := geom.Areas(gts)
	for i := 0; i < n; i++ {
		out[i] = Negative
		if g == 0 {
			continue
		}
		px, py := p.Points[2*i], p.Points[2*i+1]
		rng := ranges[p.Level[i]]
		rad := radius * p.Strides[i]
		bestArea := float32(math.Inf(1))
		for j := 0; j < g; j++ {
			b := gts[4*j : 4*j+4]
			l, t, r, bt := px-b[0], py-b[1], b[2]-px, b[3]-py
			if min(l, t, r, bt) <= 0 {
				continue
			}
			if radius > 0 {
				cx, cy := (b[0]+b[2])/2, (b[1]+b[3])/2
				if abs32(px-cx) >= rad || abs32(py-cy) >= rad {
					continue
				}
			}
			if m := max(l, t, r, bt); m < rng[0] || m > rng[1] {
				continue
			}
			if areas[j] < bestArea {
				bestArea, out[i] = areas[j], j
			}
		}
	}
	return out
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// Assign runs the detector's own assigner for one image's boxes (G·4, input
// pixels) over the priors.
func (d *Detector) Assign(p *Priors, gts []float32) []int {
	a := d.Config.Assigner
	if d.Config.Family == FamilyFCOS {
		return AssignFCOS(p, gts, a.SizeRanges, a.CenterRadius)
	}
	return AssignIoU(p.Anchors, gts, a.PosIoU, a.NegIoU, a.LowQuality)
}

// PositiveMask marks the R positions the detector's own assigner makes
// positive for these boxes (G·4, input pixels): RetinaNet anchors with IoU
// ≥ pos_iou (plus low-quality matches when configured), FCOS points inside a
// box, near its centre and in the level's size range. General Instance
// Distillation uses it as the response mask.
func (d *Detector) PositiveMask(p *Priors, boxes []float32) []bool {
	m := make([]bool, p.Len())
	for i, a := range d.Assign(p, boxes) {
		m[i] = a >= 0
	}
	return m
}
