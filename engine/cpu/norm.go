package cpu

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// BatchNorm implements backend.Backend: in training, each worker takes a
// run of channels and, per channel, computes the statistics in one pass
// and normalises (and activates, with Act) while the channel is still in
// cache (loops.c).
func (b *Backend) BatchNorm(a backend.BatchNormArgs) {
	const k = "BatchNorm"
	n, c, hw := a.N, a.C, a.HW
	if n < 0 || c < 0 || hw < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d", n, c, hw)
	}
	x := floats(k, a.X, n*c*hw)
	y := floats(k, a.Y, n*c*hw)
	gamma := floats(k, a.Gamma, c)
	beta := floats(k, a.Beta, c)
	rm := floats(k, a.RunningMean, c)
	rv := floats(k, a.RunningVar, c)
	mean := floats(k, a.Mean, c)
	invStd := floats(k, a.InvStd, c)
	m := n * hw
	if a.Training && m < 2 {
		backend.Fail(Name, k, "training needs more than one value per channel, got %d", m)
	}
	if c == 0 {
		return
	}
	if a.Act != 0 && !b.FusesActivation(a.Act) {
		backend.Fail(Name, k, "activation %v cannot be fused", a.Act)
	}
	if a.Training {
		variance := b.batchNormTrain(x, y, gamma, beta, mean, invStd, n, c, hw, a.Eps, a.Act, a.ActAlpha, a.ActBeta)
		for ch, v := range variance {
			rm[ch] = (1-a.Momentum)*rm[ch] + a.Momentum*mean[ch]
			rv[ch] = (1-a.Momentum)*rv[ch] + a.Momentum*float32(v*float64(m)/float64(m-1))
		}
		return
	}
	scale, shift := make([]float32, c), make([]float32, c)
	for ch := range c {
		mean[ch] = rm[ch]
		invStd[ch] = float32(1 / math.Sqrt(float64(rv[ch])+float64(a.Eps)))
		scale[ch] = gamma[ch] * invStd[ch]
		shift[ch] = beta[ch] - mean[ch]*scale[ch]
	}
	b.batchNormApply(x, y, scale, shift, n, c, hw, a.Act, a.ActAlpha, a.ActBeta)
}

// FusesActivation implements backend.ActivationFuser: ReLU and clamp
// (ReLU6) run in batch norm's own pass.
func (b *Backend) FusesActivation(op backend.UnaryOp) bool {
	return op == backend.UnaryReLU || op == backend.UnaryClamp
}

// BatchNormBackward implements backend.Backend: per channel, the two sums
// in one pass and the input gradient in a second while the channel is in
// cache (loops.c).
func (b *Backend) BatchNormBackward(a backend.BatchNormBackwardArgs) {
	const k = "BatchNormBackward"
	n, c, hw := a.N, a.C, a.HW
	if n < 0 || c < 0 || hw < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d", n, c, hw)
	}
	x := floats(k, a.X, n*c*hw)
	dy := floats(k, a.DY, n*c*hw)
	gamma := floats(k, a.Gamma, c)
	mean := floats(k, a.Mean, c)
	invStd := floats(k, a.InvStd, c)
	gx, accX := dest(k, a.DX, n*c*hw)
	gg, accG := dest(k, a.DGamma, c)
	gb, accB := dest(k, a.DBeta, c)
	if c == 0 || (gx == nil && gg == nil && gb == nil) {
		return
	}
	var beta []float32
	if a.Act != 0 {
		if !b.FusesActivation(a.Act) {
			backend.Fail(Name, k, "activation %v cannot be fused", a.Act)
		}
		beta = floats(k, a.Beta, c)
	}
	sumG, sumGX := b.batchNormBackward(a, x, dy, gx, accX, gamma, beta, mean, invStd)
	for ch := range c {
		if gg != nil {
			put(gg, ch, float32(sumGX[ch]), accG)
		}
		if gb != nil {
			put(gb, ch, float32(sumG[ch]), accB)
		}
	}
}

// put writes v into dst[i], or adds it when accumulating.
func put(dst []float32, i int, v float32, accumulate bool) {
	if accumulate {
		dst[i] += v
	} else {
		dst[i] = v
	}
}

// Plane kernels: pooling and upsampling work plane by plane, so the
// reference kernels run on contiguous ranges of planes across workers.

// span wraps planes [lo, hi) of values laid out per planes of size per.
func span(v []float32, per, lo, hi int) backend.Buffer { return ref.Wrap(v[lo*per : hi*per]) }

// spanDest is span for a destination.
func spanDest(v []float32, acc bool, per, lo, hi int) backend.Dest {
	return backend.Dest{Buf: span(v, per, lo, hi), Accumulate: acc}
}

// spanArgmax is span for argmax indices, nil without them.
func spanArgmax(v []int32, per, lo, hi int) backend.Buffer {
	if v == nil {
		return nil
	}
	return ref.WrapInt32(v[lo*per : hi*per])
}

// argmax returns the indices of a max pooling, nil for average pooling or
// when none were asked for.
func argmax(k string, kind backend.PoolKind, buf backend.Buffer, n int) []int32 {
	if kind != backend.PoolMax || buf == nil {
		return nil
	}
	return ref.Ints(Name, k, buf, n)
}

// Pool2d implements backend.Backend.
func (b *Backend) Pool2d(a backend.PoolArgs) {
	const k = "Pool2d"
	g := a.Geometry
	ref.CheckPool(Name, k, g)
	in, out := g.H*g.W, g.OutH*g.OutW
	x, y := floats(k, a.X, g.N*g.C*in), floats(k, a.Y, g.N*g.C*out)
	arg := argmax(k, a.Kind, a.Argmax, g.N*g.C*out)
	b.parallel(g.N*g.C, func(lo, hi int) {
		sub := a
		sub.Geometry.N, sub.Geometry.C = 1, hi-lo
		sub.X, sub.Y, sub.Argmax = span(x, in, lo, hi), span(y, out, lo, hi), spanArgmax(arg, out, lo, hi)
		b.ref.Pool2d(sub)
	})
}

// Pool2dBackward implements backend.Backend.
func (b *Backend) Pool2dBackward(a backend.PoolBackwardArgs) {
	const k = "Pool2dBackward"
	g := a.Geometry
	ref.CheckPool(Name, k, g)
	in, out := g.H*g.W, g.OutH*g.OutW
	dy := floats(k, a.DY, g.N*g.C*out)
	dx, acc := dest(k, a.DX, g.N*g.C*in)
	if dx == nil {
		return
	}
	arg := argmax(k, a.Kind, a.Argmax, g.N*g.C*out)
	if a.Kind == backend.PoolMax && arg == nil {
		backend.Fail(Name, k, "max pooling needs its argmax")
	}
	b.parallel(g.N*g.C, func(lo, hi int) {
		sub := a
		sub.Geometry.N, sub.Geometry.C = 1, hi-lo
		sub.DY, sub.DX, sub.Argmax = span(dy, out, lo, hi), spanDest(dx, acc, in, lo, hi), spanArgmax(arg, out, lo, hi)
		b.ref.Pool2dBackward(sub)
	})
}

// Upsample implements backend.Backend.
func (b *Backend) Upsample(a backend.UpsampleArgs) {
	const k = "Upsample"
	g := a.Geometry
	in, out := g.H*g.W, g.OutH*g.OutW
	x, y := floats(k, a.X, g.N*g.C*in), floats(k, a.Y, g.N*g.C*out)
	b.parallel(g.N*g.C, func(lo, hi int) {
		sub := a
		sub.Geometry.N, sub.Geometry.C = 1, hi-lo
		sub.X, sub.Y = span(x, in, lo, hi), span(y, out, lo, hi)
		b.ref.Upsample(sub)
	})
}

// UpsampleBackward implements backend.Backend.
func (b *Backend) UpsampleBackward(a backend.UpsampleBackwardArgs) {
	const k = "UpsampleBackward"
	g := a.Geometry
	in, out := g.H*g.W, g.OutH*g.OutW
	dy := floats(k, a.DY, g.N*g.C*out)
	dx, acc := dest(k, a.DX, g.N*g.C*in)
	if dx == nil {
		return
	}
	b.parallel(g.N*g.C, func(lo, hi int) {
		sub := a
		sub.Geometry.N, sub.Geometry.C = 1, hi-lo
		sub.DY, sub.DX = span(dy, out, lo, hi), spanDest(dx, acc, in, lo, hi)
		b.ref.UpsampleBackward(sub)
	})
}

// AdamW implements backend.Backend: the reference update on element
// ranges across workers.
func (b *Backend) AdamW(a backend.AdamWArgs) {
	const k = "AdamW"
	p, g := floats(k, a.Param, a.N), floats(k, a.Grad, a.N)
	m, v := floats(k, a.ExpAvg, a.N), floats(k, a.ExpAvgSq, a.N)
	b.parallelRange(a.N, func(lo, hi int) {
		sub := a
		sub.N = hi - lo
		sub.Param, sub.Grad = ref.Wrap(p[lo:hi]), ref.Wrap(g[lo:hi])
		sub.ExpAvg, sub.ExpAvgSq = ref.Wrap(m[lo:hi]), ref.Wrap(v[lo:hi])
		b.ref.AdamW(sub)
	})
}

// SGD implements backend.Backend: the reference update on element ranges
// across workers.
func (b *Backend) SGD(a backend.SGDArgs) {
	const k = "SGD"
	p, g := floats(k, a.Param, a.N), floats(k, a.Grad, a.N)
	var v []float32
	if a.Momentum != 0 {
		v = floats(k, a.Velocity, a.N)
	}
	b.parallelRange(a.N, func(lo, hi int) {
		sub := a
		sub.N = hi - lo
		sub.Param, sub.Grad = ref.Wrap(p[lo:hi]), ref.Wrap(g[lo:hi])
		if v != nil {
			sub.Velocity = ref.Wrap(v[lo:hi])
		}
		b.ref.SGD(sub)
	})
}
