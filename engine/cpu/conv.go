package cpu

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

// convForward computes out = conv(x, w) + bias one image and group at a
// time: im2col into a per-worker buffer, one GEMM, then the bias while the
// output block is still in cache.
func (b *Backend) convForward(x, w, bias, out []float32, n, c, cout, groups int, g planeGeom) {
	rows, cols := g.ColRows(), g.ColCols()
	coutG := cout / groups
	inPlane := c * g.Height * g.Width
	outPlane := cout * cols
	gIn := g.Channels * g.Height * g.Width
	tasks := n * groups
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
	if tasks >= b.workers {
		b.parallel(tasks, func(lo, hi int) {
			var col []float32
			if !isPointwise(g) {
				col = getBuf(rows * cols)
				defer putBuf(col)
			}
			for t := lo; t < hi; t++ {
				i, gr := t/groups, t%groups
				src := x[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
				m := src
				if col != nil {
					im2col(g, src, col)
					m = col
				}
				dst := out[i*outPlane+gr*coutG*cols : i*outPlane+(gr+1)*coutG*cols]
				sgemm(false, false, coutG, cols, rows, 1, w[gr*coutG*rows:], rows, m, cols, 0, dst, cols)
				addBias(dst, gr)
			}
		})
		return
	}
	// Few images: split each GEMM's columns across workers instead.
	var col []float32
	if !isPointwise(g) {
		col = getBuf(rows * cols)
		defer putBuf(col)
	}
	for t := 0; t < tasks; t++ {
		i, gr := t/groups, t%groups
		src := x[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
		m := src
		if col != nil {
			im2col(g, src, col)
			m = col
		}
		dst := out[i*outPlane+gr*coutG*cols : i*outPlane+(gr+1)*coutG*cols]
		wg := w[gr*coutG*rows:]
		b.parallelColumns(cols, func(c0, c1 int) {
			sgemm(false, false, coutG, c1-c0, rows, 1, wg, rows, m[c0:], cols, 0, dst[c0:], cols)
		})
		addBias(dst, gr)
	}
}

// convBackward computes the weight, bias and input gradients in one pass
// over the images: each worker takes a contiguous run of images, builds
// each image's patch matrix once for the weight gradient, and scatters the
// input gradient back with col2im. Worker 0 accumulates straight into gw and
// gb; the others into private buffers added at the end, in a fixed order so
// results do not depend on scheduling.
//
// With overwrite, gx holds garbage and is written rather than added to.
func (b *Backend) convBackward(x, w, gout, gx, gw, gb []float32, overwrite bool, n, c, cout, groups int, g planeGeom) {
	rows, cols := g.ColRows(), g.ColCols()
	coutG := cout / groups
	inPlane := c * g.Height * g.Width
	outPlane := cout * cols
	gIn := g.Channels * g.Height * g.Width
	pointwise := isPointwise(g)
	tasks := n * groups
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
			var col, dcol []float32
			if !pointwise {
				if gw != nil {
					col = getBuf(rows * cols)
				}
				if gx != nil {
					dcol = getBuf(rows * cols)
				}
			}
			for t := wk * per; t < min(tasks, (wk+1)*per); t++ {
				i, gr := t/groups, t%groups
				gy := gout[i*outPlane+gr*coutG*cols : i*outPlane+(gr+1)*coutG*cols]
				if myB != nil {
					for co := 0; co < coutG; co++ {
						var s float32
						for _, v := range gy[co*cols : (co+1)*cols] {
							s += v
						}
						myB[gr*coutG+co] += s
					}
				}
				if myW != nil {
					m := x[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
					if !pointwise {
						im2col(g, m, col)
						m = col
					}
					sgemm(false, true, coutG, rows, cols, 1, gy, cols, m, cols, 1, myW[gr*coutG*rows:], rows)
				}
				if gx != nil {
					dst := gx[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
					beta := float32(1)
					if overwrite {
						beta = 0
					}
					if pointwise {
						sgemm(true, false, rows, cols, coutG, 1, w[gr*coutG*rows:], rows, gy, cols, beta, dst, cols)
						continue
					}
					sgemm(true, false, rows, cols, coutG, 1, w[gr*coutG*rows:], rows, gy, cols, 0, dcol, cols)
					if overwrite {
						clear(dst)
					}
					col2im(g, dcol, dst)
				}
			}
			putBuf(col)
			putBuf(dcol)
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

// validRange returns the output columns [lo, hi) whose input column
// ox·stride+off lies inside [0, width).
func validRange(outW, stride, off, width int) (int, int) {
	lo := 0
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	hi := outW
	if last := width - 1 - off; last < 0 {
		hi = 0
	} else if m := last/stride + 1; m < hi {
		hi = m
	}
	return min(lo, hi), hi
}

// im2col writes the patch matrix (ColRows × ColCols) of one image group
// (CHW) into col. Each patch row is built from the valid column range of
// the input row, so the inner loops carry no bounds tests.
func im2col(g planeGeom, image, col []float32) {
	ohw := g.OutH * g.OutW
	row := 0
	for c := 0; c < g.Channels; c++ {
		plane := image[c*g.Height*g.Width : (c+1)*g.Height*g.Width]
		for ky := 0; ky < g.KernelH; ky++ {
			offY := ky*g.DilationH - g.PadH
			for kx := 0; kx < g.KernelW; kx++ {
				dst := col[row*ohw : (row+1)*ohw]
				row++
				offX := kx*g.DilationW - g.PadW
				lo, hi := validRange(g.OutW, g.StrideW, offX, g.Width)
				for oy := 0; oy < g.OutH; oy++ {
					d := dst[oy*g.OutW : (oy+1)*g.OutW]
					iy := oy*g.StrideH + offY
					if iy < 0 || iy >= g.Height {
						clear(d)
						continue
					}
					clear(d[:lo])
					clear(d[hi:])
					if lo >= hi {
						// This kernel column falls in the padding for every output.
						continue
					}
					src := plane[iy*g.Width : (iy+1)*g.Width]
					switch g.StrideW {
					case 1:
						copy(d[lo:hi], src[lo+offX:hi+offX])
					case 2:
						s := src[2*lo+offX:]
						dd := d[lo:hi]
						_ = s[2*(len(dd)-1)]
						for j := range dd {
							dd[j] = s[2*j]
						}
					default:
						for ox := lo; ox < hi; ox++ {
							d[ox] = src[ox*g.StrideW+offX]
						}
					}
				}
			}
		}
	}
}

// col2im adds the patch matrix col back into image (CHW), the adjoint of im2col.
func col2im(g planeGeom, col, image []float32) {
	ohw := g.OutH * g.OutW
	row := 0
	for c := 0; c < g.Channels; c++ {
		plane := image[c*g.Height*g.Width : (c+1)*g.Height*g.Width]
		for ky := 0; ky < g.KernelH; ky++ {
			offY := ky*g.DilationH - g.PadH
			for kx := 0; kx < g.KernelW; kx++ {
				src := col[row*ohw : (row+1)*ohw]
				row++
				offX := kx*g.DilationW - g.PadW
				lo, hi := validRange(g.OutW, g.StrideW, offX, g.Width)
				if lo >= hi {
					continue
				}
				for oy := 0; oy < g.OutH; oy++ {
					iy := oy*g.StrideH + offY
					if iy < 0 || iy >= g.Height {
						continue
					}
					dst := plane[iy*g.Width : (iy+1)*g.Width]
					s := src[oy*g.OutW+lo : oy*g.OutW+hi]
					switch g.StrideW {
					case 1:
						d := dst[lo+offX : hi+offX]
						d = d[:len(s)]
						for j, v := range s {
							d[j] += v
						}
					case 2:
						d := dst[2*lo+offX:]
						_ = d[2*(len(s)-1)]
						for j, v := range s {
							d[2*j] += v
						}
					default:
						for j, v := range s {
							dst[(lo+j)*g.StrideW+offX] += v
						}
					}
				}
			}
		}
	}
}
