package engine

import "github.com/gidedge/gidedge/engine/backend"

// Parameter updates for package optim: the optimizer kernels applied to a
// tensor and its gradient in place, and the gradient norm for clipping.

// AdamWScalars are the per-step constants of an AdamW update (see
// backend.AdamWArgs); the optimizer computes them on the host.
type AdamWScalars struct {
	Beta1, Beta2, Eps            float32
	Shrink, StepSize, InvSqrtBC2 float32
}

// AdamWUpdate applies one AdamW step to p from its gradient, updating the
// moment estimates m and v (p's size) in place.
func AdamWUpdate(p, m, v *Tensor, u AdamWScalars) {
	d := device("AdamWUpdate", p, m, v)
	check(p.grad != nil && m.Len() == p.Len() && v.Len() == p.Len(), "AdamWUpdate", "parameter needs a gradient and state of its size", nil, p, m, v)
	d.AdamW(backend.AdamWArgs{N: p.Len(), Param: p.buf, Grad: p.grad, ExpAvg: m.buf, ExpAvgSq: v.buf,
		Beta1: u.Beta1, Beta2: u.Beta2, Eps: u.Eps, Shrink: u.Shrink, StepSize: u.StepSize, InvSqrtBC2: u.InvSqrtBC2})
}

// SGDUpdate applies one SGD step to p from its gradient; velocity (p's
// size) is the momentum buffer, untouched when momentum is 0.
func SGDUpdate(p, velocity *Tensor, lr, momentum, weightDecay float32, nesterov bool) {
	d := device("SGDUpdate", p, velocity)
	check(p.grad != nil && velocity.Len() == p.Len(), "SGDUpdate", "parameter needs a gradient and a momentum buffer of its size", nil, p, velocity)
	d.SGD(backend.SGDArgs{N: p.Len(), Param: p.buf, Grad: p.grad, Velocity: velocity.buf, LR: lr, Momentum: momentum, WeightDecay: weightDecay, Nesterov: nesterov})
}

// GradSquaredNorm returns the sum of the squared L2 norms of the gradients
// of ts (all with gradients, on one device), reduced on the device and
// read with one host transfer.
func GradSquaredNorm(ts []*Tensor) float32 {
	if len(ts) == 0 {
		return 0
	}
	d := device("GradSquaredNorm", ts...)
	acc := d.Alloc(backend.Float32, 1)
	defer d.Free(acc)
	for i, t := range ts {
		check(t.grad != nil, "GradSquaredNorm", "tensor %d has no gradient", []any{i}, t)
		d.Reduce(backend.ReduceArgs{Op: backend.ReduceSumSquares, Shape: []int{t.Len()}, Axes: []bool{true}, Src: t.grad, Dst: backend.Dest{Buf: acc, Accumulate: i > 0}, Alpha: 1})
	}
	return download(d, acc, 1)[0]
}

// ScaleGrad multiplies t's gradient by s in place.
func ScaleGrad(t *Tensor, s float32) {
	d := device("ScaleGrad", t)
	check(t.grad != nil, "ScaleGrad", "tensor has no gradient", nil, t)
	d.Unary(backend.UnaryArgs{Op: backend.UnaryScale, N: t.Len(), X: t.grad, Y: t.grad, Alpha: s})
}
