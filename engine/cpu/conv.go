package cpu

/*
#include "loops.h"
*/
import "C"

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// planeGeom describes one 2-D convolution over a single image and a single
// group: the input has Channels planes of Height×Width, the kernel is
// KernelH×KernelW, and the output is OutH×OutW.
type planeGeom struct {
	Channels, Height, Width int
	KernelH, KernelW        int
	StrideH, StrideW        int
	PadH, PadW              int
	DilationH, DilationW    int
	OutH, OutW              int
}

func newPlaneGeom(g backend.ConvGeometry) planeGeom {
	return planeGeom{
		Channels: g.C / g.Groups, Height: g.H, Width: g.W, KernelH: g.KernelH, KernelW: g.KernelW,
		StrideH: g.StrideH, StrideW: g.StrideW, PadH: g.PadH, PadW: g.PadW,
		DilationH: g.DilationH, DilationW: g.DilationW, OutH: g.OutH, OutW: g.OutW,
	}
}

// ColRows is the row count of the im2col matrix: Channels·KernelH·KernelW.
func (g planeGeom) ColRows() int { return g.Channels * g.KernelH * g.KernelW }

// ColCols is the column count of the im2col matrix: OutH·OutW.
func (g planeGeom) ColCols() int { return g.OutH * g.OutW }

// Conv2d implements backend.Backend. It picks one of three algorithms:
// direct loops for depthwise convolutions, shifted GEMMs (conv_shift.go)
// for spatial kernels on maps wide enough, and im2col + GEMM otherwise.
func (b *Backend) Conv2d(a backend.ConvArgs) {
	const k = "Conv2d"
	g := a.Geometry
	x, w, ny := ref.ConvOperands(Name, k, g, a.X, a.W)
	bias := floats(k, a.Bias, g.Cout)
	y := floats(k, a.Y, ny)
	if g.N == 0 {
		return
	}
	pg := newPlaneGeom(g)
	switch {
	case isDepthwise(g):
		b.depthwiseForward(x, w, bias, y, g.N, g.C, pg)
	case useWinograd(g):
		u := b.winogradWeights(w, g.Cout, g.C, false)
		b.winogradConv(x, u, bias, y, g.N, g.C, g.Cout, g.H, g.W, g.PadH, g.PadW, g.OutH, g.OutW, false)
		putBuf(u)
	case useShiftConv(pg):
		packed := packTaps(w, g.Cout, pg.Channels, g.KernelH*g.KernelW)
		b.shiftConvForward(x, packed, bias, y, g.N, g.C, g.Cout, g.Groups, pg)
		putBuf(packed)
	default:
		b.convForward(x, w, bias, y, g.N, g.C, g.Cout, g.Groups, pg)
	}
}

// Conv2dBackward implements backend.Backend with the forward pass's
// algorithm. The weight and bias gradients are accumulated, so they are
// cleared first when the destination is not to be added to; the input
// gradient is overwritten directly.
func (b *Backend) Conv2dBackward(a backend.ConvBackwardArgs) {
	const k = "Conv2dBackward"
	g := a.Geometry
	x, w, ny := ref.ConvOperands(Name, k, g, a.X, a.W)
	dy := floats(k, a.DY, ny)
	gx, accX := dest(k, a.DX, len(x))
	gw, accW := dest(k, a.DW, len(w))
	gb, accB := dest(k, a.DBias, g.Cout)
	if gb != nil && !accB {
		clear(gb)
	}
	overwrite := gx != nil && !accX
	pg := newPlaneGeom(g)
	if isDepthwise(g) && g.N > 0 {
		if gb != nil {
			biasGrad(dy, gb, g.N, g.Cout, g.OutH*g.OutW)
		}
		b.depthwiseBackward(x, w, dy, gx, overwrite, gw, gw != nil && !accW, g.N, g.C, pg)
		return
	}
	if useWinograd(g) && g.N > 0 {
		// The input gradient is a Winograd convolution of dy with the
		// flipped, transposed filters, padded by 2 − p; the weight gradient
		// sums tile products in the Winograd domain.
		if gx != nil {
			u := b.winogradWeights(w, g.C, g.Cout, true)
			b.winogradConv(dy, u, nil, gx, g.N, g.Cout, g.C, g.OutH, g.OutW, 2-g.PadH, 2-g.PadW, g.H, g.W, !overwrite)
			putBuf(u)
		}
		if gw != nil {
			b.winogradFilterGrad(x, dy, gw, accW, g.N, g.C, g.Cout, g.H, g.W, g.PadH, g.PadW, g.OutH, g.OutW)
		}
		if gb != nil {
			biasGrad(dy, gb, g.N, g.Cout, g.OutH*g.OutW)
		}
		return
	}
	if gw != nil && !accW {
		clear(gw)
	}
	if g.N == 0 {
		return // an empty batch: nothing flows (the weight and bias gradients were cleared)
	}
	switch {
	case useShiftConv(pg):
		packed := packTaps(w, g.Cout, pg.Channels, g.KernelH*g.KernelW)
		b.shiftConvBackward(x, packed, dy, gx, gw, gb, overwrite, g.N, g.C, g.Cout, g.Groups, pg)
		putBuf(packed)
	default:
		b.convBackward(x, w, dy, gx, gw, gb, overwrite, g.N, g.C, g.Cout, g.Groups, pg)
	}
}

// isDepthwise reports one filter per channel (Groups == C == Cout).
func isDepthwise(g backend.ConvGeometry) bool { return g.Groups == g.C && g.Cout == g.C }

// biasGrad adds the per-channel sums of gout [n, c, hw] into gb.
func biasGrad(gout, gb []float32, n, c, hw int) {
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			var s float32
			for _, v := range gout[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += v
			}
			gb[ch] += s
		}
	}
}

// isPointwise reports a 1×1, stride-1, unpadded conv whose im2col matrix is
// the input itself.
func isPointwise(g planeGeom) bool {
	return g.KernelH == 1 && g.KernelW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0
}

// minBlockColumns is the fewest GEMM columns the im2col path wants: maps
// smaller than that (the 10×10 and 5×5 levels of a detector at 160 px)
// have the patch matrices of several images side by side, so that one
// GEMM covers them all.
const minBlockColumns = 256

// imageBlock returns how many images the im2col path puts in one GEMM.
func imageBlock(g planeGeom, n int) int {
	cols := g.ColCols()
	if isPointwise(g) || cols >= minBlockColumns {
		return 1
	}
	return max(1, min(n, (minBlockColumns+cols-1)/cols))
}

// convForward computes out = conv(x, w) + bias by im2col (loops.c) and
// GEMM, one block of images (imageBlock) and group at a time, adding the
// bias while the output block is still in cache. Pointwise convolutions
// multiply the input directly.
func (b *Backend) convForward(x, w, bias, out []float32, n, c, cout, groups int, g planeGeom) {
	rows, cols := g.ColRows(), g.ColCols()
	coutG := cout / groups
	inPlane := c * g.Height * g.Width
	outPlane := cout * cols
	gIn := g.Channels * g.Height * g.Width
	cg := geom(g)
	addBias := func(dst []float32, gr int) {
		if bias == nil {
			return
		}
		for co := 0; co < coutG; co++ {
			bv := bias[gr*coutG+co]
			d := dst[co*cols : (co+1)*cols]
			for k := range d {
				d[k] += bv
			}
		}
	}
	block := imageBlock(g, n)
	blocks := (n + block - 1) / block
	tasks := blocks * groups
	if block == 1 && tasks < b.workers {
		// Few images: split each GEMM's columns across workers instead.
		var col []float32
		if !isPointwise(g) {
			col = getBuf(rows * cols)
			defer putBuf(col)
		}
		for t := 0; t < tasks; t++ {
			i, gr := t/groups, t%groups
			m := x[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
			if col != nil {
				C.gd_im2col(ptr(m), ptr(col), C.long(cols), C.long(g.Channels), cg)
				m = col
			}
			dst := out[i*outPlane+gr*coutG*cols : i*outPlane+(gr+1)*coutG*cols]
			wg := w[gr*coutG*rows:]
			b.parallelColumns(cols, func(c0, c1 int) {
				sgemm(false, false, coutG, c1-c0, rows, 1, wg, rows, m[c0:], cols, 0, dst[c0:], cols)
			})
			addBias(dst, gr)
		}
		return
	}
	b.parallel(tasks, func(lo, hi int) {
		var col, tmp []float32
		if !isPointwise(g) {
			col = getBuf(rows * block * cols)
		}
		if block > 1 {
			tmp = getBuf(coutG * block * cols)
		}
		for t := lo; t < hi; t++ {
			i0, gr := (t/groups)*block, t%groups
			nb := min(block, n-i0)
			ld := nb * cols
			m := x[i0*inPlane+gr*gIn : i0*inPlane+(gr+1)*gIn]
			if col != nil {
				for i := range nb {
					C.gd_im2col(ptr(x[(i0+i)*inPlane+gr*gIn:]), ptr(col[i*cols:]), C.long(ld), C.long(g.Channels), cg)
				}
				m = col
			}
			if nb == 1 && block == 1 {
				dst := out[i0*outPlane+gr*coutG*cols : i0*outPlane+(gr+1)*coutG*cols]
				sgemm(false, false, coutG, cols, rows, 1, w[gr*coutG*rows:], rows, m, cols, 0, dst, cols)
				addBias(dst, gr)
				continue
			}
			sgemm(false, false, coutG, ld, rows, 1, w[gr*coutG*rows:], rows, m, ld, 0, tmp, ld)
			for i := range nb {
				dst := out[(i0+i)*outPlane+gr*coutG*cols : (i0+i)*outPlane+(gr+1)*coutG*cols]
				for co := 0; co < coutG; co++ {
					copy(dst[co*cols:(co+1)*cols], tmp[co*ld+i*cols:co*ld+(i+1)*cols])
				}
				addBias(dst, gr)
			}
		}
		putBuf(col)
		putBuf(tmp)
	})
}

// convBackward computes the weight, bias and input gradients in one pass
// over the images: each worker takes a contiguous run of image blocks,
// builds each block's patch matrix once for the weight gradient, and
// scatters the input gradient back with col2im. Worker 0 accumulates
// straight into gw and gb; the others into private buffers added at the
// end, in a fixed order so results do not depend on scheduling.
//
// With overwrite, gx holds garbage and is written rather than added to.
func (b *Backend) convBackward(x, w, gout, gx, gw, gb []float32, overwrite bool, n, c, cout, groups int, g planeGeom) {
	rows, cols := g.ColRows(), g.ColCols()
	coutG := cout / groups
	inPlane := c * g.Height * g.Width
	outPlane := cout * cols
	gIn := g.Channels * g.Height * g.Width
	pointwise := isPointwise(g)
	cg := geom(g)
	block := imageBlock(g, n)
	blocks := (n + block - 1) / block
	tasks := blocks * groups
	workers := max(1, min(b.workers, tasks))
	per := (tasks + workers - 1) / workers
	workers = (tasks + per - 1) / per
	accW := make([][]float32, workers)
	accB := make([][]float32, workers)
	b.parallel(workers, func(lo, hi int) {
		for wk := lo; wk < hi; wk++ {
			myW, myB := gw, gb
			if wk > 0 {
				if gw != nil {
					myW = getZeroed(len(gw))
					accW[wk] = myW
				}
				if gb != nil {
					myB = getZeroed(len(gb))
					accB[wk] = myB
				}
			}
			var col, dcol, dyb []float32
			if !pointwise {
				if gw != nil {
					col = getBuf(rows * block * cols)
				}
				if gx != nil {
					dcol = getBuf(rows * block * cols)
				}
			}
			if block > 1 {
				dyb = getBuf(coutG * block * cols)
			}
			for t := wk * per; t < min(tasks, (wk+1)*per); t++ {
				i0, gr := (t/groups)*block, t%groups
				nb := min(block, n-i0)
				ld := nb * cols
				gy := gout[i0*outPlane+gr*coutG*cols : i0*outPlane+(gr+1)*coutG*cols]
				if block > 1 {
					// The block's output gradient side by side, as the
					// forward pass's GEMM produced it.
					for i := range nb {
						src := gout[(i0+i)*outPlane+gr*coutG*cols:]
						for co := 0; co < coutG; co++ {
							copy(dyb[co*ld+i*cols:co*ld+(i+1)*cols], src[co*cols:(co+1)*cols])
						}
					}
					gy = dyb
				}
				if myB != nil {
					for co := 0; co < coutG; co++ {
						var s float32
						for _, v := range gy[co*ld : (co+1)*ld] {
							s += v
						}
						myB[gr*coutG+co] += s
					}
				}
				if myW != nil {
					m := x[i0*inPlane+gr*gIn : i0*inPlane+(gr+1)*gIn]
					if !pointwise {
						for i := range nb {
							C.gd_im2col(ptr(x[(i0+i)*inPlane+gr*gIn:]), ptr(col[i*cols:]), C.long(ld), C.long(g.Channels), cg)
						}
						m = col
					}
					sgemm(false, true, coutG, rows, ld, 1, gy, ld, m, ld, 1, myW[gr*coutG*rows:], rows)
				}
				if gx != nil {
					if pointwise {
						dst := gx[i0*inPlane+gr*gIn : i0*inPlane+(gr+1)*gIn]
						beta := float32(1)
						if overwrite {
							beta = 0
						}
						sgemm(true, false, rows, cols, coutG, 1, w[gr*coutG*rows:], rows, gy, cols, beta, dst, cols)
						continue
					}
					sgemm(true, false, rows, ld, coutG, 1, w[gr*coutG*rows:], rows, gy, ld, 0, dcol, ld)
					for i := range nb {
						dst := gx[(i0+i)*inPlane+gr*gIn : (i0+i)*inPlane+(gr+1)*gIn]
						if overwrite {
							clear(dst)
						}
						C.gd_col2im(ptr(dcol[i*cols:]), ptr(dst), C.long(ld), C.long(g.Channels), cg)
					}
				}
			}
			putBuf(col)
			putBuf(dcol)
			putBuf(dyb)
		}
	})
	for wk := 1; wk < workers; wk++ {
		for _, pair := range [][2][]float32{{gw, accW[wk]}, {gb, accB[wk]}} {
			dst, acc := pair[0], pair[1]
			if acc == nil {
				continue
			}
			for k, v := range acc {
				dst[k] += v
			}
			putBuf(acc)
		}
	}
}



