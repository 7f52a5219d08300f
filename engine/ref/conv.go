package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// CheckConv validates a convolution geometry before any memory is touched.
func CheckConv(who, kernel string, g backend.ConvGeometry) {
	pos := g.N >= 0 && g.C > 0 && g.H > 0 && g.W > 0 && g.Cout > 0 && g.KernelH > 0 && g.KernelW > 0 &&
		g.StrideH > 0 && g.StrideW > 0 && g.DilationH > 0 && g.DilationW > 0 && g.Groups > 0 && g.PadH >= 0 && g.PadW >= 0
	if !pos || g.C%g.Groups != 0 || g.Cout%g.Groups != 0 {
		backend.Fail(who, kernel, "invalid geometry %+v", g)
	}
	oh := (g.H+2*g.PadH-g.DilationH*(g.KernelH-1)-1)/g.StrideH + 1
	ow := (g.W+2*g.PadW-g.DilationW*(g.KernelW-1)-1)/g.StrideW + 1
	if oh != g.OutH || ow != g.OutW || oh <= 0 || ow <= 0 {
		backend.Fail(who, kernel, "output %dx%d does not follow from %+v (want %dx%d)", g.OutH, g.OutW, g, oh, ow)
	}
}

// convTaps calls fn for every (output, input, weight) index triple of a
// convolution whose input pixel lies inside the image: the definition of
// the convolution that the forward and both backward passes share.
func convTaps(g backend.ConvGeometry, fn func(yi, xi, wi int)) {
	cg, coutG := g.C/g.Groups, g.Cout/g.Groups
	for n := 0; n < g.N; n++ {
		for co := 0; co < g.Cout; co++ {
			grp := co / coutG
			for ci := 0; ci < cg; ci++ {
				c := grp*cg + ci
				for ky := 0; ky < g.KernelH; ky++ {
					for kx := 0; kx < g.KernelW; kx++ {
						wi := ((co*cg+ci)*g.KernelH+ky)*g.KernelW + kx
						for oy := 0; oy < g.OutH; oy++ {
							iy := oy*g.StrideH - g.PadH + ky*g.DilationH
							if iy < 0 || iy >= g.H {
								continue
							}
							for ox := 0; ox < g.OutW; ox++ {
								ix := ox*g.StrideW - g.PadW + kx*g.DilationW
								if ix < 0 || ix >= g.W {
									continue
								}
								yi := ((n*g.Cout+co)*g.OutH+oy)*g.OutW + ox
								xi := ((n*g.C+c)*g.H+iy)*g.W + ix
								fn(yi, xi, wi)
							}
						}
					}
				}
			}
		}
	}
}

// ConvOperands checks a convolution's geometry and returns the values of
// its input and weight buffers and the output's element count.
func ConvOperands(who, kernel string, g backend.ConvGeometry, xb, wb backend.Buffer) (x, w []float32, ny int) {
	CheckConv(who, kernel, g)
	x = Floats(who, kernel, xb, g.N*g.C*g.H*g.W)
	w = Floats(who, kernel, wb, g.Cout*(g.C/g.Groups)*g.KernelH*g.KernelW)
	return x, w, g.N * g.Cout * g.OutH * g.OutW
}

// Conv2d implements backend.Backend.
func (r *Backend) Conv2d(a backend.ConvArgs) {
	const k = "Conv2d"
	g := a.Geometry
	x, w, ny := ConvOperands(Name, k, g, a.X, a.W)
	bias := Floats(Name, k, a.Bias, g.Cout)
	y := Floats(Name, k, a.Y, ny)
	acc := make([]float64, ny)
	convTaps(g, func(yi, xi, wi int) { acc[yi] += float64(x[xi]) * float64(w[wi]) })
	plane := g.OutH * g.OutW
	for i := range y {
		v := acc[i]
		if bias != nil {
			v += float64(bias[(i/plane)%g.Cout])
		}
		y[i] = float32(v)
	}
}

// Conv2dBackward implements backend.Backend.
func (r *Backend) Conv2dBackward(a backend.ConvBackwardArgs) {
	const k = "Conv2dBackward"
	g := a.Geometry
	x, w, ny := ConvOperands(Name, k, g, a.X, a.W)
	dy := Floats(Name, k, a.DY, ny)
	var gx, gw []float64
	if a.DX.Buf != nil {
		gx = make([]float64, len(x))
	}
	if a.DW.Buf != nil {
		gw = make([]float64, len(w))
	}
	convTaps(g, func(yi, xi, wi int) {
		if gx != nil {
			gx[xi] += float64(w[wi]) * float64(dy[yi])
		}
		if gw != nil {
			gw[wi] += float64(x[xi]) * float64(dy[yi])
		}
	})
	store(k, a.DX, gx)
	store(k, a.DW, gw)
	if a.DBias.Buf != nil {
		gb := make([]float64, g.Cout)
		plane := g.OutH * g.OutW
		for i, v := range dy {
			gb[(i/plane)%g.Cout] += float64(v)
		}
		store(k, a.DBias, gb)
	}
}

// store writes (or adds) float64 results into a wanted Dest.
func store(kernel string, d backend.Dest, v []float64) {
	if d.Buf == nil {
		return
	}
	dst := Floats(Name, kernel, d.Buf, len(v))
	for i, s := range v {
		put(dst, i, float32(s), d.Accumulate)
	}
}

// BatchNorm implements backend.Backend.
func (r *Backend) BatchNorm(a backend.BatchNormArgs) {
	const k = "BatchNorm"
	if a.N < 0 || a.C < 0 || a.HW < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d", a.N, a.C, a.HW)
	}
	n := a.N * a.C * a.HW
	x := Floats(Name, k, a.X, n)
	y := Floats(Name, k, a.Y, n)
	gamma := Floats(Name, k, a.Gamma, a.C)
	beta := Floats(Name, k, a.Beta, a.C)
	rm := Floats(Name, k, a.RunningMean, a.C)
	rv := Floats(Name, k, a.RunningVar, a.C)
	mean := Floats(Name, k, a.Mean, a.C)
	invStd := Floats(Name, k, a.InvStd, a.C)
	m := a.N * a.HW
	if a.Training && m < 2 {
		backend.Fail(Name, k, "training needs more than one value per channel, got %d", m)
	}
	act := fusedActivation(a.Act, a.ActAlpha, a.ActBeta)
	for c := 0; c < a.C; c++ {
		plane := func(i int) []float32 { return x[(i*a.C+c)*a.HW : (i*a.C+c+1)*a.HW] }
		var mu, variance float64
		if a.Training {
			for i := 0; i < a.N; i++ {
				for _, v := range plane(i) {
					mu += float64(v)
				}
			}
			mu /= float64(m)
			var ss float64
			for i := 0; i < a.N; i++ {
				for _, v := range plane(i) {
					ss += (float64(v) - mu) * (float64(v) - mu)
				}
			}
			variance = ss / float64(m)
			rm[c] = (1-a.Momentum)*rm[c] + a.Momentum*float32(mu)
			rv[c] = (1-a.Momentum)*rv[c] + a.Momentum*float32(ss/float64(m-1))
		} else {
			mu, variance = float64(rm[c]), float64(rv[c])
		}
		// The statistics written are the ones used, so that the backward
		// pass can recompute z exactly.
		mean[c], invStd[c] = float32(mu), float32(1/math.Sqrt(variance+float64(a.Eps)))
		for i := 0; i < a.N; i++ {
			out := y[(i*a.C+c)*a.HW : (i*a.C+c+1)*a.HW]
			for j, v := range plane(i) {
				out[j] = act(normalised(v, mean[c], invStd[c], gamma[c], beta[c]))
			}
		}
	}
}

// normalised is batch norm's z = (x − mean)·invStd·gamma + beta.
func normalised(x, mean, invStd, gamma, beta float32) float32 {
	return float32((float64(x)-float64(mean))*float64(invStd)*float64(gamma) + float64(beta))
}

// FusesActivation implements backend.ActivationFuser: every pointwise
// function can follow the normalisation.
func (r *Backend) FusesActivation(op backend.UnaryOp) bool {
	return op >= backend.UnaryScale && op <= backend.UnaryTanh
}

// fusedActivation returns the function BatchNormArgs.Act names (the
// identity for none).
func fusedActivation(op backend.UnaryOp, alpha, beta float32) func(float32) float32 {
	if op == 0 {
		return func(z float32) float32 { return z }
	}
	return UnaryFunc(op, alpha, beta)
}

// BatchNormBackward implements backend.Backend.
func (r *Backend) BatchNormBackward(a backend.BatchNormBackwardArgs) {
	const k = "BatchNormBackward"
	n := a.N * a.C * a.HW
	x := Floats(Name, k, a.X, n)
	dy := Floats(Name, k, a.DY, n)
	gamma := Floats(Name, k, a.Gamma, a.C)
	mean := Floats(Name, k, a.Mean, a.C)
	invStd := Floats(Name, k, a.InvStd, a.C)
	dx := dest(k, a.DX, n)
	dgamma := dest(k, a.DGamma, a.C)
	dbeta := dest(k, a.DBeta, a.C)
	m := float64(a.N * a.HW)
	if a.Act != 0 {
		// The gradient reaching the normalised values: dy·act′(z), with z
		// recomputed as the forward pass made it.
		beta := Floats(Name, k, a.Beta, a.C)
		f, df := fusedActivation(a.Act, a.ActAlpha, a.ActBeta), UnaryDerivative(a.Act, a.ActAlpha, a.ActBeta)
		g := make([]float32, n)
		for j := range g {
			c := j / a.HW % a.C
			z := normalised(x[j], mean[c], invStd[c], gamma[c], beta[c])
			g[j] = dy[j] * df(z, f(z))
		}
		dy = g
	}
	for c := 0; c < a.C; c++ {
		mu, is := float64(mean[c]), float64(invStd[c])
		var sumG, sumGX float64
		for i := 0; i < a.N; i++ {
			for j := (i*a.C + c) * a.HW; j < (i*a.C+c+1)*a.HW; j++ {
				sumG += float64(dy[j])
				sumGX += float64(dy[j]) * (float64(x[j]) - mu) * is
			}
		}
		if dgamma != nil {
			dgamma[c] += float32(sumGX)
		}
		if dbeta != nil {
			dbeta[c] += float32(sumG)
		}
		if dx == nil {
			continue
		}
		scale := float64(gamma[c]) * is
		for i := 0; i < a.N; i++ {
			for j := (i*a.C + c) * a.HW; j < (i*a.C+c+1)*a.HW; j++ {
				g := float64(dy[j])
				if a.Training {
					xhat := (float64(x[j]) - mu) * is
					g = g - sumG/m - xhat*sumGX/m
				}
				dx[j] += float32(scale * g)
			}
		}
	}
}

// CheckPool validates a pooling geometry.
func CheckPool(who, kernel string, g backend.PoolGeometry) {
	ok := g.N >= 0 && g.C >= 0 && g.H > 0 && g.W > 0 && g.Kernel > 0 && g.Stride > 0 && g.Pad >= 0 &&
		g.OutH == (g.H+2*g.Pad-g.Kernel)/g.Stride+1 && g.OutW == (g.W+2*g.Pad-g.Kernel)/g.Stride+1 && g.OutH > 0 && g.OutW > 0
	if !ok {
		backend.Fail(who, kernel, "invalid geometry %+v", g)
	}
}

// poolWindow calls fn with the plane-local input index of every in-image
// position of output (oy, ox)'s window.
func poolWindow(g backend.PoolGeometry, oy, ox int, fn func(ii int)) {
	for ky := 0; ky < g.Kernel; ky++ {
		iy := oy*g.Stride - g.Pad + ky
		if iy < 0 || iy >= g.H {
			continue
		}
		for kx := 0; kx < g.Kernel; kx++ {
			ix := ox*g.Stride - g.Pad + kx
			if ix >= 0 && ix < g.W {
				fn(iy*g.W + ix)
			}
		}
	}
}

// Pool2d implements backend.Backend.
func (r *Backend) Pool2d(a backend.PoolArgs) {
	const k = "Pool2d"
	g := a.Geometry
	CheckPool(Name, k, g)
	planes, in, out := g.N*g.C, g.H*g.W, g.OutH*g.OutW
	x := Floats(Name, k, a.X, planes*in)
	y := Floats(Name, k, a.Y, planes*out)
	var arg []int32
	if a.Kind == backend.PoolMax && a.Argmax != nil {
		arg = Ints(Name, k, a.Argmax, planes*out)
	}
	inv := 1 / float32(g.Kernel*g.Kernel)
	poolOutputs(k, a.Kind, g, func(t, oy, ox, oi int) {
		src := x[t*in : (t+1)*in]
		if a.Kind == backend.PoolAvg {
			var s float32
			poolWindow(g, oy, ox, func(ii int) { s += src[ii] * inv })
			y[oi] = s
			return
		}
		best, bi := float32(math.Inf(-1)), -1
		poolWindow(g, oy, ox, func(ii int) {
			v := src[ii]
			if bi < 0 || v > best || (v != v && best == best) {
				best, bi = v, ii
			}
		})
		y[oi] = best
		if arg != nil {
			arg[oi] = int32(bi)
		}
	})
}

// poolOutputs calls fn for every output (plane t, row oy, column ox, flat
// index oi) of a pooling, after checking its kind.
func poolOutputs(kernel string, kind backend.PoolKind, g backend.PoolGeometry, fn func(t, oy, ox, oi int)) {
	if kind != backend.PoolMax && kind != backend.PoolAvg {
		backend.Fail(Name, kernel, "unknown pooling %d", kind)
	}
	oi := 0
	for t := 0; t < g.N*g.C; t++ {
		for oy := 0; oy < g.OutH; oy++ {
			for ox := 0; ox < g.OutW; ox++ {
				fn(t, oy, ox, oi)
				oi++
			}
		}
	}
}

// Pool2dBackward implements backend.Backend.
func (r *Backend) Pool2dBackward(a backend.PoolBackwardArgs) {
	const k = "Pool2dBackward"
	g := a.Geometry
	CheckPool(Name, k, g)
	planes, in, out := g.N*g.C, g.H*g.W, g.OutH*g.OutW
	dy := Floats(Name, k, a.DY, planes*out)
	dx := dest(k, a.DX, planes*in)
	if dx == nil {
		return
	}
	var arg []int32
	if a.Kind == backend.PoolMax {
		arg = Ints(Name, k, a.Argmax, planes*out)
	}
	inv := 1 / float32(g.Kernel*g.Kernel)
	poolOutputs(k, a.Kind, g, func(t, oy, ox, oi int) {
		plane := dx[t*in : (t+1)*in]
		if a.Kind == backend.PoolAvg {
			poolWindow(g, oy, ox, func(ii int) { plane[ii] += dy[oi] * inv })
		} else if ii := arg[oi]; ii >= 0 {
			plane[ii] += dy[oi]
		}
	})
}

// NearestSource returns, for each of out destination positions, the
// source position ⌊d·in/out⌋ (PyTorch's nearest).
func NearestSource(in, out int) []int {
	idx := make([]int, out)
	for i := range idx {
		idx[i] = min(in-1, i*in/out)
	}
	return idx
}

// CheckResize validates a resize geometry.
func CheckResize(who, kernel string, g backend.ResizeGeometry) {
	if g.N < 0 || g.C < 0 || g.H <= 0 || g.W <= 0 || g.OutH <= 0 || g.OutW <= 0 {
		backend.Fail(who, kernel, "invalid geometry %+v", g)
	}
}

// Upsample implements backend.Backend.
func (r *Backend) Upsample(a backend.UpsampleArgs) {
	const k = "Upsample"
	g := a.Geometry
	CheckResize(Name, k, g)
	planes := g.N * g.C
	x := Floats(Name, k, a.X, planes*g.H*g.W)
	y := Floats(Name, k, a.Y, planes*g.OutH*g.OutW)
	rows, cols := NearestSource(g.H, g.OutH), NearestSource(g.W, g.OutW)
	for t := 0; t < planes; t++ {
		for oy, iy := range rows {
			for ox, ix := range cols {
				y[(t*g.OutH+oy)*g.OutW+ox] = x[(t*g.H+iy)*g.W+ix]
			}
		}
	}
}

// UpsampleBackward implements backend.Backend.
func (r *Backend) UpsampleBackward(a backend.UpsampleBackwardArgs) {
	const k = "UpsampleBackward"
	g := a.Geometry
	CheckResize(Name, k, g)
	planes := g.N * g.C
	dy := Floats(Name, k, a.DY, planes*g.OutH*g.OutW)
	dx := dest(k, a.DX, planes*g.H*g.W)
	if dx == nil {
		return
	}
	rows, cols := NearestSource(g.H, g.OutH), NearestSource(g.W, g.OutW)
	for t := 0; t < planes; t++ {
		for oy, iy := range rows {
			for ox, ix := range cols {
				dx[(t*g.H+iy)*g.W+ix] += dy[(t*g.OutH+oy)*g.OutW+ox]
			}
		}
	}
}
