package engine

import (
	"github.com/gidedge/gidedge/engine/backend"
)

// ConvOptions configures Conv2d. Zero values mean stride 1, no padding,
// dilation 1 and one group.
type ConvOptions struct {
	Stride   int
	Pad      int
	Dilation int
	Groups   int
}

func (o ConvOptions) norm() ConvOptions {
	if o.Stride == 0 {
		o.Stride = 1
	}
	if o.Dilation == 0 {
		o.Dilation = 1
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	return o
}

// ConvOutSize is the output length of a convolution along one axis.
func ConvOutSize(in, kernel, stride, pad, dilation int) int {
	return (in+2*pad-dilation*(kernel-1)-1)/stride + 1
}

// Conv2d convolves x [N, C, H, W] with w [Cout, C/groups, KH, KW] and adds
// bias [Cout] when it is not nil. The result is [N, Cout, OH, OW].
func Conv2d(x, w, bias *Tensor, opt ConvOptions) *Tensor {
	o := opt.norm()
	check(x.Rank() == 4 && w.Rank() == 4, "Conv2d", "input and weight must be 4-D", nil, x, w)
	n, c, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	cout, cg, kh, kw := w.shape[0], w.shape[1], w.shape[2], w.shape[3]
	check(o.Groups > 0 && c%o.Groups == 0 && cout%o.Groups == 0, "Conv2d", "channels %d and %d not divisible by groups %d", []any{c, cout, o.Groups}, x, w)
	check(cg == c/o.Groups, "Conv2d", "weight has %d input channels per group, input gives %d", []any{cg, c / o.Groups}, x, w)
	if bias != nil {
		check(bias.Rank() == 1 && bias.shape[0] == cout, "Conv2d", "bias must be [%d]", []any{cout}, w, bias)
	}
	oh := ConvOutSize(h, kh, o.Stride, o.Pad, o.Dilation)
	ow := ConvOutSize(wd, kw, o.Stride, o.Pad, o.Dilation)
	check(oh > 0 && ow > 0, "Conv2d", "output would be empty (%dx%d)", []any{oh, ow}, x, w)
	g := backend.LegacyConvGeometry{
		Channels: cg, Height: h, Width: wd, KernelH: kh, KernelW: kw,
		StrideH: o.Stride, StrideW: o.Stride, PadH: o.Pad, PadW: o.Pad,
		DilationH: o.Dilation, DilationW: o.Dilation, OutH: oh, OutW: ow,
	}
	out := newResultNoZero([]int{n, cout, oh, ow})
	var biasData []float32
	if bias != nil {
		biasData = bias.data
	}
	depthwise := o.Groups == c && cout == c && cg == 1 && be().Supports(backend.CapDepthwise)
	shift := !depthwise && useShiftConv(g)
	var packed []float32 // shifted-GEMM weights, kept for the backward pass
	switch {
	case depthwise:
		depthwiseForward(x.data, w.data, out.data, n, c, g)
		if bias != nil {
			addChannelBias(out.data, biasData, n, cout, oh*ow)
		}
	case shift:
		packed = shiftConvForward(x.data, w.data, biasData, out.data, n, c, cout, o.Groups, g)
	default:
		convForward(x.data, w.data, biasData, out.data, n, c, cout, o.Groups, g)
	}
	record(out, "Conv2d", func(out *Tensor) {
		var gx, gw, gb []float32
		overwrite := false
		if x.requiresGrad {
			gx, overwrite = x.gradSink()
		}
		if w.requiresGrad {
			gw = w.ensureGrad()
		}
		if bias != nil && bias.requiresGrad {
			gb = bias.ensureGrad()
		}
		if depthwise {
			if gb != nil {
				biasGrad(out.grad, gb, n, cout, oh*ow)
			}
			if overwrite {
				clear(gx)
			}
			depthwiseBackward(x.data, w.data, out.grad, gx, gw, n, c, g)
			return
		}
		if shift {
			shiftConvBackward(x.data, packed, out.grad, gx, gw, gb, overwrite, n, c, cout, o.Groups, g)
			return
		}
		convBackward(x.data, w.data, out.grad, gx, gw, gb, overwrite, n, c, cout, o.Groups, g)
	}, withOptional([]*Tensor{x, w}, bias)...)
	if packed != nil {
		if out.node != nil {
			out.node.release = func() { putBuf(packed) }
		} else {
			putBuf(packed)
		}
	}
	return out
}

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

func addChannelBias(out, bias []float32, n, c, hw int) {
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			b := bias[ch]
			o := out[(i*c+ch)*hw : (i*c+ch+1)*hw]
			for k := range o {
				o[k] += b
			}
		}
	}
}

// isPointwise reports a 1×1, stride-1, unpadded conv whose im2col matrix is
// the input itself.
func isPointwise(g backend.LegacyConvGeometry) bool {
	return g.KernelH == 1 && g.KernelW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0
}

// convForward computes out = conv(x, w) + bias one image and group at a
// time: im2col into a per-worker buffer, one GEMM, then the bias while the
// output block is still in cache.
func convForward(x, w, bias, out []float32, n, c, cout, groups int, g backend.LegacyConvGeometry) {
	b := be()
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
	if tasks >= b.Workers() {
		b.Parallel(tasks, func(lo, hi int) {
			var col []float32
			if !isPointwise(g) {
				col = getBufNoZero(rows * cols)
				defer putBuf(col)
			}
			for t := lo; t < hi; t++ {
				i, gr := t/groups, t%groups
				src := x[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
				m := src
				if col != nil {
					b.Im2Col(g, src, col)
					m = col
				}
				dst := out[i*outPlane+gr*coutG*cols : i*outPlane+(gr+1)*coutG*cols]
				b.Gemm(false, false, coutG, cols, rows, 1, w[gr*coutG*rows:], rows, m, cols, 0, dst, cols)
				addBias(dst, gr)
			}
		})
		return
	}
	// Few images: split each GEMM's columns across workers instead.
	var col []float32
	if !isPointwise(g) {
		col = getBufNoZero(rows * cols)
		defer putBuf(col)
	}
	for t := 0; t < tasks; t++ {
		i, gr := t/groups, t%groups
		src := x[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
		m := src
		if col != nil {
			b.Im2Col(g, src, col)
			m = col
		}
		dst := out[i*outPlane+gr*coutG*cols : i*outPlane+(gr+1)*coutG*cols]
		wg := w[gr*coutG*rows:]
		parallelColumns(b, cols, func(c0, c1 int) {
			b.Gemm(false, false, coutG, c1-c0, rows, 1, wg, rows, m[c0:], cols, 0, dst[c0:], cols)
		})
		addBias(dst, gr)
	}
}

// parallelColumns splits [0, cols) into chunks of at least 64 columns.
func parallelColumns(b backend.Legacy, cols int, fn func(c0, c1 int)) {
	chunks := min(b.Workers(), max(1, cols/64))
	per := (cols + chunks - 1) / chunks
	b.Parallel(chunks, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			c0 := k * per
			c1 := min(cols, c0+per)
			if c0 < c1 {
				fn(c0, c1)
			}
		}
	})
}

// convBackward computes the weight, bias and input gradients in one pass
// over the images: each worker takes a contiguous run of images, builds
// each image's patch matrix once for the weight gradient, and scatters the
// input gradient back with col2im. Worker 0 accumulates straight into gw and
// gb; the others into private buffers added at the end, in a fixed order so
// results do not depend on scheduling.
//
// With overwrite, gx holds garbage and is written rather than added to.
func convBackward(x, w, gout, gx, gw, gb []float32, overwrite bool, n, c, cout, groups int, g backend.LegacyConvGeometry) {
	b := be()
	rows, cols := g.ColRows(), g.ColCols()
	coutG := cout / groups
	inPlane := c * g.Height * g.Width
	outPlane := cout * cols
	gIn := g.Channels * g.Height * g.Width
	pointwise := isPointwise(g)
	tasks := n * groups
	workers := max(1, min(b.Workers(), tasks))
	per := (tasks + workers - 1) / workers
	workers = (tasks + per - 1) / per
	accW := make([][]float32, workers)
	accB := make([][]float32, workers)
	b.Parallel(workers, func(lo, hi int) {
		for wk := lo; wk < hi; wk++ {
			myW, myB := gw, gb
			if wk > 0 {
				if gw != nil {
					myW = getBuf(len(gw))
					accW[wk] = myW
				}
				if gb != nil {
					myB = getBuf(len(gb))
					accB[wk] = myB
				}
			}
			var col, dcol []float32
			if !pointwise {
				if gw != nil {
					col = getBufNoZero(rows * cols)
				}
				if gx != nil {
					dcol = getBufNoZero(rows * cols)
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
						b.Im2Col(g, m, col)
						m = col
					}
					b.Gemm(false, true, coutG, rows, cols, 1, gy, cols, m, cols, 1, myW[gr*coutG*rows:], rows)
				}
				if gx != nil {
					dst := gx[i*inPlane+gr*gIn : i*inPlane+(gr+1)*gIn]
					beta := float32(1)
					if overwrite {
						beta = 0
					}
					if pointwise {
						b.Gemm(true, false, rows, cols, coutG, 1, w[gr*coutG*rows:], rows, gy, cols, beta, dst, cols)
						continue
					}
					b.Gemm(true, false, rows, cols, coutG, 1, w[gr*coutG*rows:], rows, gy, cols, 0, dcol, cols)
					if overwrite {
						clear(dst)
					}
					b.Col2Im(g, dcol, dst)
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

// depthwiseForward convolves each channel with its own KH×KW filter.
func depthwiseForward(x, w, out []float32, n, c int, g backend.LegacyConvGeometry) {
	hw := g.Height * g.Width
	ohw := g.OutH * g.OutW
	kk := g.KernelH * g.KernelW
	be().Parallel(n*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			ch := t % c
			src := x[t*hw : (t+1)*hw]
			dst := out[t*ohw : (t+1)*ohw]
			filt := w[ch*kk : (ch+1)*kk]
			clear(dst)
			for ky := 0; ky < g.KernelH; ky++ {
				for kx := 0; kx < g.KernelW; kx++ {
					wv := filt[ky*g.KernelW+kx]
					offY := ky*g.DilationH - g.PadH
					offX := kx*g.DilationW - g.PadW
					for oy := 0; oy < g.OutH; oy++ {
						iy := oy*g.StrideH + offY
						if iy < 0 || iy >= g.Height {
							continue
						}
						row := src[iy*g.Width : (iy+1)*g.Width]
						d := dst[oy*g.OutW : (oy+1)*g.OutW]
						ox0, ox1 := validRange(g.OutW, g.StrideW, offX, g.Width)
						if g.StrideW == 1 {
							s := row[ox0+offX : ox1+offX]
							dd := d[ox0:ox1]
							for k, v := range s {
								dd[k] += wv * v
							}
							continue
						}
						for ox := ox0; ox < ox1; ox++ {
							d[ox] += wv * row[ox*g.StrideW+offX]
						}
					}
				}
			}
		}
	})
}

// validRange returns the output columns [ox0, ox1) whose input column
// ox·stride+off lies inside [0, width).
func validRange(outW, stride, off, width int) (int, int) {
	ox0 := 0
	if off < 0 {
		ox0 = (-off + stride - 1) / stride
	}
	ox1 := outW
	if last := (width - 1 - off); last < 0 {
		ox1 = 0
	} else if m := last/stride + 1; m < ox1 {
		ox1 = m
	}
	if ox0 > ox1 {
		ox0 = ox1
	}
	return ox0, ox1
}

func depthwiseBackward(x, w, gout, gx, gw []float32, n, c int, g backend.LegacyConvGeometry) {
	hw := g.Height * g.Width
	ohw := g.OutH * g.OutW
	kk := g.KernelH * g.KernelW
	// Parallel over channels so each worker owns its filter's gradient.
	be().Parallel(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			filt := w[ch*kk : (ch+1)*kk]
			for i := 0; i < n; i++ {
				t := i*c + ch
				src := x[t*hw : (t+1)*hw]
				gsrc := gx
				if gx != nil {
					gsrc = gx[t*hw : (t+1)*hw]
				}
				gd := gout[t*ohw : (t+1)*ohw]
				for ky := 0; ky < g.KernelH; ky++ {
					for kx := 0; kx < g.KernelW; kx++ {
						k := ky*g.KernelW + kx
						wv := filt[k]
						offY := ky*g.DilationH - g.PadH
						offX := kx*g.DilationW - g.PadW
						ox0, ox1 := validRange(g.OutW, g.StrideW, offX, g.Width)
						var acc float32
						for oy := 0; oy < g.OutH; oy++ {
							iy := oy*g.StrideH + offY
							if iy < 0 || iy >= g.Height {
								continue
							}
							row := src[iy*g.Width : (iy+1)*g.Width]
							d := gd[oy*g.OutW : (oy+1)*g.OutW]
							for ox := ox0; ox < ox1; ox++ {
								ix := ox*g.StrideW + offX
								acc += d[ox] * row[ix]
								if gsrc != nil {
									gsrc[iy*g.Width+ix] += d[ox] * wv
								}
							}
						}
						if gw != nil {
							gw[ch*kk+k] += acc
						}
					}
				}
			}
		}
	})
}
