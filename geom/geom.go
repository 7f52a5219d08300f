// Package geom is the box geometry every detector stage shares: areas,
// intersection over union and non-maximum suppression. Data sets, the
// training models, distillation and ONNX inference all call it, so an IoU
// means the same thing everywhere. It imports nothing of gidedge and
// nothing outside the standard library.
//
// Layout: a box is (x1, y1, x2, y2) in continuous pixel coordinates, x2 − x1
// being its width. Single boxes are [4]T arrays; lists of boxes are flat
// float32 slices of n×4 values, with n scores or classes beside them.
// Nothing here records gradients.
//
// Errors: a box list whose length is not a multiple of four, or scores and
// classes that do not match the box count, is a programmer error: the
// function panics with a *LengthError naming itself and the lengths, which
// the command line's one recover point (engine.Guard) returns as an error.
// Degenerate boxes are not errors: they have area 0 and IoU 0.
package geom

import (
	"fmt"
	"sort"
)

// LengthError is the panic value of a function given slices whose lengths
// do not fit together.
type LengthError struct {
	Func   string // the function that was called, e.g. "NMS"
	Detail string // the lengths it got
}

func (e *LengthError) Error() string { return "geom: " + e.Func + ": " + e.Detail }

func lengthPanic(fn, format string, args ...any) {
	panic(&LengthError{Func: fn, Detail: fmt.Sprintf(format, args...)})
}

// count returns the number of boxes in a flat list.
func count(fn string, boxes []float32) int {
	if len(boxes)%4 != 0 {
		lengthPanic(fn, "%d values is not a multiple of 4 (x1, y1, x2, y2)", len(boxes))
	}
	return len(boxes) / 4
}

// IoU is the intersection over union of a and b; 0 when they do not
// overlap or their union is empty.
func IoU[T float32 | float64](a, b [4]T) T {
	return iou(a, b, (a[2]-a[0])*(a[3]-a[1]), (b[2]-b[0])*(b[3]-b[1]))
}

// iou is IoU with the areas already known.
func iou[T float32 | float64](a, b [4]T, areaA, areaB T) T {
	iw := min(a[2], b[2]) - max(a[0], b[0])
	ih := min(a[3], b[3]) - max(a[1], b[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := areaA + areaB - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// at returns box i of a flat list.
func at(boxes []float32, i int) [4]float32 { return [4]float32(boxes[4*i : 4*i+4]) }

// Areas returns (x2 − x1)·(y2 − y1) for each box of a flat list.
func Areas(boxes []float32) []float32 {
	n := count("Areas", boxes)
	out := make([]float32, n)
	for i := range out {
		b := at(boxes, i)
		out[i] = (b[2] - b[0]) * (b[3] - b[1])
	}
	return out
}

// IoUMatrix returns the n×m intersection-over-union matrix of a (n boxes)
// and b (m boxes), row-major: element i·m + j is IoU(a[i], b[j]).
func IoUMatrix(a, b []float32) []float32 {
	n, m := count("IoUMatrix", a), count("IoUMatrix", b)
	areaA, areaB := Areas(a), Areas(b)
	out := make([]float32, n*m)
	for i := range n {
		p := at(a, i)
		row := out[i*m : (i+1)*m]
		for j := range row {
			row[j] = iou(p, at(b, j), areaA[i], areaB[j])
		}
	}
	return out
}

// byScore returns box indices sorted by descending score; equal scores keep
// index order.
func byScore(scores []float32) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}

// NMS is greedy non-maximum suppression with torchvision's semantics: it
// keeps the highest-scoring box, drops every remaining box whose IoU with
// a kept one exceeds iouThreshold, and repeats. It returns the kept indices
// by descending score (equal scores in index order).
func NMS(boxes, scores []float32, iouThreshold float32) []int {
	n := count("NMS", boxes)
	if len(scores) != n {
		lengthPanic("NMS", "%d scores for %d boxes", len(scores), n)
	}
	return suppress(boxes, Areas(boxes), byScore(scores), iouThreshold)
}

// suppress runs greedy NMS over the boxes idx names, already in score
// order.
func suppress(boxes, areas []float32, idx []int, iouThreshold float32) []int {
	dropped := make([]bool, len(areas))
	var keep []int
	for a, i := range idx {
		if dropped[i] {
			continue
		}
		keep = append(keep, i)
		p := at(boxes, i)
		for _, j := range idx[a+1:] {
			if !dropped[j] && iou(p, at(boxes, j), areas[i], areas[j]) > iouThreshold {
				dropped[j] = true
			}
		}
	}
	return keep
}

// BatchedNMS runs NMS separately for each class (boxes of different
// classes never suppress each other) and returns the kept indices of all
// classes merged by descending score, equal scores in index order.
func BatchedNMS(boxes, scores []float32, classes []int, iouThreshold float32) []int {
	n := count("BatchedNMS", boxes)
	if len(scores) != n || len(classes) != n {
		lengthPanic("BatchedNMS", "%d scores and %d classes for %d boxes", len(scores), len(classes), n)
	}
	areas := Areas(boxes)
	byClass := map[int][]int{}
	for _, i := range byScore(scores) {
		byClass[classes[i]] = append(byClass[classes[i]], i)
	}
	var keep []int
	for _, idx := range byClass {
		keep = append(keep, suppress(boxes, areas, idx, iouThreshold)...)
	}
	sort.Slice(keep, func(a, b int) bool {
		if scores[keep[a]] != scores[keep[b]] {
			return scores[keep[a]] > scores[keep[b]]
		}
		return keep[a] < keep[b]
	})
	return keep
}
