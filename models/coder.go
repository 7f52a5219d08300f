package models

import (
	"fmt"
	"math"

	"github.com/gidedge/gidedge/engine"
)

// ScaleClamp bounds the log-scale values DecodeDeltas and DecodeDistances
// accept, log(1000/16) as in torchvision's BoxCoder, so an untrained head
// cannot produce infinite boxes.
const ScaleClamp = 4.135166556742356

// EncodeDeltas returns RetinaNet's regression targets (dx, dy, dw, dh) that
// move each anchor onto its matched ground-truth box (torchvision
// BoxCoder.encode): dx = wx·(gx − ax)/aw and dw = ww·log(gw/aw), likewise
// for y and h, with centres and sizes taken from x1, y1, x2, y2. anchors
// and gt (both P·4) are paired row by row.
func EncodeDeltas(anchors, gt []float32, weights [4]float32) []float32 {
	n := pairedRows("models.EncodeDeltas", anchors, gt)
	out := make([]float32, n*4)
	for i := 0; i < n; i++ {
		ax, ay, aw, ah := centreSize(anchors[i*4 : i*4+4])
		gx, gy, gw, gh := centreSize(gt[i*4 : i*4+4])
		d := out[i*4 : i*4+4]
		d[0] = weights[0] * (gx - ax) / aw
		d[1] = weights[1] * (gy - ay) / ah
		d[2] = weights[2] * float32(math.Log(float64(gw/aw)))
		d[3] = weights[3] * float32(math.Log(float64(gh/ah)))
	}
	return out
}

// DecodeDeltas applies deltas (dx, dy, dw, dh, P·4) to anchors (P·4), the
// inverse of EncodeDeltas (torchvision BoxCoder.decode_single); dw and dh
// are clamped to ScaleClamp after dividing by their weights.
func DecodeDeltas(anchors, deltas []float32, weights [4]float32) []float32 {
	n := pairedRows("models.DecodeDeltas", anchors, deltas)
	out := make([]float32, n*4)
	for i := 0; i < n; i++ {
		ax, ay, aw, ah := centreSize(anchors[i*4 : i*4+4])
		d := deltas[i*4 : i*4+4]
		dx, dy := d[0]/weights[0], d[1]/weights[1]
		dw, dh := min(d[2]/weights[2], ScaleClamp), min(d[3]/weights[3], ScaleClamp)
		cx, cy := dx*aw+ax, dy*ah+ay
		w := float32(math.Exp(float64(dw))) * aw
		h := float32(math.Exp(float64(dh))) * ah
		b := out[i*4 : i*4+4]
		b[0], b[1], b[2], b[3] = cx-0.5*w, cy-0.5*h, cx+0.5*w, cy+0.5*h
	}
	return out
}

// centreSize returns the centre and size of an x1, y1, x2, y2 box.
func centreSize(b []float32) (cx, cy, w, h float32) {
	w, h = b[2]-b[0], b[3]-b[1]
	return b[0] + 0.5*w, b[1] + 0.5*h, w, h
}

// pairedRows returns the number of 4-value rows of a and b, which must be
// equal; anything else is a programmer error and panics with an
// *engine.OpError.
func pairedRows(op string, a, b []float32) int {
	if len(a)%4 != 0 || len(a) != len(b) {
		panic(&engine.OpError{Op: op, Shapes: [][]int{{len(a)}, {len(b)}}, Err: engine.ErrShape,
			Detail: fmt.Sprintf("%d and %d values, want the same number of x1, y1, x2, y2 rows", len(a), len(b))})
	}
	return len(a) / 4
}

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
// ScaleClamp so an untrained head cannot produce infinite boxes.
func DecodeDistances(points, strides, reg []float32) []float32 {
	n := len(strides)
	out := make([]float32, 4*n)
	for i := 0; i < n; i++ {
		px, py, s := points[2*i], points[2*i+1], strides[i]
		var d [4]float32
		for k := range d {
			d[k] = float32(math.Exp(float64(min(reg[4*i+k], ScaleClamp)))) * s
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
	return DecodeDeltas(p.Anchors, reg, d.Config.Loss.BoxCoderWeights)
}

// decodeRows decodes regression rows reg [P, 4] of the given flattened
// positions into boxes [P, 4] inside the autograd graph, so a box loss such
// as GIoU can train the raw outputs.
func (d *Detector) decodeRows(reg *engine.Tensor, rows []int, p *Priors) *engine.Tensor {
	n := len(rows)
	clamped := func(t *engine.Tensor) *engine.Tensor {
		return engine.Exp(engine.Clamp(t, -ScaleClamp*4, ScaleClamp))
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
		ctr[2*i], ctr[2*i+1], size[2*i], size[2*i+1] = centreSize(p.Anchors[4*r : 4*r+4])
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
