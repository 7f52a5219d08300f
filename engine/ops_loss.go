package engine

import (
	"math"
	"slices"
)

// Losses are elementwise: the result has the inputs' shape (CrossEntropy and
// GIoULoss give one value per row) and callers reduce and normalise it
// themselves, because detectors normalise by the number of positives rather
// than by the element count. Inputs must have identical shapes; there is no
// broadcasting, so a mistaken target layout fails loudly.

// pairLoss applies an elementwise loss f(a, b) and its partial derivatives.
// df returns (∂f/∂a, ∂f/∂b) for one element.
func pairLoss(name string, a, b *Tensor, f func(x, y float64) float64, df func(x, y float64) (float64, float64)) *Tensor {
	check(slices.Equal(a.shape, b.shape), name, "inputs must have the same shape", nil, a, b)
	out := newResultNoZero(slices.Clone(a.shape))
	for i, x := range a.data {
		out.data[i] = float32(f(float64(x), float64(b.data[i])))
	}
	record(out, name, func(out *Tensor) {
		var ga, gb []float32
		if a.requiresGrad {
			ga = a.ensureGrad()
		}
		if b.requiresGrad {
			gb = b.ensureGrad()
		}
		for i, g := range out.grad {
			if g == 0 {
				continue
			}
			da, db := df(float64(a.data[i]), float64(b.data[i]))
			if ga != nil {
				ga[i] += g * float32(da)
			}
			if gb != nil {
				gb[i] += g * float32(db)
			}
		}
	}, a, b)
	return out
}

// softplusNeg returns log(1 + e^(−|x|)), the stable tail of the logistic loss.
func softplusNeg(x float64) float64 { return math.Log1p(math.Exp(-math.Abs(x))) }

func sigmoid64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// bceLogits is the binary cross-entropy of logit x against target t in [0, 1].
func bceLogits(x, t float64) float64 { return max(x, 0) - x*t + softplusNeg(x) }

// BCEWithLogits returns the binary cross-entropy between sigmoid(logits) and
// targets, computed stably from the logits. Targets may be soft (any value
// in [0, 1], e.g. a teacher's probabilities); both inputs take gradients.
func BCEWithLogits(logits, targets *Tensor) *Tensor {
	return pairLoss("BCEWithLogits", logits, targets, bceLogits, func(x, t float64) (float64, float64) {
		return sigmoid64(x) - t, -x
	})
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
	a, gm := float64(alpha), float64(gamma)
	alphaT := func(t float64) float64 {
		if a < 0 {
			return 1
		}
		return a*t + (1-a)*(1-t)
	}
	out := newResultNoZero(slices.Clone(logits.shape))
	for i, xv := range logits.data {
		x, t := float64(xv), float64(targets.data[i])
		p := sigmoid64(x)
		m := 1 - (p*t + (1-p)*(1-t))
		out.data[i] = float32(bceLogits(x, t) * math.Pow(m, gm) * alphaT(t))
	}
	record(out, name, func(out *Tensor) {
		if !logits.requiresGrad {
			return
		}
		gl := logits.ensureGrad()
		for i, g := range out.grad {
			if g == 0 {
				continue
			}
			x, t := float64(logits.data[i]), float64(targets.data[i])
			p := sigmoid64(x)
			m := 1 - (p*t + (1-p)*(1-t))
			dm := -p * (1 - p) * (2*t - 1) // ∂m/∂x
			// ∂(m^γ)/∂m = γ·m^(γ−1); at m = 0 it is 0 for γ > 1 and 1 for γ = 1.
			var dPow float64
			switch {
			case m > 0:
				dPow = gm * math.Pow(m, gm-1)
			case gm == 1:
				dPow = 1
			}
			d := ((p-t)*math.Pow(m, gm) + bceLogits(x, t)*dPow*dm) * alphaT(t)
			gl[i] += g * float32(d)
		}
	}, logits)
	return out
}

// CrossEntropy returns −log softmax(logits)[label] per row of logits [N, C]
// as a tensor [N]. A negative label marks an ignored row: its loss and
// gradient are zero.
func CrossEntropy(logits *Tensor, labels []int) *Tensor {
	const name = "CrossEntropy"
	check(logits.Rank() == 2, name, "logits must be [N, C]", nil, logits)
	n, c := logits.shape[0], logits.shape[1]
	check(len(labels) == n, name, "%d labels for %d rows", []any{len(labels), n}, logits)
	for i, l := range labels {
		check(l < c, name, "label %d of row %d out of range [0, %d)", []any{l, i, c}, logits)
	}
	out := newResult([]int{n})
	logZ := make([]float64, n)
	for i := 0; i < n; i++ {
		row := logits.data[i*c : (i+1)*c]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, float64(v))
		}
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v) - m)
		}
		logZ[i] = m + math.Log(z)
		if labels[i] >= 0 {
			out.data[i] = float32(logZ[i] - float64(row[labels[i]]))
		}
	}
	record(out, name, func(out *Tensor) {
		g := logits.ensureGrad()
		for i := 0; i < n; i++ {
			if labels[i] < 0 || out.grad[i] == 0 {
				continue
			}
			gi := float64(out.grad[i])
			row := logits.data[i*c : (i+1)*c]
			dst := g[i*c : (i+1)*c]
			for k, v := range row {
				dst[k] += float32(gi * math.Exp(float64(v)-logZ[i]))
			}
			dst[labels[i]] -= float32(gi)
		}
	}, logits)
	return out
}

// L1Loss returns |a − b| elementwise; the derivative at 0 is taken as 0.
func L1Loss(a, b *Tensor) *Tensor {
	return pairLoss("L1Loss", a, b, func(x, y float64) float64 { return math.Abs(x - y) }, func(x, y float64) (float64, float64) {
		s := sign(x - y)
		return s, -s
	})
}

// SmoothL1Loss returns the Huber-style loss of PyTorch's smooth_l1_loss:
// 0.5·d²/beta where |d| < beta, |d| − 0.5·beta elsewhere (d = a − b).
// beta = 0 is plain L1.
func SmoothL1Loss(a, b *Tensor, beta float32) *Tensor {
	check(beta >= 0, "SmoothL1Loss", "beta %v must be non-negative", []any{beta}, a, b)
	bt := float64(beta)
	return pairLoss("SmoothL1Loss", a, b, func(x, y float64) float64 {
		d := math.Abs(x - y)
		if d < bt {
			return 0.5 * d * d / bt
		}
		return d - 0.5*bt
	}, func(x, y float64) (float64, float64) {
		d := x - y
		if math.Abs(d) < bt {
			return d / bt, -d / bt
		}
		s := sign(d)
		return s, -s
	})
}

// MSELoss returns (a − b)² elementwise.
func MSELoss(a, b *Tensor) *Tensor {
	return pairLoss("MSELoss", a, b, func(x, y float64) float64 { return (x - y) * (x - y) }, func(x, y float64) (float64, float64) {
		return 2 * (x - y), -2 * (x - y)
	})
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// giouEps matches torchvision's generalized_box_iou_loss.
const giouEps = 1e-7

// GIoULoss returns 1 − GIoU for each pair of rows of pred and target [N, 4]
// (x1, y1, x2, y2), as torchvision's generalized_box_iou_loss with
// reduction "none": a tensor [N]. Both inputs take gradients.
func GIoULoss(pred, target *Tensor) *Tensor {
	const name = "GIoULoss"
	check(pred.Rank() == 2 && pred.shape[1] == 4 && slices.Equal(pred.shape, target.shape), name, "pred and target must both be [N, 4]", nil, pred, target)
	n := pred.shape[0]
	out := newResultNoZero([]int{n})
	for i := 0; i < n; i++ {
		out.data[i] = float32(1 - giouForward(pred.data[i*4:i*4+4], target.data[i*4:i*4+4]))
	}
	record(out, name, func(out *Tensor) {
		var gp, gt []float32
		if pred.requiresGrad {
			gp = pred.ensureGrad()
		}
		if target.requiresGrad {
			gt = target.ensureGrad()
		}
		for i := 0; i < n; i++ {
			if out.grad[i] == 0 {
				continue
			}
			dp, dt := giouBackward(pred.data[i*4:i*4+4], target.data[i*4:i*4+4], -float64(out.grad[i]))
			for k := 0; k < 4; k++ {
				if gp != nil {
					gp[i*4+k] += float32(dp[k])
				}
				if gt != nil {
					gt[i*4+k] += float32(dt[k])
				}
			}
		}
	}, pred, target)
	return out
}

type giouParts struct {
	iw, ih, inter, areaP, areaT, union, ew, eh, enclose float64
}

func giouTerms(p, t []float32) giouParts {
	x1, y1, x2, y2 := float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
	X1, Y1, X2, Y2 := float64(t[0]), float64(t[1]), float64(t[2]), float64(t[3])
	var g giouParts
	g.iw = max(min(x2, X2)-max(x1, X1), 0)
	g.ih = max(min(y2, Y2)-max(y1, Y1), 0)
	g.inter = g.iw * g.ih
	g.areaP = (x2 - x1) * (y2 - y1)
	g.areaT = (X2 - X1) * (Y2 - Y1)
	g.union = g.areaP + g.areaT - g.inter
	g.ew = max(x2, X2) - min(x1, X1)
	g.eh = max(y2, Y2) - min(y1, Y1)
	g.enclose = g.ew * g.eh
	return g
}

func giouForward(p, t []float32) float64 {
	g := giouTerms(p, t)
	iou := g.inter / (g.union + giouEps)
	return iou - (g.enclose-g.union)/(g.enclose+giouEps)
}

// giouBackward returns ∂(gGIoU·GIoU)/∂p and /∂t for upstream gradient gGIoU.
func giouBackward(p, t []float32, gGIoU float64) (dp, dt [4]float64) {
	x1, y1, x2, y2 := float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
	X1, Y1, X2, Y2 := float64(t[0]), float64(t[1]), float64(t[2]), float64(t[3])
	g := giouTerms(p, t)
	// GIoU = I/(U+ε) − 1 + (U+ε)/(E+ε)
	ue, ee := g.union+giouEps, g.enclose+giouEps
	gI := gGIoU / ue
	gU := -gGIoU*g.inter/(ue*ue) + gGIoU/ee
	gE := -gGIoU * ue / (ee * ee)
	// U = areaP + areaT − I
	gI -= gU
	gAP, gAT := gU, gU
	dp[2] += gAP * (y2 - y1)
	dp[0] -= gAP * (y2 - y1)
	dp[3] += gAP * (x2 - x1)
	dp[1] -= gAP * (x2 - x1)
	dt[2] += gAT * (Y2 - Y1)
	dt[0] -= gAT * (Y2 - Y1)
	dt[3] += gAT * (X2 - X1)
	dt[1] -= gAT * (X2 - X1)
	// I = iw·ih, each clamped at zero.
	if g.iw > 0 {
		gw := gI * g.ih
		if x2 <= X2 {
			dp[2] += gw
		} else {
			dt[2] += gw
		}
		if x1 >= X1 {
			dp[0] -= gw
		} else {
			dt[0] -= gw
		}
	}
	if g.ih > 0 {
		gh := gI * g.iw
		if y2 <= Y2 {
			dp[3] += gh
		} else {
			dt[3] += gh
		}
		if y1 >= Y1 {
			dp[1] -= gh
		} else {
			dt[1] -= gh
		}
	}
	// E = ew·eh with ew = max(x2, X2) − min(x1, X1).
	gw, gh := gE*g.eh, gE*g.ew
	if x2 >= X2 {
		dp[2] += gw
	} else {
		dt[2] += gw
	}
	if x1 <= X1 {
		dp[0] -= gw
	} else {
		dt[0] -= gw
	}
	if y2 >= Y2 {
		dp[3] += gh
	} else {
		dt[3] += gh
	}
	if y1 <= Y1 {
		dp[1] -= gh
	} else {
		dt[1] -= gh
	}
	return dp, dt
}
