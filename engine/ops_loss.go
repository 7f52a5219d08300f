package engine

import (
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// Losses are elementwise: the result has the inputs' shape (CrossEntropy and
// GIoULoss give one value per row) and callers reduce and normalise it
// themselves, because detectors normalise by the number of positives rather
// than by the element count. Inputs must have identical shapes; there is no
// broadcasting, so a mistaken target layout fails loudly.

// loss runs a loss kernel on x and target (target's gradient is wanted
// only when targetGrad) and records its backward pass.
func loss(name string, a backend.LossArgs, x, target *Tensor, outShape []int, targetGrad bool) *Tensor {
	d := device(name, x, target)
	out := alloc(d, outShape)
	a.X, a.Target, a.Y = x.buf, target.buf, out.buf
	d.Loss(a)
	inputs := []*Tensor{x}
	if targetGrad {
		inputs = append(inputs, target)
	}
	record(out, name, func(out *Tensor) {
		b := backend.LossBackwardArgs{Op: a.Op, N: a.N, Classes: a.Classes, X: x.buf, Target: target.buf, DY: out.grad, Alpha: a.Alpha, Gamma: a.Gamma, Beta: a.Beta}
		b.DX = x.wantGrad()
		if targetGrad && target.requiresGrad {
			if target == x {
				// One buffer cannot be two destinations of a kernel.
				d.LossBackward(b)
				b.DX = backend.Dest{}
			}
			b.DTarget = target.gradDest()
		}
		d.LossBackward(b)
	}, nil, inputs...)
	return out
}

// pairLoss checks an elementwise loss of two same-shaped tensors that both
// take gradients.
func pairLoss(name string, op backend.LossOp, a, b *Tensor, beta float32) *Tensor {
	check(slices.Equal(a.shape, b.shape), name, "inputs must have the same shape", nil, a, b)
	return loss(name, backend.LossArgs{Op: op, N: a.Len(), Beta: beta}, a, b, slices.Clone(a.shape), true)
}

// BCEWithLogits returns the binary cross-entropy between sigmoid(logits) and
// targets, computed stably from the logits. Targets may be soft (any value
// in [0, 1], e.g. a teacher's probabilities); both inputs take gradients.
func BCEWithLogits(logits, targets *Tensor) *Tensor {
	return pairLoss("BCEWithLogits", backend.LossBCEWithLogits, logits, targets, 0)
}

// SigmoidFocalLoss is RetinaNet's focal loss (torchvision
// sigmoid_focal_loss with reduction "none"):
//
//	ce·(1 − p_t)^gamma · alpha_t,  p = sigmoid(x), p_t = p·t + (1−p)(1−t),
//	alpha_t = alpha·t + (1−alpha)(1−t)
//
// A negative alpha disables the weighting. The gradient flows into logits
// only; targets are labels (soft values allowed) and take no gradient.
func SigmoidFocalLoss(logits, targets *Tensor, alpha, gamma float32) *Tensor {
	const name = "SigmoidFocalLoss"
	check(slices.Equal(logits.shape, targets.shape), name, "logits and targets must have the same shape", nil, logits, targets)
	check(gamma >= 0, name, "gamma %v must be non-negative", []any{gamma}, logits)
	a := backend.LossArgs{Op: backend.LossSigmoidFocal, N: logits.Len(), Alpha: alpha, Gamma: gamma}
	return loss(name, a, logits, targets, slices.Clone(logits.shape), false)
}

// CrossEntropy returns −log softmax(logits)[label] per row of logits [N, C]
// as a tensor [N]. A negative label marks an ignored row: its loss and
// gradient are zero. The labels are uploaded to the logits' device.
func CrossEntropy(logits *Tensor, labels []int) *Tensor {
	const name = "CrossEntropy"
	d := device(name, logits)
	check(logits.Rank() == 2, name, "logits must be [N, C]", nil, logits)
	n, c := logits.shape[0], logits.shape[1]
	check(len(labels) == n, name, "%d labels for %d rows", []any{len(labels), n}, logits)
	for i, l := range labels {
		check(l < c, name, "label %d of row %d out of range [0, %d)", []any{l, i, c}, logits)
	}
	check(c > 0, name, "logits have no classes", nil, logits)
	lab := uploadIndices(d, labels)
	target := &Tensor{shape: []int{n}, dtype: backend.Int32, dev: d, buf: lab}
	out := loss(name, backend.LossArgs{Op: backend.LossCrossEntropy, N: n, Classes: c}, logits, target, []int{n}, false)
	if out.node != nil {
		out.node.release = func() { d.Free(lab) }
	} else {
		d.Free(lab)
	}
	return out
}

// L1Loss returns |a − b| elementwise; the derivative at 0 is taken as 0.
func L1Loss(a, b *Tensor) *Tensor { return pairLoss("L1Loss", backend.LossL1, a, b, 0) }

// SmoothL1Loss returns the Huber-style loss of PyTorch's smooth_l1_loss:
// 0.5·d²/beta where |d| < beta, |d| − 0.5·beta elsewhere (d = a − b).
// beta = 0 is plain L1.
func SmoothL1Loss(a, b *Tensor, beta float32) *Tensor {
	check(beta >= 0, "SmoothL1Loss", "beta %v must be non-negative", []any{beta}, a, b)
	return pairLoss("SmoothL1Loss", backend.LossSmoothL1, a, b, beta)
}

// MSELoss returns (a − b)² elementwise.
func MSELoss(a, b *Tensor) *Tensor { return pairLoss("MSELoss", backend.LossMSE, a, b, 0) }

// GIoULoss returns 1 − GIoU for each pair of rows of pred and target [N, 4]
// (x1, y1, x2, y2), as torchvision's generalized_box_iou_loss with
// reduction "none": a tensor [N]. Both inputs take gradients.
func GIoULoss(pred, target *Tensor) *Tensor {
	const name = "GIoULoss"
	check(pred.Rank() == 2 && pred.shape[1] == 4 && slices.Equal(pred.shape, target.shape), name, "pred and target must both be [N, 4]", nil, pred, target)
	n := pred.shape[0]
	return loss(name, backend.LossArgs{Op: backend.LossGIoU, N: n}, pred, target, []int{n}, true)
}

// PairwiseDistances returns the Euclidean distances between the rows of
// f [K, D] as a [K, K] tensor with a zero diagonal. The gradient of a zero
// distance (the diagonal, or two equal rows) is taken as zero. GID's
// relation loss is built on it.
func PairwiseDistances(f *Tensor) *Tensor {
	const name = "PairwiseDistances"
	d := device(name, f)
	check(f.Rank() == 2, name, "features must be [K, D]", nil, f)
	k, dim := f.shape[0], f.shape[1]
	out := alloc(d, []int{k, k})
	d.PairwiseDistance(backend.PairwiseDistanceArgs{K: k, D: dim, X: f.buf, Y: out.buf})
	record(out, name, func(out *Tensor) {
		d.PairwiseDistanceBackward(backend.PairwiseDistanceBackwardArgs{K: k, D: dim, X: f.buf, Y: out.buf, DY: out.grad, DX: f.gradDest()})
	}, nil, f)
	return out
}
