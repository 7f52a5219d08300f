package engine

import (
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// BatchNormState holds a batch-norm layer's running statistics, updated in
// training mode with the given momentum (PyTorch convention: new = (1−m)·old + m·batch).
type BatchNormState struct {
	RunningMean, RunningVar *Tensor
	Momentum, Eps           float32
}

// BatchNorm2d normalises x [N, C, H, W] per channel and applies gamma, beta
// [C]. In training mode it uses batch statistics (biased variance for
// normalising, unbiased for the running estimate) and updates st; in eval
// mode it uses st's running statistics.
func BatchNorm2d(x, gamma, beta *Tensor, st *BatchNormState, training bool) *Tensor {
	return batchNorm2d("BatchNorm2d", x, gamma, beta, st, training, Activation{})
}

// Activation is a pointwise function an op applies to its result in the
// same kernel when the device can (backend.ActivationFuser): Op is
// backend.UnaryReLU, or backend.UnaryClamp with bounds Alpha and Beta
// (ReLU6 is Clamp to [0, 6]); the zero value is none.
type Activation struct {
	Op          backend.UnaryOp
	Alpha, Beta float32
}

// BatchNorm2dAct is act(BatchNorm2d(x, …)): batch norm followed by ReLU or
// a clamp. A device that fuses the activation computes both in one pass
// each way and keeps no intermediate tensor; on any other the two ops run
// one after the other. The values and gradients are the same either way.
func BatchNorm2dAct(x, gamma, beta *Tensor, st *BatchNormState, training bool, act Activation) *Tensor {
	const name = "BatchNorm2dAct"
	check(act.Op == 0 || act.Op == backend.UnaryReLU || act.Op == backend.UnaryClamp, name, "activation %v is not ReLU or Clamp", []any{act.Op}, x)
	if f, ok := device(name, x).(backend.ActivationFuser); act.Op != 0 && (!ok || !f.FusesActivation(act.Op)) {
		return unary(act.Op.String(), act.Op, batchNorm2d(name, x, gamma, beta, st, training, Activation{}), act.Alpha, act.Beta)
	}
	return batchNorm2d(name, x, gamma, beta, st, training, act)
}

func batchNorm2d(name string, x, gamma, beta *Tensor, st *BatchNormState, training bool, act Activation) *Tensor {
	d := device(name, x, gamma, beta, st.RunningMean, st.RunningVar)
	check(x.Rank() == 4, name, "input must be NCHW", nil, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	check(gamma.Len() == c && beta.Len() == c && st.RunningMean.Len() == c && st.RunningVar.Len() == c, name, "parameters must have %d channels", []any{c}, x, gamma, beta)
	if training {
		check(n*h*w > 1, name, "training needs more than one value per channel", nil, x)
	}
	out := alloc(d, slices.Clone(x.shape))
	mean := d.Alloc(backend.Float32, c)
	invStd := d.Alloc(backend.Float32, c)
	d.BatchNorm(backend.BatchNormArgs{
		N: n, C: c, HW: h * w, X: x.buf, Y: out.buf, Gamma: gamma.buf, Beta: beta.buf,
		RunningMean: st.RunningMean.buf, RunningVar: st.RunningVar.buf, Mean: mean, InvStd: invStd,
		Training: training, Momentum: st.Momentum, Eps: st.Eps, Act: act.Op, ActAlpha: act.Alpha, ActBeta: act.Beta,
	})
	record(out, name, func(out *Tensor) {
		d.BatchNormBackward(backend.BatchNormBackwardArgs{
			N: n, C: c, HW: h * w, X: x.buf, Gamma: gamma.buf, DY: out.grad, Mean: mean, InvStd: invStd,
			DX: x.wantGrad(), DGamma: gamma.wantGrad(), DBeta: beta.wantGrad(), Training: training,
			Beta: beta.buf, Act: act.Op, ActAlpha: act.Alpha, ActBeta: act.Beta,
		})
	}, func() {
		d.Free(mean)
		d.Free(invStd)
	}, x, gamma, beta)
	return out
}
