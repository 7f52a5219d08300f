package infer

import "github.com/gidedge/gidedge/geom"

// Detection is one detected object.
type Detection struct {
	Box   [4]float32 // x1, y1, x2, y2 in source-image pixels
	Score float32
	Class int
	Label string
}

// NMS applies class-aware greedy non-maximum suppression (geom.BatchedNMS):
// a detection is dropped when a higher-scoring one of the same class
// overlaps it by more than iouThreshold. It returns at most maxDetections
// (all when <= 0) in a new slice, by descending score, equal scores in
// input order.
func NMS(dets []Detection, iouThreshold float32, maxDetections int) []Detection {
	boxes := make([]float32, 0, 4*len(dets))
	scores := make([]float32, len(dets))
	classes := make([]int, len(dets))
	for i, d := range dets {
		boxes = append(boxes, d.Box[:]...)
		scores[i], classes[i] = d.Score, d.Class
	}
	keep := geom.BatchedNMS(boxes, scores, classes, iouThreshold)
	if maxDetections > 0 && len(keep) > maxDetections {
		keep = keep[:maxDetections]
	}
	out := make([]Detection, len(keep))
	for i, k := range keep {
		out[i] = dets[k]
	}
	return out
}
