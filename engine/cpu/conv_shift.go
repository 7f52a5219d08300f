package cpu

// Shifted-GEMM convolution.
//
// im2col copies every input value KH·KW times and col2im scatters it back;
// on this engine's probe that copying cost as much as a third of a training
// step. A cheaper formulation: store the image once with its zero padding
// and compute the output on a slightly wider grid, discarding the extra
// columns. For stride 1 the patch row of tap (ky, kx) is then the padded
// image itself shifted by ky·d·Wp + kx·d, with channel planes Hp·Wp apart: a
// plain strided GEMM operand. For stride s the padded image is first split
// into s×s phase images (rows ≡ py, columns ≡ px mod s), each Hq×Wq with
// Hq = ⌈Hp/s⌉, Wq = ⌈Wp/s⌉; tap (ky, kx) reads phase (ky·d mod s, kx·d mod s)
// shifted by ⌊ky·d/s⌋·Wq + ⌊kx·d/s⌋, and the output grid is OH×Wq. Either
// way the convolution is one GEMM per tap, accumulated:
//
//	Y[co, n]              += W_t[co, c] · P_t[c, n + shift_t]
//	dW_t[co, c]           += dY[co, n] · P_t[c, n + shift_t]
//	dP_t[c, n + shift_t]  += W_t[co, c] · dY[co, n]
//
// where W_t is the weight of tap t repacked as [Cout, C]. A valid output
// column never reads past the end of its row (⌊(Wp−d(KW−1)−1)/s⌋ +
// ⌊d(KW−1)/s⌋ ≤ Wq−1), so only discarded columns wrap into the next row;
// their gradient is kept at zero, which makes the backward pass exact.

// useShiftConv reports whether g should take the shifted-GEMM path: stride
// 1, a spatial kernel, enough input channels per group to feed a GEMM per
// tap, and a map wide enough that the discarded columns cost little (at
// most a quarter more columns than the output has). Dense 3×3 layers take
// the Winograd path before this one is asked; strided layers do better
// with the vectorised im2col, whose single GEMM per image has all the
// taps' depth (measured with OpenBLAS's AVX-512 kernels).
func useShiftConv(g planeGeom) bool {
	if g.StrideH != 1 || g.StrideW != 1 || g.KernelH*g.KernelW == 1 || g.OutW < 16 || g.Channels < 8 {
		return false
	}
	wq := (g.Width + 2*g.PadW + g.StrideW - 1) / g.StrideW
	return 4*wq <= 5*g.OutW
}

// shiftGeom holds the padded, phase-split layout of one image group.
type shiftGeom struct {
	g        planeGeom
	s        int   // stride
	hq, wq   int   // phase-image height and width
	planeQ   int   // hq·wq
	phaseLen int   // channels·planeQ plus the tail the last taps read
	bufLen   int   // s² phases
	cols     int   // OH·wq: the output on the padded width
	offsets  []int // per tap: phase start plus shift
	taps     int
	outHW    int
}

func newShiftGeom(g planeGeom) shiftGeom {
	s := shiftGeom{g: g, s: g.StrideH, taps: g.KernelH * g.KernelW, outHW: g.OutH * g.OutW}
	s.hq = (g.Height + 2*g.PadH + s.s - 1) / s.s
	s.wq = (g.Width + 2*g.PadW + s.s - 1) / s.s
	s.planeQ = s.hq * s.wq
	s.phaseLen = g.Channels*s.planeQ + (g.KernelW-1)*g.DilationW/s.s
	s.bufLen = s.s * s.s * s.phaseLen
	s.cols = g.OutH * s.wq
	for ky := 0; ky < g.KernelH; ky++ {
		for kx := 0; kx < g.KernelW; kx++ {
			oy, ox := ky*g.DilationH, kx*g.DilationW
			phase := (oy%s.s)*s.s + ox%s.s
			s.offsets = append(s.offsets, phase*s.phaseLen+(oy/s.s)*s.wq+ox/s.s)
		}
	}
	return s
}

// pad writes image (C×H×W) into the phase images of buf; positions that
// hold padding must already be zero and stay so.
func (s *shiftGeom) pad(buf, image []float32) {
	g := s.g
	for c := 0; c < g.Channels; c++ {
		for y := 0; y < g.Height; y++ {
			src := image[(c*g.Height+y)*g.Width : (c*g.Height+y+1)*g.Width]
			if s.s == 1 {
				at := c*s.planeQ + (y+g.PadH)*s.wq + g.PadW
				copy(buf[at:at+g.Width], src)
				continue
			}
			for px := 0; px < s.s; px++ {
				x0, at := s.phaseRow(c, y, px)
				dst := buf[at:]
				for j, x := 0, x0; x < len(src); j, x = j+1, x+s.s {
					dst[j] = src[x]
				}
			}
		}
	}
}

// unpad adds (or with overwrite, copies) the entries of buf that correspond
// to image pixels into image.
func (s *shiftGeom) unpad(image, buf []float32, overwrite bool) {
	g := s.g
	for c := 0; c < g.Channels; c++ {
		for y := 0; y < g.Height; y++ {
			dst := image[(c*g.Height+y)*g.Width : (c*g.Height+y+1)*g.Width]
			if s.s == 1 {
				at := c*s.planeQ + (y+g.PadH)*s.wq + g.PadW
				src := buf[at : at+g.Width]
				if overwrite {
					copy(dst, src)
					continue
				}
				for k, v := range src {
					dst[k] += v
				}
				continue
			}
			for px := 0; px < s.s; px++ {
				x0, at := s.phaseRow(c, y, px)
				src := buf[at:]
				if overwrite {
					for j, x := 0, x0; x < len(dst); j, x = j+1, x+s.s {
						dst[x] = src[j]
					}
					continue
				}
				for j, x := 0, x0; x < len(dst); j, x = j+1, x+s.s {
					dst[x] += src[j]
				}
			}
		}
	}
}

// phaseRow returns, for image row y of channel c and column phase px, the
// first image column x0 whose padded column is ≡ px (mod s) and the buffer
// index where that row of the phase image receives it; later columns x0+k·s
// go to consecutive indices.
func (s *shiftGeom) phaseRow(c, y, px int) (x0, at int) {
	g := s.g
	py := y + g.PadH
	x0 = ((px-g.PadW)%s.s + s.s) % s.s
	phase := (py%s.s)*s.s + px
	return x0, phase*s.phaseLen + c*s.planeQ + (py/s.s)*s.wq + (x0+g.PadW)/s.s
}

// packTaps reorders w [Cout, Cg, KH, KW] into tap-major [KH·KW, Cout, Cg]
// (a pooled buffer the caller releases).
func packTaps(w []float32, cout, cg, taps int) []float32 {
	p := getBuf(len(w))
	n := cout * cg
	// Tap by tap: sequential writes, short strided reads (twice as fast as
	// scattering each weight's taps, and the backward pass packs again).
	for t := 0; t < taps; t++ {
		dst := p[t*n : (t+1)*n]
		src := w[t:]
		for i := range dst {
			dst[i] = src[i*taps]
		}
	}
	return p
}

// shiftConvForward computes out = conv(x, w) + bias for g from the weights
// packed by packTaps.
func (b *Backend) shiftConvForward(x, packed, bias, out []float32, n, c, cout, groups int, g planeGeom) {
	s := newShiftGeom(g)
	coutG := cout / groups
	inPlane := c * g.Height * g.Width
	gIn := g.Channels * g.Height * g.Width
	tasks := n * groups
	b.parallel(tasks, func(lo, hi int) {
		xp := getZeroed(s.bufLen)
		yg := getBuf(coutG * s.cols)
		for t := lo; t < hi; t++ {
			i, gr := t/groups, t%groups
			s.pad(xp, x[i*inPlane+gr*gIn:i*inPlane+(gr+1)*gIn])
			for tap, off := range s.offsets {
				beta := float32(1)
				if tap == 0 {
					beta = 0
				}
				a := packed[(tap*cout+gr*coutG)*g.Channels:]
				sgemm(false, false, coutG, s.cols, g.Channels, 1, a, g.Channels, xp[off:], s.planeQ, beta, yg, s.cols)
			}
			dst := out[(i*cout+gr*coutG)*s.outHW : (i*cout+(gr+1)*coutG)*s.outHW]
			for co := 0; co < coutG; co++ {
				var bv float32
				if bias != nil {
					bv = bias[gr*coutG+co]
				}
				for oy := 0; oy < g.OutH; oy++ {
					src := yg[co*s.cols+oy*s.wq : co*s.cols+oy*s.wq+g.OutW]
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
}

// shiftConvBackward adds the input, weight and bias gradients of a
// shifted-GEMM convolution; packed is shiftConvForward's weight layout.
// With overwrite, gx holds garbage and is written rather than added to.
func (b *Backend) shiftConvBackward(x, packed, gout, gx, gw, gb []float32, overwrite bool, n, c, cout, groups int, g planeGeom) {
	s := newShiftGeom(g)
	coutG := cout / groups
	cg := g.Channels
	inPlane := c * g.Height * g.Width
	gIn := cg * g.Height * g.Width
	tasks := n * groups
	workers := max(1, min(b.workers, tasks))
	per := (tasks + workers - 1) / workers
	workers = (tasks + per - 1) / per
	accW := make([][]float32, workers) // tap-major, like packed
	accB := make([][]float32, workers)
	b.parallel(workers, func(lo, hi int) {
		for wk := lo; wk < hi; wk++ {
			dyg := getZeroed(coutG * s.cols) // discarded columns stay zero
			var xp, dxp, myW, myB []float32
			if gw != nil {
				xp = getZeroed(s.bufLen)
				myW = getZeroed(len(packed))
				accW[wk] = myW
			}
			if gx != nil {
				dxp = getBuf(s.bufLen)
			}
			if gb != nil {
				myB = gb
				if wk > 0 {
					myB = getZeroed(len(gb))
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
						copy(dyg[co*s.cols+oy*s.wq:], src)
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
					for tap, off := range s.offsets {
						sgemm(false, true, coutG, cg, s.cols, 1, dyg, s.cols, xp[off:], s.planeQ, 1, myW[(tap*cout+gr*coutG)*cg:], cg)
					}
				}
				if gx != nil {
					clear(dxp)
					for tap, off := range s.offsets {
						a := packed[(tap*cout+gr*coutG)*cg:]
						sgemm(true, false, cg, s.cols, coutG, 1, a, cg, dyg, s.cols, 1, dxp[off:], s.planeQ)
					}
					s.unpad(gx[i*inPlane+gr*gIn:i*inPlane+(gr+1)*gIn], dxp, overwrite)
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
