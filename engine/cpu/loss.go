package cpu

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// elementwiseLoss reports the losses computed value by value (the others,
// GIoU and cross-entropy, work on rows).
func elementwiseLoss(op backend.LossOp) bool {
	switch op {
	case backend.LossBCEWithLogits, backend.LossSigmoidFocal, backend.LossL1, backend.LossSmoothL1, backend.LossMSE:
		return true
	}
	return false
}

// Loss implements backend.Backend: elementwise losses on element ranges
// across workers (the reference's arithmetic; the sigmoid focal loss,
// which a detector evaluates at every anchor and class, with one
// exponential per value); row losses on the reference.
func (b *Backend) Loss(a backend.LossArgs) {
	const k = "Loss"
	if !elementwiseLoss(a.Op) || a.N < 0 {
		b.ref.Loss(a)
		return
	}
	x, t, y := floats(k, a.X, a.N), floats(k, a.Target, a.N), floats(k, a.Y, a.N)
	if a.Op == backend.LossSigmoidFocal {
		alpha, gamma := float64(a.Alpha), float64(a.Gamma)
		b.parallelRange(a.N, func(lo, hi int) {
			dst := y[lo:hi]
			tt := t[lo:hi]
			for i, v := range x[lo:hi] {
				l, _ := focal(alpha, gamma, float64(v), float64(tt[i]), false)
				dst[i] = float32(l)
			}
		})
		return
	}
	b.parallelRange(a.N, func(lo, hi int) {
		sub := a
		sub.N = hi - lo
		sub.X, sub.Target, sub.Y = ref.Wrap(x[lo:hi]), ref.Wrap(t[lo:hi]), ref.Wrap(y[lo:hi])
		b.ref.Loss(sub)
	})
}

// LossBackward implements backend.Backend, split as Loss.
func (b *Backend) LossBackward(a backend.LossBackwardArgs) {
	const k = "LossBackward"
	if !elementwiseLoss(a.Op) || a.N < 0 {
		b.ref.LossBackward(a)
		return
	}
	x, t, dy := floats(k, a.X, a.N), floats(k, a.Target, a.N), floats(k, a.DY, a.N)
	dx, accX := dest(k, a.DX, a.N)
	dt, accT := dest(k, a.DTarget, a.N)
	if a.Op == backend.LossSigmoidFocal && dx != nil && dt == nil {
		alpha, gamma := float64(a.Alpha), float64(a.Gamma)
		b.parallelRange(a.N, func(lo, hi int) {
			out := dx[lo:hi]
			xx, tt := x[lo:hi], t[lo:hi]
			for i, g := range dy[lo:hi] {
				var v float32
				if g != 0 {
					_, d := focal(alpha, gamma, float64(xx[i]), float64(tt[i]), true)
					v = g * float32(d)
				}
				if accX {
					out[i] += v
				} else {
					out[i] = v
				}
			}
		})
		return
	}
	b.parallelRange(a.N, func(lo, hi int) {
		sub := a
		sub.N = hi - lo
		sub.X, sub.Target, sub.DY = ref.Wrap(x[lo:hi]), ref.Wrap(t[lo:hi]), ref.Wrap(dy[lo:hi])
		if dx != nil {
			sub.DX = backend.Dest{Buf: ref.Wrap(dx[lo:hi]), Accumulate: accX}
		}
		if dt != nil {
			sub.DTarget = backend.Dest{Buf: ref.Wrap(dt[lo:hi]), Accumulate: accT}
		}
		b.ref.LossBackward(sub)
	})
}

// focal is torchvision's sigmoid focal loss of logit x against target t
// and, with grad, its derivative in x: the reference's formulas (package
// ref) with the one exponential e^−|x| shared by the sigmoid and the
// softplus, and γ = 2 squared rather than raised.
func focal(alpha, gamma, x, t float64, grad bool) (v, dx float64) {
	alphaT := 1.0
	if alpha >= 0 {
		alphaT = alpha*t + (1-alpha)*(1-t)
	}
	e := math.Exp(-math.Abs(x))
	var p float64
	if x >= 0 {
		p = 1 / (1 + e)
	} else {
		p = e / (1 + e)
	}
	ce := max(x, 0) - x*t + math.Log1p(e)
	m := 1 - (p*t + (1-p)*(1-t))
	var pow, dPow float64 // m^γ and its derivative γ·m^(γ−1) (0 at m = 0 for γ > 1, 1 for γ = 1)
	switch {
	case gamma == 2:
		pow = m * m
		if m > 0 {
			dPow = 2 * m
		}
	default:
		pow = math.Pow(m, gamma)
		switch {
		case m > 0:
			dPow = gamma * math.Pow(m, gamma-1)
		case gamma == 1:
			dPow = 1
		}
	}
	if !grad {
		return ce * pow * alphaT, 0
	}
	dm := -p * (1 - p) * (2*t - 1)
	return 0, ((p-t)*pow + ce*dPow*dm) * alphaT
}
