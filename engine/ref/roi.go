package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// roiSample is one bilinear sample: four input pixels (plane-local
// indices) and their weights; invalid samples fall outside the map.
type roiSample struct {
	idx   [4]int
	w     [4]float32
	valid bool
}

// roiPlan holds every sample of one region, shared by all its channels.
type roiPlan struct {
	batch   int
	perBin  int
	inv     float32 // 1 / sample count
	samples []roiSample
}

// CheckROI validates a ROIAlign geometry.
func CheckROI(who, kernel string, g backend.ROIAlignGeometry) {
	if g.N < 0 || g.C < 0 || g.H <= 0 || g.W <= 0 || g.Regions < 0 || g.OutH <= 0 || g.OutW <= 0 || !(g.SpatialScale > 0) {
		backend.Fail(who, kernel, "invalid geometry %+v", g)
	}
}

// roiPlans lays out the samples of every region, checking batch indices.
func roiPlans(kernel string, g backend.ROIAlignGeometry, rois []float32) []roiPlan {
	plans := make([]roiPlan, g.Regions)
	for r := range plans {
		b := rois[5*r]
		if float64(b) != math.Trunc(float64(b)) || b < 0 || int(b) >= g.N {
			backend.Fail(Name, kernel, "region %d has batch index %v, want an integer in [0, %d)", r, b, g.N)
		}
		plans[r] = planROI(rois[5*r:5*r+5], g)
	}
	return plans
}

// planROI follows torchvision's roi_align: the geometry is computed in
// float32, like the input.
func planROI(roi []float32, g backend.ROIAlignGeometry) roiPlan {
	scale := g.SpatialScale
	var offset float32
	if g.Aligned {
		offset = 0.5
	}
	startW := roi[1]*scale - offset
	startH := roi[2]*scale - offset
	endW := roi[3]*scale - offset
	endH := roi[4]*scale - offset
	roiW, roiH := endW-startW, endH-startH
	if !g.Aligned {
		roiW, roiH = max(roiW, 1), max(roiH, 1)
	}
	binH := roiH / float32(g.OutH)
	binW := roiW / float32(g.OutW)
	gridH, gridW := g.SamplingRatio, g.SamplingRatio
	if g.SamplingRatio <= 0 {
		gridH = int(math.Ceil(float64(roiH / float32(g.OutH))))
		gridW = int(math.Ceil(float64(roiW / float32(g.OutW))))
	}
	gridH, gridW = max(gridH, 0), max(gridW, 0)
	count := max(gridH*gridW, 1)
	p := roiPlan{batch: int(roi[0]), perBin: gridH * gridW, inv: 1 / float32(count)}
	p.samples = make([]roiSample, 0, g.OutH*g.OutW*p.perBin)
	for ph := 0; ph < g.OutH; ph++ {
		for pw := 0; pw < g.OutW; pw++ {
			for iy := 0; iy < gridH; iy++ {
				y := startH + float32(ph)*binH + (float32(iy)+0.5)*binH/float32(gridH)
				for ix := 0; ix < gridW; ix++ {
					x := startW + float32(pw)*binW + (float32(ix)+0.5)*binW/float32(gridW)
					p.samples = append(p.samples, bilinearSample(y, x, g.H, g.W))
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

// ROIAlign implements backend.Backend.
func (r *Backend) ROIAlign(a backend.ROIAlignArgs) {
	const k = "ROIAlign"
	g := a.Geometry
	CheckROI(Name, k, g)
	hw, bins := g.H*g.W, g.OutH*g.OutW
	x := Floats(Name, k, a.X, g.N*g.C*hw)
	rois := Floats(Name, k, a.ROIs, 5*g.Regions)
	y := Floats(Name, k, a.Y, g.Regions*g.C*bins)
	for r, p := range roiPlans(k, g, rois) {
		for c := 0; c < g.C; c++ {
			plane := x[(p.batch*g.C+c)*hw : (p.batch*g.C+c+1)*hw]
			for bin := 0; bin < bins; bin++ {
				var acc float32
				for _, s := range p.samples[bin*p.perBin : (bin+1)*p.perBin] {
					if s.valid {
						acc += s.w[0]*plane[s.idx[0]] + s.w[1]*plane[s.idx[1]] + s.w[2]*plane[s.idx[2]] + s.w[3]*plane[s.idx[3]]
					}
				}
				y[(r*g.C+c)*bins+bin] = acc * p.inv
			}
		}
	}
}

// ROIAlignBackward implements backend.Backend.
func (r *Backend) ROIAlignBackward(a backend.ROIAlignBackwardArgs) {
	const k = "ROIAlignBackward"
	g := a.Geometry
	CheckROI(Name, k, g)
	hw, bins := g.H*g.W, g.OutH*g.OutW
	rois := Floats(Name, k, a.ROIs, 5*g.Regions)
	dy := Floats(Name, k, a.DY, g.Regions*g.C*bins)
	dx := dest(k, a.DX, g.N*g.C*hw)
	if dx == nil {
		return
	}
	for r, p := range roiPlans(k, g, rois) {
		for c := 0; c < g.C; c++ {
			plane := dx[(p.batch*g.C+c)*hw : (p.batch*g.C+c+1)*hw]
			for bin := 0; bin < bins; bin++ {
				gv := dy[(r*g.C+c)*bins+bin] * p.inv
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
}
