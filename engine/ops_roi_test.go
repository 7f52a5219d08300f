package engine_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// linearMap returns a 1×1×4×4 map holding f(y, x) = 10y + x, on which
// bilinear interpolation is exact.
func linearMap() *engine.Tensor {
	v := make([]float32, 16)
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			v[y*4+x] = float32(10*y + x)
		}
	}
	return engine.FromHost(v, 1, 1, 4, 4)
}

func TestROIAlignHandComputed(t *testing.T) {
	cases := []struct {
		name string
		roi  []float32
		opt  engine.ROIAlignOptions
		want []float32
	}{
		// aligned: box corners at pixel boundaries, samples on pixel centres.
		{"pixel centres", []float32{0, 1, 1, 3, 3}, engine.ROIAlignOptions{OutH: 2, OutW: 2, SpatialScale: 1, SamplingRatio: 1, Aligned: true}, []float32{11, 12, 21, 22}},
		// between centres: samples at 1.5 and 2.5.
		{"half pixels", []float32{0, 1.5, 1.5, 3.5, 3.5}, engine.ROIAlignOptions{OutH: 2, OutW: 2, SpatialScale: 1, SamplingRatio: 1, Aligned: true}, []float32{16.5, 17.5, 26.5, 27.5}},
		// spatial scale: a box in 2× input pixels.
		{"scaled", []float32{0, 2, 2, 6, 6}, engine.ROIAlignOptions{OutH: 2, OutW: 2, SpatialScale: 0.5, SamplingRatio: 1, Aligned: true}, []float32{11, 12, 21, 22}},
		// adaptive sampling: ⌈4/1⌉ = 4 samples per axis at 0, 1, 2, 3.
		{"adaptive", []float32{0, 0, 0, 4, 4}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 0, Aligned: true}, []float32{16.5}},
		// top-left border: samples at −1.25 (dropped) and 0.25; count stays 4.
		{"border outside", []float32{0, -2, -2, 1, 1}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 2}, []float32{2.75 / 4}},
		// samples at −0.5 are clamped to row/column 0.
		{"border clamped", []float32{0, -1, -1, 1, 1}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 2}, []float32{(0 + 0.5 + 5 + 5.5) / 4}},
		// bottom-right border: 3.125 clamps to the last pixel, 4.375 > 4 drops.
		{"border far side", []float32{0, 2.5, 2.5, 5, 5}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 2}, []float32{33.0 / 4}},
		// legacy mode widens a 0.1-pixel box to one pixel: sample at 1.7.
		{"tiny legacy", []float32{0, 1.2, 1.2, 1.3, 1.3}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 0}, []float32{18.7}},
		// aligned keeps it 0.1 wide: one sample at its centre 0.75.
		{"tiny aligned", []float32{0, 1.2, 1.2, 1.3, 1.3}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 0, Aligned: true}, []float32{8.25}},
		// empty box, aligned: no samples at all, output 0.
		{"empty aligned", []float32{0, 2, 2, 2, 2}, engine.ROIAlignOptions{OutH: 1, OutW: 1, SpatialScale: 1, SamplingRatio: 0, Aligned: true}, []float32{0}},
	}
	x := linearMap()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := engine.ROIAlign(x, tc.roi, tc.opt)
			if out.Len() != len(tc.want) {
				t.Fatalf("got shape %v, want %d values", out.Shape(), len(tc.want))
			}
			got := out.ToHost()
			for i, w := range tc.want {
				if d := got[i] - w; d > 1e-4 || d < -1e-4 {
					t.Errorf("bin %d: got %.6g want %.6g", i, got[i], w)
				}
			}
		})
	}
}

func TestROIAlignPixelCentreGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	x := enginetest.Param(rng, 1, 1, 2, 4, 4)
	out := engine.ROIAlign(x, []float32{0, 1, 1, 3, 3}, engine.ROIAlignOptions{OutH: 2, OutW: 2, SpatialScale: 1, SamplingRatio: 1, Aligned: true})
	ov, xv := out.ToHost(), x.ToHost()
	for c := 0; c < 2; c++ {
		for i, p := range []int{5, 6, 9, 10} {
			if got, want := ov[c*4+i], xv[c*16+p]; got != want {
				t.Fatalf("channel %d bin %d: got %v want pixel %d = %v", c, i, got, p, want)
			}
		}
	}
	engine.Sum(out).Backward()
	for i, g := range x.GradToHost() {
		want := float32(0)
		if p := i % 16; p == 5 || p == 6 || p == 9 || p == 10 {
			want = 1
		}
		if g != want {
			t.Fatalf("gradient element %d: got %v want %v", i, g, want)
		}
	}
}

func TestROIAlignGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	x := enginetest.Param(rng, 1, 2, 3, 7, 9)
	rois := []float32{
		1, 2.3, 1.1, 14.7, 11.2,
		0, -3, -2, 5, 6, // crosses the border
		1, 4, 4, 4.4, 4.3, // tiny
		0, 0, 0, 18, 14, // whole map
		1, 2.3, 1.1, 14.7, 11.2, // duplicate: gradients add
	}
	for _, opt := range []engine.ROIAlignOptions{
		{OutH: 3, OutW: 2, SpatialScale: 0.5, SamplingRatio: 2, Aligned: true},
		{OutH: 2, OutW: 3, SpatialScale: 0.5, SamplingRatio: 0, Aligned: false},
		{OutH: 1, OutW: 1, SpatialScale: 0.5, SamplingRatio: -1, Aligned: true},
	} {
		t.Run(fmt.Sprintf("%+v", opt), func(t *testing.T) {
			tol := enginetest.DefaultTolerance
			tol.MaxElements = 0
			enginetest.GradCheck(t, "ROIAlign", tol, func() *engine.Tensor { return engine.ROIAlign(x, rois, opt) }, x)
		})
	}
}

func TestROIAlignErrors(t *testing.T) {
	x := engine.Zeros(1, 2, 4, 4)
	opt := engine.ROIAlignOptions{OutH: 2, OutW: 2, SpatialScale: 1}
	for name, fn := range map[string]func(){
		"batch index": func() { engine.ROIAlign(x, []float32{1, 0, 0, 2, 2}, opt) },
		"row length":  func() { engine.ROIAlign(x, []float32{0, 0, 0, 2}, opt) },
		"input rank":  func() { engine.ROIAlign(engine.Zeros(2, 4, 4), []float32{0, 0, 0, 2, 2}, opt) },
		"out size":    func() { engine.ROIAlign(x, []float32{0, 0, 0, 2, 2}, engine.ROIAlignOptions{SpatialScale: 1}) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := engine.Guard(func() error { fn(); return nil }); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
