package engine

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// ROIAlignOptions configures ROIAlign.
type ROIAlignOptions struct {
	// OutH, OutW is the pooled size per region.
	OutH, OutW int
	// SpatialScale maps box coordinates (input pixels) to feature-map
	// coordinates, e.g. 1/8 for a stride-8 level.
	SpatialScale float32
	// SamplingRatio is the number of bilinear samples per bin along each
	// axis; ≤ 0 picks ⌈roi size / out size⌉ adaptively per region.
	SamplingRatio int
	// Aligned shifts box coordinates by −0.5 so that pixel centres sit at
	// half-integers (torchvision's aligned=True); without it regions are at
	// least one cell wide, the legacy Caffe2 behaviour.
	Aligned bool
}

// ROIAlign pools regions of x [N, C, H, W] into [K, C, OutH, OutW] by
// averaging bilinear samples, with torchvision roi_align semantics. rois
// holds K rows of (batch index, x1, y1, x2, y2) in input pixels, on the
// host; they are uploaded to x's device. The gradient flows into x; rois
// are constants.
func ROIAlign(x *Tensor, rois []float32, opt ROIAlignOptions) *Tensor {
	const name = "ROIAlign"
	d := device(name, x)
	check(x.Rank() == 4, name, "input must be NCHW", nil, x)
	check(opt.OutH > 0 && opt.OutW > 0, name, "output size %dx%d must be positive", []any{opt.OutH, opt.OutW}, x)
	check(len(rois)%5 == 0, name, "rois has %d values, want K×5 (batch, x1, y1, x2, y2)", []any{len(rois)}, x)
	check(opt.SpatialScale > 0, name, "spatial scale %v must be positive", []any{opt.SpatialScale}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	check(h > 0 && w > 0, name, "input must not be empty", nil, x)
	k := len(rois) / 5
	for r := 0; r < k; r++ {
		b := rois[r*5]
		check(float64(b) == math.Trunc(float64(b)) && int(b) >= 0 && int(b) < n, name, "roi %d has batch index %v, want an integer in [0, %d)", []any{r, b, n}, x)
	}
	g := backend.ROIAlignGeometry{N: n, C: c, H: h, W: w, Regions: k, OutH: opt.OutH, OutW: opt.OutW,
		SpatialScale: opt.SpatialScale, SamplingRatio: opt.SamplingRatio, Aligned: opt.Aligned}
	boxes := d.Alloc(backend.Float32, len(rois))
	upload(d, boxes, rois)
	out := alloc(d, []int{k, c, opt.OutH, opt.OutW})
	d.ROIAlign(backend.ROIAlignArgs{Geometry: g, X: x.buf, ROIs: boxes, Y: out.buf})
	record(out, name, func(out *Tensor) {
		d.ROIAlignBackward(backend.ROIAlignBackwardArgs{Geometry: g, ROIs: boxes, DY: out.grad, DX: x.gradDest()})
	}, func() { d.Free(boxes) }, x)
	return out
}
