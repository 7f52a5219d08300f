package engine

import (
	"math"
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
// holds K rows of (batch index, x1, y1, x2, y2) in input pixels. The
// gradient flows into x; rois are constants.
func ROIAlign(x *Tensor, rois []float32, opt ROIAlignOptions) *Tensor {
	const name = "ROIAlign"
	check(x.Rank() == 4, name, "input must be NCHW", nil, x)
	check(opt.OutH > 0 && opt.OutW > 0, name, "output size %dx%d must be positive", []any{opt.OutH, opt.OutW}, x)
	check(len(rois)%5 == 0, name, "rois has %d values, want K×5 (batch, x1, y1, x2, y2)", []any{len(rois)}, x)
	check(opt.SpatialScale > 0, name, "spatial scale %v must be positive", []any{opt.SpatialScale}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	k := len(rois) / 5
	for r := 0; r < k; r++ {
		b := rois[r*5]
		check(float64(b) == math.Trunc(float64(b)) && int(b) >= 0 && int(b) < n, name, "roi %d has batch index %v, want an integer in [0, %d)", []any{r, b, n}, x)
	}
	plans := make([]roiPlan, k)
	for r := range plans {
		plans[r] = planROI(rois[r*5:r*5+5], opt, h, w)
	}
	out := newResultNoZero([]int{k, c, opt.OutH, opt.OutW})
	bins := opt.OutH * opt.OutW
	be().Parallel(k*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			r, ch := t/c, t%c
			p := &plans[r]
			plane := x.data[(p.batch*c+ch)*h*w : (p.batch*c+ch+1)*h*w]
			dst := out.data[t*bins : (t+1)*bins]
			for bin := range dst {
				var acc float32
				for _, s := range p.samples[bin*p.perBin : (bin+1)*p.perBin] {
					if s.valid {
						acc += s.w[0]*plane[s.idx[0]] + s.w[1]*plane[s.idx[1]] + s.w[2]*plane[s.idx[2]] + s.w[3]*plane[s.idx[3]]
					}
				}
				dst[bin] = acc * p.inv
			}
		}
	})
	record(out, name, func(out *Tensor) {
		g := x.ensureGrad()
		// Regions of one image may overlap, so parallelise over channels:
		// each worker owns whole planes of the gradient.
		be().Parallel(c, func(lo, hi int) {
			for ch := lo; ch < hi; ch++ {
				for r := range plans {
					p := &plans[r]
					plane := g[(p.batch*c+ch)*h*w : (p.batch*c+ch+1)*h*w]
					src := out.grad[(r*c+ch)*bins : (r*c+ch+1)*bins]
					for bin, gv := range src {
						if gv == 0 {
							continue
						}
						gv *= p.inv
						for _, s := range p.samples[bin*p.perBin : (bin+1)*p.perBin] {
							if s.valid {
								for q := 0; q < 4; q++ {
									plane[s.idx[q]] += gv * s.w[q]
								}
							}
						}
					}
				}
			}
		})
	}, x)
	return out
}

// roiSample is one bilinear sample: four taps and their weights.
type roiSample struct {
	idx   [4]int
	w     [4]float32
	valid bool
}

// roiPlan holds every sample of one region, shared by all channels.
type roiPlan struct {
	batch   int
	perBin  int
	inv     float32 // 1 / sample count
	samples []roiSample
}

func planROI(roi []float32, opt ROIAlignOptions, h, w int) roiPlan {
	// torchvision computes the geometry in the input's precision (float32).
	scale := opt.SpatialScale
	var offset float32
	if opt.Aligned {
		offset = 0.5
	}
	startW := roi[1]*scale - offset
	startH := roi[2]*scale - offset
	endW := roi[3]*scale - offset
	endH := roi[4]*scale - offset
	roiW, roiH := endW-startW, endH-startH
	if !opt.Aligned {
		roiW, roiH = max(roiW, 1), max(roiH, 1)
	}
	binH := roiH / float32(opt.OutH)
	binW := roiW / float32(opt.OutW)
	gridH, gridW := opt.SamplingRatio, opt.SamplingRatio
	if opt.SamplingRatio <= 0 {
		gridH = int(math.Ceil(float64(roiH / float32(opt.OutH))))
		gridW = int(math.Ceil(float64(roiW / float32(opt.OutW))))
	}
	gridH, gridW = max(gridH, 0), max(gridW, 0)
	count := max(gridH*gridW, 1)
	p := roiPlan{batch: int(roi[0]), perBin: gridH * gridW, inv: 1 / float32(count)}
	p.samples = make([]roiSample, opt.OutH*opt.OutW*p.perBin)
	i := 0
	for ph := 0; ph < opt.OutH; ph++ {
		for pw := 0; pw < opt.OutW; pw++ {
			for iy := 0; iy < gridH; iy++ {
				y := startH + float32(ph)*binH + (float32(iy)+0.5)*binH/float32(gridH)
				for ix := 0; ix < gridW; ix++ {
					xx := startW + float32(pw)*binW + (float32(ix)+0.5)*binW/float32(gridW)
					p.samples[i] = bilinearSample(y, xx, h, w)
					i++
				}
			}
		}
	}
	return p
}

// bilinearSample follows torchvision's bilinear_interpolate: samples more
// than one cell outside the map contribute nothing, samples within it are
// clamped to the border.
func bilinearSample(y, x float32, h, w int) roiSample {
	if y < -1 || y > float32(h) || x < -1 || x > float32(w) {
		return roiSample{}
	}
	y, x = max(y, 0), max(x, 0)
	yLow, xLow := int(y), int(x)
	var yHigh, xHigh int
	if yLow >= h-1 {
		yLow, yHigh = h-1, h-1
		y = float32(yLow)
	} else {
		yHigh = yLow + 1
	}
	if xLow >= w-1 {
		xLow, xHigh = w-1, w-1
		x = float32(xLow)
	} else {
		xHigh = xLow + 1
	}
	ly, lx := y-float32(yLow), x-float32(xLow)
	hy, hx := 1-ly, 1-lx
	return roiSample{
		idx:   [4]int{yLow*w + xLow, yLow*w + xHigh, yHigh*w + xLow, yHigh*w + xHigh},
		w:     [4]float32{hy * hx, hy * lx, ly * hx, ly * lx},
		valid: true,
	}
}
