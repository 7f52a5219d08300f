package engine

import "github.com/gidedge/gidedge/engine/backend"

// Shifted-GEMM convolution for stride-1 kernels on wide maps.
//
// im2col copies every input value KH·KW times and col2im scatters it back;
// on this engine's probe that copying cost as much as a third of a training
// step. For stride 1 there is a cheaper formulation: store the image once
// with its zero padding (Hp×Wp per channel) and compute the output on the
// padded width, OH×Wp, discarding the last Wp−OW columns of each row. The
// patch row of tap (ky, kx) is then the padded image itself, shifted by
// ky·d·Wp + kx·d, with the channel planes Hp·Wp apart: a plain strided GEMM
// operand. The convolution becomes one GEMM per tap, accumulated:
//
//	Y[co, n]     += W_t[co, c] · Xp[c, n + shift_t]
//	dW_t[co, c]  += dY[co, n] · Xp[c, n + shift_t]
//	dXp[c, n + shift_t] += W_t[co, c] · dY[co, n]
//
// where W_t is the weight of tap t repacked as [Cout, C]. A valid output
// column never reads past the end of its padded row (ox + (KW−1)·d ≤ Wp−1),
// so only discarded columns wrap into the next row; their gradient is kept
// at zero, which makes the backward pass exact.

// useShiftConv reports whether g should take the shifted-GEMM path: stride
// 1, a spatial kernel, and a map wide enough that the discarded columns
// cost little (at most a quarter more columns than the output has).
func useShiftConv(g backend.ConvGeometry) bool {
	if g.StrideH != 1 || g.StrideW != 1 || g.KernelH*g.KernelW == 1 || g.OutW < 16 {
		return false
	}
	return 4*(g.Width+2*g.PadW) <= 5*g.OutW
}

// shiftGeom holds the padded layout of one image group.
type shiftGeom struct {
	g           backend.ConvGeometry
	hp, wp      int // padded height and width
	plane       int // hp·wp
	cols        int // OH·wp: the output on the padded width
	bufLen      int // channels·plane plus the tail the last taps read
	shifts      []int
	taps, outHW int
}

func newShiftGeom(g backend.ConvGeometry) shiftGeom {
	s := shiftGeom{g: g, hp: g.Height + 2*g.PadH, wp: g.Width + 2*g.PadW, taps: g.KernelH * g.KernelW, outHW: g.OutH * g.OutW}
	s.plane = s.hp * s.wp
	s.cols = g.OutH * s.wp
	s.bufLen = g.Channels*s.plane + (g.KernelW-1)*g.DilationW
	for ky := 0; ky < g.KernelH; ky++ {
		for kx := 0; kx < g.KernelW; kx++ {
			s.shifts = append(s.shifts, ky*g.DilationH*s.wp+kx*g.DilationW)
		}
	}
	return s
}

// pad copies image (C×H×W) into the interior of buf; the border and tail of
// buf must already be zero and stay so.
func (s *shiftGeom) pad(buf, image []float32) {
	g := s.g
	for c := 0; c < g.Channels; c++ {
		for y := 0; y < g.Height; y++ {
			at := c*s.plane + (y+g.PadH)*s.wp + g.PadW
			copy(buf[at:at+g.Width], image[(c*g.Height+y)*g.Width:(c*g.Height+y+1)*g.Width])
		}
	}
}

// unpadAdd adds the interior of buf into image.
func (s *shiftGeom) unpadAdd(image, buf []float32) {
	g := s.g
	for c := 0; c < g.Channels; c++ {
		for y := 0; y < g.Height; y++ {
			at := c*s.plane + (y+g.PadH)*s.wp + g.PadW
			src := buf[at : at+g.Width]
			dst := image[(c*g.Height+y)*g.Width : (c*g.Height+y+1)*g.Width]
			dst = dst[:len(src)]
			for k, v := range src {
				dst[k] += v
			}
		}
	}
}

// packTaps reorders w [Cout, Cg, KH, KW] into tap-major [KH·KW, Cout, Cg].
func packTaps(w []float32, cout, cg, taps int) []float32 {
	p := getBufNoZero(len(w))
	for co := 0; co < cout; co++ {
		for c := 0; c < cg; c++ {
			src := w[(co*cg+c)*taps : (co*cg+c+1)*taps]
			for t, v := range src {
				p[(t*cout+co)*cg+c] = v
			}
		}
	}
	return p
}

// shiftConvForward computes out = conv(x, w) + bias for stride-1 g and
// returns the packed weights for the backward pass (the caller releases them).
func shiftConvForward(x, w, bias, out []float32, n, c, cout, groups int, g backend.ConvGeometry) []float32 {
	b := be()
	s := newShiftGeom(g)
	coutG := cout / groups
	packed := packTaps(w, cout, g.Channels, s.taps)
	inPlane := c * g.Height * g.Width
	gIn := g.Channels * g.Height * g.Width
	tasks := n * groups
	b.Parallel(tasks, func(lo, hi int) {
		xp := getBuf(s.bufLen)
		yg := getBufNoZero(coutG * s.cols)
		for t := lo; t < hi; t++ {
			i, gr := t/groups, t%groups
			s.pad(xp, x[i*inPlane+gr*gIn:i*inPlane+(gr+1)*gIn])
			for tap, shift := range s.shifts {
				beta := float32(1)
				if tap == 0 {
					beta = 0
				}
				a := packed[(tap*cout+gr*coutG)*g.Channels:]
				b.Gemm(false, false, coutG, s.cols, g.Channels, 1, a, g.Channels, xp[shift:], s.plane, beta, yg, s.cols)
			}
			dst := out[(i*cout+gr*coutG)*s.outHW : (i*cout+(gr+1)*coutG)*s.outHW]
			for co := 0; co < coutG; co++ {
				var bv float32
				if bias != nil {
					bv = bias[gr*coutG+co]
				}
				for oy := 0; oy < g.OutH; oy++ {
					src := yg[co*s.cols+oy*s.wp : co*s.cols+oy*s.wp+g.OutW]
					d := dst[co*s.outHW+oy*g.OutW : co*s.outHW+(oy+1)*g.OutW]
					d = d[:len(src)]
					for k, v := range src {
						d[k] = v + bv
					}
				}
			}
		}
		putBuf(xp)
		putBuf(yg)
	})
	return packed
}

// shiftConvBackward adds the input, weight and bias gradients of a
// shifted-GEMM convolution; packed is shiftConvForward's weight layout.
func shiftConvBackward(x, packed, gout, gx, gw, gb []float32, n, c, cout, groups int, g backend.ConvGeometry) {
	b := be()
	s := newShiftGeom(g)
	coutG := cout / groups
	cg := g.Channels
	inPlane := c * g.Height * g.Width
	gIn := cg * g.Height * g.Width
	tasks := n * groups
	workers := max(1, min(b.Workers(), tasks))
	per := (tasks + workers - 1) / workers
	workers = (tasks + per - 1) / per
	accW := make([][]float32, workers) // tap-major, like packed
	accB := make([][]float32, workers)
	b.Parallel(workers, func(lo, hi int) {
		for wk := lo; wk < hi; wk++ {
			dyg := getBuf(coutG * s.cols) // discarded columns stay zero
			var xp, dxp, myW, myB []float32
			if gw != nil {
				xp = getBuf(s.bufLen)
				myW = getBuf(len(packed))
				accW[wk] = myW
			}
			if gx != nil {
				dxp = getBufNoZero(s.bufLen)
			}
			if gb != nil {
				myB = gb
				if wk > 0 {
					myB = getBuf(len(gb))
					accB[wk] = myB
				}
			}
			for t := wk * per; t < min(tasks, (wk+1)*per); t++ {
				i, gr := t/groups, t%groups
				gy := gout[(i*cout+gr*coutG)*s.outHW : (i*cout+(gr+1)*coutG)*s.outHW]
				for co := 0; co < coutG; co++ {
					var sum float32
					for oy := 0; oy < g.OutH; oy++ {
						src := gy[co*s.outHW+oy*g.OutW : co*s.outHW+(oy+1)*g.OutW]
						copy(dyg[co*s.cols+oy*s.wp:], src)
						if myB != nil {
							for _, v := range src {
								sum += v
							}
						}
					}
					if myB != nil {
						myB[gr*coutG+co] += sum
					}
				}
				if myW != nil {
					s.pad(xp, x[i*inPlane+gr*gIn:i*inPlane+(gr+1)*gIn])
					for tap, shift := range s.shifts {
						b.Gemm(false, true, coutG, cg, s.cols, 1, dyg, s.cols, xp[shift:], s.plane, 1, myW[(tap*cout+gr*coutG)*cg:], cg)
					}
				}
				if gx != nil {
					clear(dxp)
					for tap, shift := range s.shifts {
						a := packed[(tap*cout+gr*coutG)*cg:]
						b.Gemm(true, false, cg, s.cols, coutG, 1, a, cg, dyg, s.cols, 1, dxp[shift:], s.plane)
					}
					s.unpadAdd(gx[i*inPlane+gr*gIn:i*inPlane+(gr+1)*gIn], dxp)
				}
			}
			putBuf(dyg)
			putBuf(xp)
			putBuf(dxp)
		}
	})
	for wk := 0; wk < workers; wk++ {
		if acc := accW[wk]; acc != nil {
			for co := 0; co < cout; co++ {
				for ci := 0; ci < cg; ci++ {
					dst := gw[(co*cg+ci)*s.taps : (co*cg+ci+1)*s.taps]
					for t := range dst {
						dst[t] += acc[(t*cout+co)*cg+ci]
					}
				}
			}
			putBuf(acc)
		}
		if acc := accB[wk]; acc != nil {
			for k, v := range acc {
				gb[k] += v
			}
			putBuf(acc)
		}
	}
}
