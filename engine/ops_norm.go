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
	d := device("BatchNorm2d", x, gamma, beta, st.RunningMean, st.RunningVar)
	check(x.Rank() == 4, "BatchNorm2d", "input must be NCHW", nil, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	check(gamma.Len() == c && beta.Len() == c && st.RunningMean.Len() == c && st.RunningVar.Len() == c, "BatchNorm2d", "parameters must have %d channels", []any{c}, x, gamma, beta)
	if training {
		check(n*h*w > 1, "BatchNorm2d", "training needs more than one value per channel", nil, x)
	}
	out := alloc(d, slices.Clone(x.shape))
	mean := d.Alloc(backend.Float32, c)
	invStd := d.Alloc(backend.Float32, c)
	d.BatchNorm(backend.BatchNormArgs{
		N: n, C: c, HW: h * w, X: x.buf, Y: out.buf, Gamma: gamma.buf, Beta: beta.buf,
		RunningMean: st.RunningMean.buf, RunningVar: st.RunningVar.buf, Mean: mean, InvStd: invStd,
		Training: training, Momentum: st.Momentum, Eps: st.Eps,
	})
	record(out, "BatchNorm2d", func(out *Tensor) {
		d.BatchNormBackward(backend.BatchNormBackwardArgs{
			N: n, C: c, HW: h * w, X: x.buf, Gamma: gamma.buf, DY: out.grad, Mean: mean, InvStd: invStd,
			DX: x.wantGrad(), DGamma: gamma.wantGrad(), DBeta: beta.wantGrad(), Training: training,
		})
	}, func() {
		d.Free(mean)
		d.Free(invStd)
	}, x, gamma, beta)
	return out
}
