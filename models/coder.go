package models

import (
	"math"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/box"
)

// EncodeDistances returns FCOS regression targets for points (P·2) with
// strides (P) and their boxes (P·4): log(d / stride) for the distances
// d = (l, t, r, b) from the point to the box's sides, all positive for a
// point inside its box.
func EncodeDistances(points, strides, boxes []float32) []float32 {
	n := len(strides)
	out := make([]float32, 4*n)
	for i := 0; i < n; i++ {
		px, py, s := points[2*i], points[2*i+1], strides[i]
		b := boxes[4*i : 4*i+4]
		d := [4]float32{px - b[0], py - b[1], b[2] - px, b[3] - py}
		for k, v := range d {
			out[4*i+k] = float32(math.Log(float64(max(v, 1e-6) / s)))
		}
	}
	return out
}

// DecodeDistances inverts EncodeDistances: boxes (P·4) from points (P·2),
// strides (P) and log-distances (P·4). The log values are clamped to
// box.ScaleClamp so an untrained head cannot produce infinite boxes.
func DecodeDistances(points, strides, reg []float32) []float32 {
	n := len(strides)
	out := make([]float32, 4*n)
	for i := 0; i < n; i++ {
		px, py, s := points[2*i], points[2*i+1], strides[i]
		var d [4]float32
		for k := range d {
			d[k] = float32(math.Exp(float64(min(reg[4*i+k], box.ScaleClamp)))) * s
		}
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = px-d[0], py-d[1], px+d[2], py+d[3]
	}
	return out
}

// DecodeBoxes turns one image's regression rows (reg, R·4 in flattened
// order) into boxes x1, y1, x2, y2 in input pixels.
func (d *Detector) DecodeBoxes(reg []float32, p *Priors) []float32 {
	if d.Config.Family == FamilyFCOS {
		return DecodeDistances(p.Points, p.Strides, reg)
	}
	return box.Decode(p.Anchors, reg, d.Config.Loss.BoxCoderWeights)
}

// decodeRows decodes regression rows reg [P, 4] of the given flattened
// positions into boxes [P, 4] inside the autograd graph, so a box loss such
// as GIoU can train the raw outputs.
func (d *Detector) decodeRows(reg *engine.Tensor, rows []int, p *Priors) *engine.Tensor {
	n := len(rows)
	clamped := func(t *engine.Tensor) *engine.Tensor {
		return engine.Exp(engine.Clamp(t, -box.ScaleClamp*4, box.ScaleClamp))
	}
	if d.Config.Family == FamilyFCOS {
		pts := make([]float32, 2*n)
		st := make([]float32, n)
		for i, r := range rows {
			pts[2*i], pts[2*i+1] = p.Points[2*r], p.Points[2*r+1]
			st[i] = p.Strides[r]
		}
		dist := engine.Mul(clamped(reg), engine.FromHost(st, n, 1))
		ptsT := engine.FromHost(pts, n, 2)
		return engine.Concat(1, engine.Sub(ptsT, engine.Slice(dist, 1, 0, 2)), engine.Add(ptsT, engine.Slice(dist, 1, 2, 4)))
	}
	w := d.Config.Loss.BoxCoderWeights
	ctr := make([]float32, 2*n)
	size := make([]float32, 2*n)
	for i, r := range rows {
		a := p.Anchors[4*r : 4*r+4]
		size[2*i], size[2*i+1] = a[2]-a[0], a[3]-a[1]
		ctr[2*i], ctr[2*i+1] = a[0]+size[2*i]/2, a[1]+size[2*i+1]/2
	}
	sizeT := engine.FromHost(size, n, 2)
	shift := engine.Mul(engine.Slice(reg, 1, 0, 2), engine.FromHost([]float32{1 / w[0], 1 / w[1]}, 1, 2))
	scale := engine.Mul(engine.Slice(reg, 1, 2, 4), engine.FromHost([]float32{1 / w[2], 1 / w[3]}, 1, 2))
	centre := engine.Add(engine.Mul(shift, sizeT), engine.FromHost(ctr, n, 2))
	half := engine.MulScalar(engine.Mul(clamped(scale), sizeT), 0.5)
	return engine.Concat(1, engine.Sub(centre, half), engine.Add(centre, half))
}

// Centerness is FCOS's centerness target of a point inside a box:
// √(min(l,r)/max(l,r) · min(t,b)/max(t,b)).
func Centerness(px, py float32, b []float32) float32 {
	l, t, r, bt := px-b[0], py-b[1], b[2]-px, b[3]-py
	if min(l, t, r, bt) <= 0 {
		return 0
	}
	return float32(math.Sqrt(float64(min(l, r) / max(l, r) * min(t, bt) / max(t, bt))))
}
