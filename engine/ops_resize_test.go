package engine_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// TestResizeBilinearValues checks hand-computed values: PyTorch's
// interpolate(mode="bilinear") with align_corners False and True, and a
// half-pixel halving, which averages 2×2 blocks.
func TestResizeBilinearValues(t *testing.T) {
	x := engine.FromHost([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	cases := []struct {
		name       string
		x          *engine.Tensor
		outH, outW int
		opt        engine.ResizeOptions
		want       []float32
	}{
		{"pytorch_half_pixel 2x", x, 4, 4, engine.ResizeOptions{Mode: engine.CoordPyTorchHalfPixel}, []float32{
			1, 1.25, 1.75, 2,
			1.5, 1.75, 2.25, 2.5,
			2.5, 2.75, 3.25, 3.5,
			3, 3.25, 3.75, 4,
		}},
		{"align_corners 2x2 to 3x3", x, 3, 3, engine.ResizeOptions{Mode: engine.CoordAlignCorners}, []float32{
			1, 1.5, 2,
			2, 2.5, 3,
			3, 3.5, 4,
		}},
		{"asymmetric 2x", x, 4, 4, engine.ResizeOptions{Mode: engine.CoordAsymmetric}, []float32{
			1, 1.5, 2, 2,
			2, 2.5, 3, 3,
			3, 3.5, 4, 4,
			3, 3.5, 4, 4,
		}},
		{"half_pixel halving", engine.FromHost([]float32{
			1, 3, 5, 7,
			1, 3, 5, 7,
			0, 0, 8, 8,
			4, 4, 0, 0,
		}, 1, 1, 4, 4), 2, 2, engine.ResizeOptions{Mode: engine.CoordHalfPixel}, []float32{2, 6, 2, 4}},
		{"pytorch_half_pixel to one pixel reads the corner", x, 1, 1, engine.ResizeOptions{Mode: engine.CoordPyTorchHalfPixel}, []float32{1}},
		{"half_pixel to one pixel reads the centre", x, 1, 1, engine.ResizeOptions{Mode: engine.CoordHalfPixel}, []float32{2.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := engine.ResizeBilinear(tc.x, tc.outH, tc.outW, tc.opt).ToHost()
			for i, w := range tc.want {
				if math.Abs(float64(got[i]-w)) > 1e-6 {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestResizeBilinearGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	tol := enginetest.DefaultTolerance
	x := enginetest.Param(rng, 1, 2, 3, 5, 4)
	for _, mode := range []engine.CoordinateMode{engine.CoordHalfPixel, engine.CoordPyTorchHalfPixel, engine.CoordAlignCorners, engine.CoordAsymmetric} {
		for _, size := range [][2]int{{10, 8}, {3, 2}, {7, 9}, {1, 1}} {
			enginetest.GradCheck(t, fmt.Sprint("ResizeBilinear ", mode, size), tol, func() *engine.Tensor {
				return engine.ResizeBilinear(x, size[0], size[1], engine.ResizeOptions{Mode: mode})
			}, x)
		}
	}
	// A given scale that differs from the size ratio (ONNX scales with a
	// rounded-down output size).
	enginetest.GradCheck(t, "ResizeBilinear given scales", tol, func() *engine.Tensor {
		return engine.ResizeBilinear(x, 7, 6, engine.ResizeOptions{Mode: engine.CoordHalfPixel, ScaleH: 1.5, ScaleW: 1.5})
	}, x)
}

func TestSliceStepAndPad2d(t *testing.T) {
	x := engine.FromHost([]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 1, 1, 3, 4)
	if got := engine.SliceStep(x, 3, 1, 4, 2).ToHost(); fmt.Sprint(got) != "[1 3 5 7 9 11]" {
		t.Fatalf("SliceStep columns 1::2 = %v", got)
	}
	if got := engine.SliceStep(x, 2, 0, 3, 2).ToHost(); fmt.Sprint(got) != "[0 1 2 3 8 9 10 11]" {
		t.Fatalf("SliceStep rows ::2 = %v", got)
	}
	p := engine.Pad2d(engine.FromHost([]float32{1, 2, 3, 4}, 1, 1, 2, 2), 1, 0, 0, 2)
	if s := p.Shape(); fmt.Sprint(s) != "[1 1 3 4]" {
		t.Fatalf("Pad2d shape %v", s)
	}
	if got := p.ToHost(); fmt.Sprint(got) != "[0 0 0 0 1 2 0 0 3 4 0 0]" {
		t.Fatalf("Pad2d = %v", got)
	}
	rng := rand.New(rand.NewPCG(23, 24))
	tol := enginetest.DefaultTolerance
	y := enginetest.Param(rng, 1, 2, 3, 7, 5)
	for _, c := range [][4]int{{2, 0, 7, 2}, {2, 1, 6, 3}, {3, 0, 5, 2}, {1, 1, 3, 2}, {3, 1, 2, 1}} {
		enginetest.GradCheck(t, fmt.Sprint("SliceStep", c), tol, func() *engine.Tensor { return engine.SliceStep(y, c[0], c[1], c[2], c[3]) }, y)
	}
	enginetest.GradCheck(t, "Pad2d", tol, func() *engine.Tensor { return engine.Pad2d(y, 1, 2, 0, 3) }, y)
}

func TestResizeAndSliceErrors(t *testing.T) {
	x := engine.Zeros(1, 1, 4, 4)
	for name, fn := range map[string]func(){
		"ResizeBilinear mode": func() { engine.ResizeBilinear(x, 2, 2, engine.ResizeOptions{}) },
		"ResizeBilinear rank": func() {
			engine.ResizeBilinear(engine.Zeros(4, 4), 2, 2, engine.ResizeOptions{Mode: engine.CoordHalfPixel})
		},
		"SliceStep past end":  func() { engine.SliceStep(x, 2, 0, 5, 2) },
		"SliceStep zero step": func() { engine.SliceStep(x, 2, 0, 4, 0) },
		"Pad2d negative":      func() { engine.Pad2d(x, -1, 0, 0, 0) },
	} {
		err := engine.Guard(func() error { fn(); return nil })
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if m, ok := engine.ParseCoordinateMode("pytorch_half_pixel"); !ok || m != engine.CoordPyTorchHalfPixel || m.String() != "pytorch_half_pixel" {
		t.Errorf("ParseCoordinateMode: %v %v", m, ok)
	}
	if _, ok := engine.ParseCoordinateMode("tf_crop_and_resize"); ok {
		t.Errorf("ParseCoordinateMode accepted tf_crop_and_resize")
	}
}
