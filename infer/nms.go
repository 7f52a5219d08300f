package infer

import (
	"cmp"
	"slices"
)

// Detection is one detected object.
type Detection struct {
	Box   [4]float32 // x1, y1, x2, y2 in source-image pixels
	Score float32
	Class int
	Label string
}

// IoU is the intersection over union of two x1, y1, x2, y2 boxes; 0 when
// either is empty.
func IoU(a, b [4]float32) float32 {
	iw := min(a[2], b[2]) - max(a[0], b[0])
	ih := min(a[3], b[3]) - max(a[1], b[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := (a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// NMS applies class-aware greedy non-maximum suppression: a detection is
// dropped when a higher-scoring one of the same class overlaps it by more
// than iouThreshold. It keeps at most maxDetections (all when <= 0), sorted
// by descending score, and reorders dets in place; the result aliases dets.
func NMS(dets []Detection, iouThreshold float32, maxDetections int) []Detection {
	slices.SortStableFunc(dets, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	kept := dets[:0]
	for _, d := range dets {
		if maxDetections > 0 && len(kept) >= maxDetections {
			break
		}
		suppressed := false
		for _, k := range kept {
			if k.Class == d.Class && IoU(k.Box, d.Box) > iouThreshold {
				suppressed = true
				break
			}
		}
		if !suppressed {
			kept = append(kept, d)
		}
	}
	return kept
}
