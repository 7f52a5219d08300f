package cpu

/*
#include "loops.h"
*/
import "C"

import "github.com/gidedge/gidedge/engine/backend"

// Winograd F(2×2, 3×3) convolution for dense 3×3 stride-1 layers (the
// teacher's backbone, FPN and head towers): each 2×2 output tile costs 16
// multiplications per channel pair instead of 36, so the GEMMs shrink
// 2.25× for the price of transforming inputs and outputs (loops.c). The
// input gradient of such a layer is the same convolution of the output
// gradient with the flipped, transposed filters, so it takes this path
// too; the weight gradient stays with the shifted GEMMs.
//
// The transforms add and subtract (and halve) values, so results differ
// from a direct convolution by rounding only, within the conformance
// suite's tolerances, and a NaN stays within the outputs whose window
// holds it. An infinite input can come out as NaN where the direct sum
// would give ±Inf (∞ − ∞ inside the transforms).

// minWinogradTiles is the fewest tiles one block of GEMMs takes: images
// are grouped until their tiles reach it (small maps have few tiles).
const minWinogradTiles = 96

// useWinograd reports a layer the Winograd path takes: a dense (one group)
// 3×3 convolution with stride 1, dilation 1 and padding up to 2 on both
// axes (so that its input gradient is a convolution of the same kind),
// with enough channels on both sides for the GEMMs to dominate and a map
// of at least minWinogradOutputs positions. On smaller maps the partial
// tiles waste much of the work and im2col, with the patches of several
// images in one GEMM, is faster (5×5 maps: about 1.6× at 128 and 256
// channels; 10×10 about even at 128 channels, Winograd 1.5× faster at 160).
func useWinograd(g backend.ConvGeometry) bool {
	return g.Groups == 1 && g.KernelH == 3 && g.KernelW == 3 && g.StrideH == 1 && g.StrideW == 1 &&
		g.DilationH == 1 && g.DilationW == 1 && g.PadH <= 2 && g.PadW <= 2 && g.C >= 8 && g.Cout >= 8 &&
		g.OutH*g.OutW >= minWinogradOutputs && g.H*g.W >= minWinogradOutputs
}

// minWinogradOutputs is the smallest map (output positions, and input
// positions for the input gradient's convolution) the Winograd path takes.
const minWinogradOutputs = 64

// winogradWeights returns the transformed filters [16][outC][inC] of w
// (a pooled buffer the caller releases); flip takes the flipped transposes
// of a forward weight [inC][outC][3][3], for the input gradient.
func (b *Backend) winogradWeights(w []float32, outC, inC int, flip bool) []float32 {
	u := getBuf(16 * outC * inC)
	b.parallel(outC, func(lo, hi int) {
		C.gd_wino_weights(ptr(w), ptr(u), C.long(outC), C.long(inC), cbool(flip), C.long(lo), C.long(hi))
	})
	return u
}

// winogradConv computes y (+)= conv3×3(x, ·) + bias for x [n, inC, h, w]
// and y [n, outC, oh, ow] from the transformed filters u, with paddings ph
// and pw. Workers take runs of images; each groups its images into blocks
// of at least minWinogradTiles tiles and runs the 16 GEMMs per block.
func (b *Backend) winogradConv(x, u, bias, y []float32, n, inC, outC, h, w, ph, pw, oh, ow int, accumulate bool) {
	th, tw := (oh+1)/2, (ow+1)/2
	tiles := th * (tw + 1) // loops.c: one spare tile per tile row
	perBlock := max(1, (minWinogradTiles+tiles-1)/tiles)
	inPlane, outPlane := inC*h*w, outC*oh*ow
	b.parallel(n, func(lo, hi int) {
		nb := min(perBlock, hi-lo)
		v := getBuf(16 * inC * nb * tiles)
		m := getBuf(16 * outC * nb * tiles)
		scratch := getZeroed(int(C.gd_wino_input_scratch(C.long(th), C.long(tw))))
		for i0 := lo; i0 < hi; i0 += nb {
			k := min(nb, hi-i0)
			count := k * tiles
			for i := range k {
				C.gd_wino_input(ptr(x[(i0+i)*inPlane:]), ptr(v), C.long(inC), C.long(h), C.long(w), C.long(ph), C.long(pw),
					C.long(th), C.long(tw), C.long(count), C.long(i*tiles), ptr(scratch))
			}
			for xi := range 16 {
				sgemm(false, false, outC, count, inC, 1, u[xi*outC*inC:], inC, v[xi*inC*count:], count, 0, m[xi*outC*count:], count)
			}
			for i := range k {
				C.gd_wino_output(ptr(m), ptr(y[(i0+i)*outPlane:]), ptr(bias), C.long(outC), C.long(oh), C.long(ow),
					C.long(th), C.long(tw), C.long(count), C.long(i*tiles), cbool(accumulate))
			}
		}
		putBuf(v)
		putBuf(m)
		putBuf(scratch)
	})
}

// winogradFilterGrad computes the weight gradient gw [outC][inC][3][3]
// (added to with accumulate) of a Winograd-eligible layer from its input x
// [n, inC, h, w] and output gradient dy [n, outC, oh, ow]: per block of
// images, the input tiles (as the forward pass makes them) and the output
// gradient's tiles, and 16 GEMMs summing their products over the tiles.
// Each worker sums its images into its own 16·outC·inC products; they are
// added in worker order, then transformed back to 3×3 filters.
func (b *Backend) winogradFilterGrad(x, dy, gw []float32, accumulate bool, n, inC, outC, h, w, ph, pw, oh, ow int) {
	th, tw := (oh+1)/2, (ow+1)/2
	tiles := th * (tw + 1)
	perBlock := max(1, (minWinogradTiles+tiles-1)/tiles)
	inPlane, outPlane := inC*h*w, outC*oh*ow
	workers := max(1, min(b.workers, n))
	per := (n + workers - 1) / workers
	workers = (n + per - 1) / per
	sums := make([][]float32, workers)
	b.parallel(workers, func(lo, hi int) {
		for wk := lo; wk < hi; wk++ {
			i0, i1 := wk*per, min(n, (wk+1)*per)
			nb := min(perBlock, i1-i0)
			v := getBuf(16 * inC * nb * tiles)
			m := getBuf(16 * outC * nb * tiles)
			du := getBuf(16 * outC * inC)
			in := getZeroed(int(C.gd_wino_input_scratch(C.long(th), C.long(tw))))
			out := getZeroed(int(C.gd_wino_grad_scratch(C.long(th), C.long(tw))))
			for b0 := i0; b0 < i1; b0 += nb {
				k := min(nb, i1-b0)
				count := k * tiles
				for i := range k {
					C.gd_wino_input(ptr(x[(b0+i)*inPlane:]), ptr(v), C.long(inC), C.long(h), C.long(w), C.long(ph), C.long(pw),
						C.long(th), C.long(tw), C.long(count), C.long(i*tiles), ptr(in))
					C.gd_wino_grad_output(ptr(dy[(b0+i)*outPlane:]), ptr(m), C.long(outC), C.long(oh), C.long(ow),
						C.long(th), C.long(tw), C.long(count), C.long(i*tiles), ptr(out))
				}
				beta := float32(1)
				if b0 == i0 {
					beta = 0
				}
				for xi := range 16 {
					sgemm(false, true, outC, inC, count, 1, m[xi*outC*count:], count, v[xi*inC*count:], count, beta, du[xi*outC*inC:], inC)
				}
			}
			sums[wk] = du
			putBuf(v)
			putBuf(m)
			putBuf(in)
			putBuf(out)
		}
	})
	total := sums[0]
	for _, s := range sums[1:] {
		for k, v := range s {
			total[k] += v
		}
		putBuf(s)
	}
	b.parallel(outC, func(lo, hi int) {
		C.gd_wino_filter_grad(ptr(total), ptr(gw), C.long(outC), C.long(inC), cbool(accumulate), C.long(lo), C.long(hi))
	})
	putBuf(total)
}
