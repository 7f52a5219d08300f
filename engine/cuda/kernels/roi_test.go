package kernels_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func TestROIAlignMatchesEngine(t *testing.T) {
	const n, c, h, w = 2, 3, 11, 13
	rois := []float32{
		0, 1.5, 2.25, 40.5, 30,
		1, -6, -4, 20, 18, // partly outside the map
		0, 10, 10, 10.5, 11, // smaller than a cell
		1, 30, 5, 95, 80, // reaches past the border
		0, 50, 60, 52, 62,
	}
	opts := []engine.ROIAlignOptions{
		{OutH: 3, OutW: 4, SpatialScale: 0.125, SamplingRatio: 2, Aligned: true},
		{OutH: 2, OutW: 2, SpatialScale: 0.25, SamplingRatio: 0, Aligned: true},
		{OutH: 5, OutW: 3, SpatialScale: 0.125, SamplingRatio: 0, Aligned: false},
		{OutH: 1, OutW: 1, SpatialScale: 0.125, SamplingRatio: 3, Aligned: false},
	}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, o := range opts {
			t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(18, uint64(o.OutH)))
				x := randn(rng, n*c*h*w, 1)
				k := len(rois) / 5
				ny := k * c * o.OutH * o.OutW
				gy := randn(rng, ny, 1)
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.ROIAlign(in[0], rois, o) }, gy, tns(x, n, c, h, w))
				aligned := int32(0)
				if o.Aligned {
					aligned = 1
				}
				g := kernels.ROI{N: n, C: c, H: h, W: w, Rois: int32(k), OH: int32(o.OutH), OW: int32(o.OutW), Sampling: int32(o.SamplingRatio), Aligned: aligned, Scale: o.SpatialScale}
				rp := d.put(t, rois)
				y := d.put(t, make([]float32, ny))
				run(t, d, "gidedge_roi_align_forward", small(ny), ptr(y), ptr(d.put(t, x)), ptr(rp), g.Arg())
				near(t, "y", d.get(t, y, ny), want, 1e-5, 1e-5)
				gx := d.put(t, make([]float32, len(x)))
				run(t, d, "gidedge_roi_align_backward", small(ny), ptr(gx), ptr(d.put(t, gy)), ptr(rp), g.Arg())
				near(t, "gx", d.get(t, gx, len(x)), grads[0], 1e-5, 1e-5)
			})
		}
	})
}
