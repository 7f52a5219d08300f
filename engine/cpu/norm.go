package cpu

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// BatchNorm implements backend.Backend: statistics per channel across
// workers (float64 sums), then the normalisation per plane.
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
	if a.Training {
		if m < 2 {
			backend.Fail(Name, k, "training needs more than one value per channel, got %d", m)
		}
		b.parallel(c, func(lo, hi int) {
			for ch := lo; ch < hi; ch++ {
				var s, ss float64
				for i := 0; i < n; i++ {
					for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
						s += float64(v)
					}
				}
				mu := s / float64(m)
				for i := 0; i < n; i++ {
					for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
						d := float64(v) - mu
						ss += d * d
					}
				}
				mean[ch] = float32(mu)
				invStd[ch] = float32(1 / math.Sqrt(ss/float64(m)+float64(a.Eps)))
				rm[ch] = (1-a.Momentum)*rm[ch] + a.Momentum*float32(mu)
				rv[ch] = (1-a.Momentum)*rv[ch] + a.Momentum*float32(ss/float64(m-1))
			}
		})
	} else {
		for ch := 0; ch < c; ch++ {
			mean[ch] = rm[ch]
			invStd[ch] = float32(1 / math.Sqrt(float64(rv[ch])+float64(a.Eps)))
		}
	}
	b.parallel(n*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			ch := t % c
			scale := gamma[ch] * invStd[ch]
			shift := beta[ch] - mean[ch]*scale
			dst := y[t*hw : (t+1)*hw]
			for j, v := range x[t*hw : (t+1)*hw] {
				dst[j] = v*scale + shift
			}
		}
	})
}

// BatchNormBackward implements backend.Backend, one channel per task.
func (b *Backend) BatchNormBackward(a backend.BatchNormBackwardArgs) {
	const k = "BatchNormBackward"
	n, c, hw := a.N, a.C, a.HW
	x := floats(k, a.X, n*c*hw)
	dy := floats(k, a.DY, n*c*hw)
	gamma := floats(k, a.Gamma, c)
	mean := floats(k, a.Mean, c)
	invStd := floats(k, a.InvStd, c)
	gx, accX := dest(k, a.DX, n*c*hw)
	gg, accG := dest(k, a.DGamma, c)
	gb, accB := dest(k, a.DBeta, c)
	m := n * hw
	put := func(dst []float32, i int, v float32, acc bool) {
		if acc {
			dst[i] += v
		} else {
			dst[i] = v
		}
	}
	b.parallel(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var sumG, sumGX float64
			mu, is := mean[ch], invStd[ch]
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs := x[off : off+hw]
				for j, g := range dy[off : off+hw] {
					sumG += float64(g)
					sumGX += float64(g) * float64((xs[j]-mu)*is)
				}
			}
			if gg != nil {
				put(gg, ch, float32(sumGX), accG)
			}
			if gb != nil {
				put(gb, ch, float32(sumG), accB)
			}
			if gx == nil {
				continue
			}
			scale := gamma[ch] * is
			meanG := float32(sumG / float64(m))
			meanGX := float32(sumGX / float64(m))
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs := x[off : off+hw]
				dst := gx[off : off+hw]
				for j, g := range dy[off : off+hw] {
					v := g * scale
					if a.Training {
						xhat := (xs[j] - mu) * is
						v = scale * (g - meanG - xhat*meanGX)
					}
					put(dst, j, v, accX)
				}
			}
		}
	})
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
