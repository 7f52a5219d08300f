// Package box holds the box arithmetic detectors need outside the autograd
// graph: IoU matrices, non-maximum suppression and the anchor box coder.
//
// Layout: boxes are flat float32 slices of n×4 values (x1, y1, x2, y2) with
// x2 ≥ x1 and y2 ≥ y1; scores are n values. Nothing here records gradients.
//
// Errors: a slice whose length is not a multiple of four, or scores and
// classes that do not match the box count, are programmer errors and panic
// with a message naming the function and the lengths.
package box

import (
	"fmt"
	"math"
	"sort"
)

// ScaleClamp bounds the log-scale deltas Decode accepts, log(1000/16) as in
// torchvision's BoxCoder, so an untrained head cannot produce Inf boxes.
const ScaleClamp = 4.135166556742356

func count(fn string, boxes []float32) int {
	if len(boxes)%4 != 0 {
		panic(fmt.Sprintf("box: %s: %d values is not a multiple of 4 (x1, y1, x2, y2)", fn, len(boxes)))
	}
	return len(boxes) / 4
}

// Area returns (x2−x1)·(y2−y1) for each box.
func Area(boxes []float32) []float32 {
	n := count("Area", boxes)
	out := make([]float32, n)
	for i := range out {
		b := boxes[i*4 : i*4+4]
		out[i] = (b[2] - b[0]) * (b[3] - b[1])
	}
	return out
}

// IoU returns the n×m intersection-over-union matrix of a (n boxes) and b
// (m boxes), row-major. Pairs with an empty union have IoU 0.
func IoU(a, b []float32) []float32 {
	n, m := count("IoU", a), count("IoU", b)
	areaA, areaB := Area(a), Area(b)
	out := make([]float32, n*m)
	for i := 0; i < n; i++ {
		p := a[i*4 : i*4+4]
		row := out[i*m : (i+1)*m]
		for j := range row {
			row[j] = iou(p, b[j*4:j*4+4], areaA[i], areaB[j])
		}
	}
	return out
}

func iou(p, q []float32, areaP, areaQ float32) float32 {
	iw := min(p[2], q[2]) - max(p[0], q[0])
	ih := min(p[3], q[3]) - max(p[1], q[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := areaP + areaQ - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// order returns box indices sorted by descending score; ties keep index order.
func order(scores []float32) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}

// NMS greedily keeps the highest-scoring box and drops every remaining box
// whose IoU with a kept one exceeds iou (torchvision nms semantics). It
// returns the kept indices by descending score.
func NMS(boxes, scores []float32, iou float32) []int {
	n := count("NMS", boxes)
	if len(scores) != n {
		panic(fmt.Sprintf("box: NMS: %d scores for %d boxes", len(scores), n))
	}
	return nmsOrdered(boxes, Area(boxes), order(scores), iou)
}

func nmsOrdered(boxes, areas []float32, idx []int, thr float32) []int {
	suppressed := make([]bool, len(boxes)/4)
	var keep []int
	for a, i := range idx {
		if suppressed[i] {
			continue
		}
		keep = append(keep, i)
		p := boxes[i*4 : i*4+4]
		for _, j := range idx[a+1:] {
			if !suppressed[j] && iou(p, boxes[j*4:j*4+4], areas[i], areas[j]) > thr {
				suppressed[j] = true
			}
		}
	}
	return keep
}

// BatchedNMS runs NMS independently per class (boxes of different classes
// never suppress each other) and returns the kept indices of all classes
// merged by descending score.
func BatchedNMS(boxes, scores []float32, classes []int, iou float32) []int {
	n := count("BatchedNMS", boxes)
	if len(scores) != n || len(classes) != n {
		panic(fmt.Sprintf("box: BatchedNMS: %d scores and %d classes for %d boxes", len(scores), len(classes), n))
	}
	areas := Area(boxes)
	byClass := map[int][]int{}
	for _, i := range order(scores) {
		byClass[classes[i]] = append(byClass[classes[i]], i)
	}
	var keep []int
	for _, idx := range byClass {
		keep = append(keep, nmsOrdered(boxes, areas, idx, iou)...)
	}
	sort.SliceStable(keep, func(a, b int) bool {
		if scores[keep[a]] != scores[keep[b]] {
			return scores[keep[a]] > scores[keep[b]]
		}
		return keep[a] < keep[b]
	})
	return keep
}

// Encode returns the regression targets (dx, dy, dw, dh) that move each
// anchor onto its matched ground-truth box (torchvision BoxCoder.encode):
// dx = wx·(gx − ax)/aw, dw = ww·log(gw/aw), likewise for y and h, with
// centres and sizes taken from x1, y1, x2, y2. anchors and gt are paired
// row by row.
func Encode(anchors, gt []float32, weights [4]float32) []float32 {
	n := count("Encode", anchors)
	if count("Encode", gt) != n {
		panic(fmt.Sprintf("box: Encode: %d anchors and %d boxes", n, len(gt)/4))
	}
	out := make([]float32, n*4)
	for i := 0; i < n; i++ {
		a, g := anchors[i*4:i*4+4], gt[i*4:i*4+4]
		aw, ah := a[2]-a[0], a[3]-a[1]
		ax, ay := a[0]+0.5*aw, a[1]+0.5*ah
		gw, gh := g[2]-g[0], g[3]-g[1]
		gx, gy := g[0]+0.5*gw, g[1]+0.5*gh
		d := out[i*4 : i*4+4]
		d[0] = weights[0] * (gx - ax) / aw
		d[1] = weights[1] * (gy - ay) / ah
		d[2] = weights[2] * float32(math.Log(float64(gw/aw)))
		d[3] = weights[3] * float32(math.Log(float64(gh/ah)))
	}
	return out
}

// Decode applies deltas (dx, dy, dw, dh) to anchors, the inverse of Encode
// (torchvision BoxCoder.decode_single); dw and dh are clamped to ScaleClamp
// after dividing by their weights.
func Decode(anchors, deltas []float32, weights [4]float32) []float32 {
	n := count("Decode", anchors)
	if count("Decode", deltas) != n {
		panic(fmt.Sprintf("box: Decode: %d anchors and %d deltas", n, len(deltas)/4))
	}
	out := make([]float32, n*4)
	for i := 0; i < n; i++ {
		a, d := anchors[i*4:i*4+4], deltas[i*4:i*4+4]
		aw, ah := a[2]-a[0], a[3]-a[1]
		ax, ay := a[0]+0.5*aw, a[1]+0.5*ah
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
