package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
)

// TestShiftConvMatchesIm2Col runs both convolution algorithms on the same
// stride-1 problems and compares the output and all three gradients.
func TestShiftConvMatchesIm2Col(t *testing.T) {
	cases := []struct{ n, c, h, w, cout, k, pad, dil, groups int }{
		{2, 3, 17, 18, 4, 3, 1, 1, 1},
		{3, 4, 16, 20, 6, 3, 1, 1, 2},
		{1, 2, 19, 22, 3, 3, 0, 1, 1},
		{2, 3, 20, 24, 5, 3, 2, 2, 1},
		{1, 4, 18, 19, 4, 5, 2, 1, 1},
		{2, 6, 9, 26, 6, 3, 1, 1, 3},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.h), uint64(tc.w)))
			cg := tc.c / tc.groups
			oh := ConvOutSize(tc.h, tc.k, 1, tc.pad, tc.dil)
			ow := ConvOutSize(tc.w, tc.k, 1, tc.pad, tc.dil)
			g := backend.ConvGeometry{Channels: cg, Height: tc.h, Width: tc.w, KernelH: tc.k, KernelW: tc.k,
				StrideH: 1, StrideW: 1, PadH: tc.pad, PadW: tc.pad, DilationH: tc.dil, DilationW: tc.dil, OutH: oh, OutW: ow}
			if !useShiftConv(g) {
				t.Fatalf("case does not take the shifted path: %+v", g)
			}
			x := RandN(rng, 1, tc.n, tc.c, tc.h, tc.w).data
			w := RandN(rng, 1, tc.cout, cg, tc.k, tc.k).data
			bias := RandN(rng, 1, tc.cout).data
			gy := RandN(rng, 1, tc.n, tc.cout, oh, ow).data
			want := make([]float32, tc.n*tc.cout*oh*ow)
			got := make([]float32, len(want))
			convForward(x, w, bias, want, tc.n, tc.c, tc.cout, tc.groups, g)
			packed := shiftConvForward(x, w, bias, got, tc.n, tc.c, tc.cout, tc.groups, g)
			compare(t, "output", got, want)
			grads := func(shift bool) (gx, gw, gb []float32) {
				gx, gw, gb = make([]float32, len(x)), make([]float32, len(w)), make([]float32, len(bias))
				for i := range gx {
					gx[i] = 0.5 // gradients accumulate into what is there
				}
				if shift {
					shiftConvBackward(x, packed, gy, gx, gw, gb, tc.n, tc.c, tc.cout, tc.groups, g)
				} else {
					convBackward(x, w, gy, gx, gw, gb, tc.n, tc.c, tc.cout, tc.groups, g)
				}
				return
			}
			wx, ww, wb := grads(false)
			sx, sw, sb := grads(true)
			compare(t, "input gradient", sx, wx)
			compare(t, "weight gradient", sw, ww)
			compare(t, "bias gradient", sb, wb)
		})
	}
}

func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i, v := range want {
		if d := math.Abs(float64(got[i] - v)); d > 1e-4*max(1, math.Abs(float64(v))) {
			t.Fatalf("%s element %d: shifted GEMM %v, im2col %v", what, i, got[i], v)
		}
	}
}
