package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
)

// TestWinogradMatchesIm2Col runs the Winograd forward pass, input gradient
// and weight gradient on problems of every tile shape (odd sizes, one
// tile, paddings 0–2, image blocks) and compares them with im2col + GEMM.
func TestWinogradMatchesIm2Col(t *testing.T) {
	cases := []struct{ n, c, h, w, cout, ph, pw int }{
		{2, 8, 9, 9, 10, 1, 1},
		{3, 9, 6, 5, 8, 0, 0},
		{1, 12, 5, 11, 9, 2, 2},
		{2, 8, 6, 8, 8, 1, 2},
		{7, 8, 3, 2, 11, 1, 1},
		{5, 16, 1, 1, 8, 1, 1},
		{2, 8, 20, 21, 12, 1, 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.h), uint64(tc.c)))
			g := backend.ConvGeometry{N: tc.n, C: tc.c, H: tc.h, W: tc.w, Cout: tc.cout, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1,
				PadH: tc.ph, PadW: tc.pw, DilationH: 1, DilationW: 1, Groups: 1, OutH: tc.h + 2*tc.ph - 2, OutW: tc.w + 2*tc.pw - 2}
			pg := newPlaneGeom(g)
			x, w, bias := randn(rng, tc.n*tc.c*tc.h*tc.w), randn(rng, tc.cout*tc.c*9), randn(rng, tc.cout)
			dy := randn(rng, tc.n*tc.cout*g.OutH*g.OutW)
			for _, workers := range []int{1, 2, 3} {
				b := New(workers)
				want := make([]float32, len(dy))
				b.convForward(x, w, bias, want, tc.n, tc.c, tc.cout, 1, pg)
				got := make([]float32, len(dy))
				u := b.winogradWeights(w, tc.cout, tc.c, false)
				b.winogradConv(x, u, bias, got, tc.n, tc.c, tc.cout, tc.h, tc.w, tc.ph, tc.pw, g.OutH, g.OutW, false)
				compare(t, "output", got, want)

				wantX, wantW := make([]float32, len(x)), make([]float32, len(w))
				b.convBackward(x, w, dy, wantX, wantW, nil, true, tc.n, tc.c, tc.cout, 1, pg)
				gotX := make([]float32, len(x))
				for i := range gotX {
					gotX[i] = 0.25 // accumulated into below, then the offset removed
				}
				uf := b.winogradWeights(w, tc.c, tc.cout, true)
				b.winogradConv(dy, uf, nil, gotX, tc.n, tc.cout, tc.c, g.OutH, g.OutW, 2-tc.ph, 2-tc.pw, tc.h, tc.w, true)
				for i := range gotX {
					gotX[i] -= 0.25
				}
				compare(t, "input gradient", gotX, wantX)
				gotW := make([]float32, len(w))
				b.winogradFilterGrad(x, dy, gotW, false, tc.n, tc.c, tc.cout, tc.h, tc.w, tc.ph, tc.pw, g.OutH, g.OutW)
				compare(t, "weight gradient", gotW, wantW)
				putBuf(u)
				putBuf(uf)
			}
		})
	}
}

func TestUseWinograd(t *testing.T) {
	head := backend.ConvGeometry{N: 8, C: 128, H: 20, W: 20, Cout: 128, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1,
		PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1, OutH: 20, OutW: 20}
	if !useWinograd(head) {
		t.Error("a 128→128 3×3 conv on a 20² map should take the Winograd path")
	}
	small, strided, grouped, dilated, thin := head, head, head, head, head
	small.H, small.W, small.OutH, small.OutW = 5, 5, 5, 5
	strided.StrideH, strided.StrideW, strided.OutH, strided.OutW = 2, 2, 10, 10
	grouped.Groups = 2
	dilated.DilationH, dilated.DilationW, dilated.PadH, dilated.PadW = 2, 2, 2, 2
	thin.C = 3
	for name, g := range map[string]backend.ConvGeometry{"5² map": small, "stride 2": strided, "2 groups": grouped, "dilation 2": dilated, "3 channels": thin} {
		if useWinograd(g) {
			t.Errorf("%s should not take the Winograd path", name)
		}
	}
}
