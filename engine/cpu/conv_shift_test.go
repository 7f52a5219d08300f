package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestShiftConvMatchesIm2Col runs both convolution algorithms on the same
// problems (whether or not Conv2d would pick the shifted path for them) and
// compares the output and all three gradients.
func TestShiftConvMatchesIm2Col(t *testing.T) {
	cases := []struct{ n, c, h, w, cout, k, stride, pad, dil, groups int }{
		{2, 3, 17, 18, 4, 3, 1, 1, 1, 1},
		{3, 4, 16, 20, 6, 3, 1, 1, 1, 2},
		{1, 2, 19, 22, 3, 3, 1, 0, 1, 1},
		{2, 3, 20, 24, 5, 3, 1, 2, 2, 1},
		{1, 4, 18, 19, 4, 5, 1, 2, 1, 1},
		{2, 6, 9, 26, 6, 3, 1, 1, 1, 3},
		{2, 3, 16, 16, 4, 3, 2, 1, 1, 1},
		{1, 2, 17, 15, 3, 3, 2, 1, 1, 1},
		{2, 4, 13, 14, 4, 3, 2, 0, 1, 2},
		{1, 2, 19, 21, 3, 5, 3, 2, 1, 1},
		{1, 3, 15, 18, 2, 3, 2, 2, 2, 1},
		{2, 2, 10, 11, 3, 4, 2, 1, 1, 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.h), uint64(tc.w)))
			cg := tc.c / tc.groups
			oh := (tc.h+2*tc.pad-tc.dil*(tc.k-1)-1)/tc.stride + 1
			ow := (tc.w+2*tc.pad-tc.dil*(tc.k-1)-1)/tc.stride + 1
			g := planeGeom{Channels: cg, Height: tc.h, Width: tc.w, KernelH: tc.k, KernelW: tc.k,
				StrideH: tc.stride, StrideW: tc.stride, PadH: tc.pad, PadW: tc.pad, DilationH: tc.dil, DilationW: tc.dil, OutH: oh, OutW: ow}
			x := randn(rng, tc.n*tc.c*tc.h*tc.w)
			w := randn(rng, tc.cout*cg*tc.k*tc.k)
			bias := randn(rng, tc.cout)
			gy := randn(rng, tc.n*tc.cout*oh*ow)
			want := make([]float32, tc.n*tc.cout*oh*ow)
			got := make([]float32, len(want))
			b := New(2)
			b.convForward(x, w, bias, want, tc.n, tc.c, tc.cout, tc.groups, g)
			packed := packTaps(w, tc.cout, cg, tc.k*tc.k)
			b.shiftConvForward(x, packed, bias, got, tc.n, tc.c, tc.cout, tc.groups, g)
			compare(t, "output", got, want)
			grads := func(shift bool) (gx, gw, gb []float32) {
				gx, gw, gb = make([]float32, len(x)), make([]float32, len(w)), make([]float32, len(bias))
				for i := range gx {
					gx[i] = 0.5 // gradients accumulate into what is there
				}
				if shift {
					b.shiftConvBackward(x, packed, gy, gx, gw, gb, false, tc.n, tc.c, tc.cout, tc.groups, g)
				} else {
					b.convBackward(x, w, gy, gx, gw, gb, false, tc.n, tc.c, tc.cout, tc.groups, g)
				}
				return
			}
			wx, ww, wb := grads(false)
			sx, sw, sb := grads(true)
			compare(t, "input gradient", sx, wx)
			compare(t, "weight gradient", sw, ww)
			compare(t, "bias gradient", sb, wb)
			// Overwriting a garbage-filled input gradient gives the same
			// result as adding into zeros.
			for _, shift := range []bool{false, true} {
				gx := make([]float32, len(x))
				for i := range gx {
					gx[i] = float32(math.NaN())
				}
				if shift {
					b.shiftConvBackward(x, packed, gy, gx, nil, nil, true, tc.n, tc.c, tc.cout, tc.groups, g)
				} else {
					b.convBackward(x, w, gy, gx, nil, nil, true, tc.n, tc.c, tc.cout, tc.groups, g)
				}
				for i := range gx {
					gx[i] += 0.5
				}
				compare(t, fmt.Sprint("overwritten input gradient, shift=", shift), gx, wx)
			}
		})
	}
}

func randn(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i, v := range want {
		if d := math.Abs(float64(got[i] - v)); d > 1e-4*max(1, math.Abs(float64(v))) {
			t.Fatalf("%s element %d: shifted GEMM %v, im2col %v", what, i, got[i], v)
		}
	}
}

func TestUseShiftConv(t *testing.T) {
	probe := planeGeom{Channels: 16, Height: 64, Width: 64, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, OutH: 64, OutW: 64}
	if !useShiftConv(probe) {
		t.Error("a 3×3 conv on a 64² map with 16 channels should take the shifted path")
	}
	down := probe
	down.StrideH, down.StrideW, down.OutH, down.OutW = 2, 2, 32, 32
	small := probe
	small.Height, small.Width, small.OutH, small.OutW = 8, 8, 8, 8
	pointwise := probe
	pointwise.KernelH, pointwise.KernelW, pointwise.PadH, pointwise.PadW = 1, 1, 0, 0
	rgb := probe
	rgb.Channels = 3
	for name, g := range map[string]planeGeom{"8² map": small, "1×1": pointwise, "3 channels": rgb, "stride 2": down} {
		if useShiftConv(g) {
			t.Errorf("%s should use im2col", name)
		}
	}
}
