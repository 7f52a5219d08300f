package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// softplusNeg returns log(1 + e^(−|x|)), the stable tail of the logistic loss.
func softplusNeg(x float64) float64 { return math.Log1p(math.Exp(-math.Abs(x))) }

func sigmoid64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// bceLogits is the binary cross-entropy of logit x against target t.
func bceLogits(x, t float64) float64 { return max(x, 0) - x*t + softplusNeg(x) }

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// pairLoss returns the value and the partial derivatives (∂/∂x, ∂/∂t) of
// an elementwise loss.
func pairLoss(a backend.LossArgs, x, t float64) (v, dx, dt float64) {
	switch a.Op {
	case backend.LossBCEWithLogits:
		return bceLogits(x, t), sigmoid64(x) - t, -x
	case backend.LossL1:
		s := sign(x - t)
		return math.Abs(x - t), s, -s
	case backend.LossSmoothL1:
		beta := float64(a.Beta)
		d := x - t
		if math.Abs(d) < beta {
			return 0.5 * d * d / beta, d / beta, -d / beta
		}
		return math.Abs(d) - 0.5*beta, sign(d), -sign(d)
	case backend.LossMSE:
		return (x - t) * (x - t), 2 * (x - t), -2 * (x - t)
	case backend.LossSigmoidFocal:
		return focal(float64(a.Alpha), float64(a.Gamma), x, t)
	}
	backend.Fail(Name, "Loss", "%v is not an elementwise loss", a.Op)
	return 0, 0, 0
}

// focal is torchvision's sigmoid focal loss and its derivative in x.
func focal(alpha, gamma, x, t float64) (v, dx, dt float64) {
	alphaT := 1.0
	if alpha >= 0 {
		alphaT = alpha*t + (1-alpha)*(1-t)
	}
	p := sigmoid64(x)
	m := 1 - (p*t + (1-p)*(1-t))
	v = bceLogits(x, t) * math.Pow(m, gamma) * alphaT
	dm := -p * (1 - p) * (2*t - 1) // ∂m/∂x
	// ∂(m^γ)/∂m = γ·m^(γ−1); at m = 0 it is 0 for γ > 1 and 1 for γ = 1.
	var dPow float64
	switch {
	case m > 0:
		dPow = gamma * math.Pow(m, gamma-1)
	case gamma == 1:
		dPow = 1
	}
	dx = ((p-t)*math.Pow(m, gamma) + bceLogits(x, t)*dPow*dm) * alphaT
	return v, dx, 0
}

// giouEps matches torchvision's generalized_box_iou_loss.
const giouEps = 1e-7

type giouParts struct {
	iw, ih, inter, union, ew, eh, enclose float64
}

func giouTerms(p, t []float32) giouParts {
	x1, y1, x2, y2 := float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
	X1, Y1, X2, Y2 := float64(t[0]), float64(t[1]), float64(t[2]), float64(t[3])
	var g giouParts
	g.iw = max(min(x2, X2)-max(x1, X1), 0)
	g.ih = max(min(y2, Y2)-max(y1, Y1), 0)
	g.inter = g.iw * g.ih
	g.union = (x2-x1)*(y2-y1) + (X2-X1)*(Y2-Y1) - g.inter
	g.ew = max(x2, X2) - min(x1, X1)
	g.eh = max(y2, Y2) - min(y1, Y1)
	g.enclose = g.ew * g.eh
	return g
}

// GIoU returns the generalized IoU of boxes p and t (x1, y1, x2, y2).
func GIoU(p, t []float32) float64 {
	g := giouTerms(p, t)
	return g.inter/(g.union+giouEps) - (g.enclose-g.union)/(g.enclose+giouEps)
}

// giouBackward returns ∂(up·GIoU)/∂p and /∂t.
func giouBackward(p, t []float32, up float64) (dp, dt [4]float64) {
	x1, y1, x2, y2 := float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
	X1, Y1, X2, Y2 := float64(t[0]), float64(t[1]), float64(t[2]), float64(t[3])
	g := giouTerms(p, t)
	// GIoU = I/(U+ε) − 1 + (U+ε)/(E+ε), U = areaP + areaT − I.
	ue, ee := g.union+giouEps, g.enclose+giouEps
	gI := up / ue
	gU := -up*g.inter/(ue*ue) + up/ee
	gE := -up * ue / (ee * ee)
	gI -= gU
	dp[2] += gU * (y2 - y1)
	dp[0] -= gU * (y2 - y1)
	dp[3] += gU * (x2 - x1)
	dp[1] -= gU * (x2 - x1)
	dt[2] += gU * (Y2 - Y1)
	dt[0] -= gU * (Y2 - Y1)
	dt[3] += gU * (X2 - X1)
	dt[1] -= gU * (X2 - X1)
	// route adds v to coordinate k of whichever box owns it (p when own).
	route := func(own bool, k int, v float64) {
		if own {
			dp[k] += v
		} else {
			dt[k] += v
		}
	}
	// I = iw·ih, each clamped at zero.
	if g.iw > 0 {
		route(x2 <= X2, 2, gI*g.ih)
		route(x1 >= X1, 0, -gI*g.ih)
	}
	if g.ih > 0 {
		route(y2 <= Y2, 3, gI*g.iw)
		route(y1 >= Y1, 1, -gI*g.iw)
	}
	// E = ew·eh with ew = max(x2, X2) − min(x1, X1).
	route(x2 >= X2, 2, gE*g.eh)
	route(x1 <= X1, 0, -gE*g.eh)
	route(y2 >= Y2, 3, gE*g.ew)
	route(y1 <= Y1, 1, -gE*g.ew)
	return dp, dt
}

// LossSizes checks a loss's sizes and returns the element counts of X and
// Target and whether Target holds labels.
func LossSizes(who, kernel string, op backend.LossOp, n, classes int) (nx, nt int, labels bool) {
	if n < 0 || (op == backend.LossCrossEntropy && classes <= 0) {
		backend.Fail(who, kernel, "%v over %d values of %d classes", op, n, classes)
	}
	switch op {
	case backend.LossGIoU:
		return 4 * n, 4 * n, false
	case backend.LossCrossEntropy:
		return n * classes, n, true
	}
	return n, n, false
}

// crossEntropyRow returns log Σ exp(row) computed stably.
func logSumExp(row []float32) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		m = max(m, float64(v))
	}
	var z float64
	for _, v := range row {
		z += math.Exp(float64(v) - m)
	}
	return m + math.Log(z)
}

// Loss implements backend.Backend.
func (r *Backend) Loss(a backend.LossArgs) {
	const k = "Loss"
	nx, nt, labels := LossSizes(Name, k, a.Op, a.N, a.Classes)
	x := Floats(Name, k, a.X, nx)
	y := Floats(Name, k, a.Y, a.N)
	switch {
	case labels:
		lab := Ints(Name, k, a.Target, nt)
		for i := range y {
			y[i] = 0
			if l := int(lab[i]); l >= 0 {
				if l >= a.Classes {
					backend.Fail(Name, k, "label %d of row %d is outside [0, %d)", l, i, a.Classes)
				}
				row := x[i*a.Classes : (i+1)*a.Classes]
				y[i] = float32(logSumExp(row) - float64(row[l]))
			}
		}
	case a.Op == backend.LossGIoU:
		t := Floats(Name, k, a.Target, nt)
		for i := range y {
			y[i] = float32(1 - GIoU(x[4*i:4*i+4], t[4*i:4*i+4]))
		}
	default:
		t := Floats(Name, k, a.Target, nt)
		for i := range y {
			v, _, _ := pairLoss(a, float64(x[i]), float64(t[i]))
			y[i] = float32(v)
		}
	}
}

// LossBackward implements backend.Backend.
func (r *Backend) LossBackward(a backend.LossBackwardArgs) {
	const k = "LossBackward"
	nx, nt, labels := LossSizes(Name, k, a.Op, a.N, a.Classes)
	x := Floats(Name, k, a.X, nx)
	dy := Floats(Name, k, a.DY, a.N)
	dx := dest(k, a.DX, nx)
	if labels {
		lab := Ints(Name, k, a.Target, nt)
		if dx == nil {
			return
		}
		for i, g := range dy {
			l := int(lab[i])
			if l < 0 || g == 0 {
				continue
			}
			row := x[i*a.Classes : (i+1)*a.Classes]
			lz := logSumExp(row)
			for c, v := range row {
				dx[i*a.Classes+c] += float32(float64(g) * math.Exp(float64(v)-lz))
			}
			dx[i*a.Classes+l] -= g
		}
		return
	}
	t := Floats(Name, k, a.Target, nt)
	dt := dest(k, a.DTarget, nt)
	if a.Op == backend.LossGIoU {
		for i, g := range dy {
			if g == 0 {
				continue
			}
			dp, dq := giouBackward(x[4*i:4*i+4], t[4*i:4*i+4], -float64(g))
			for c := 0; c < 4; c++ {
				if dx != nil {
					dx[4*i+c] += float32(dp[c])
				}
				if dt != nil {
					dt[4*i+c] += float32(dq[c])
				}
			}
		}
		return
	}
	fwd := backend.LossArgs{Op: a.Op, Alpha: a.Alpha, Gamma: a.Gamma, Beta: a.Beta}
	for i, g := range dy {
		if g == 0 {
			continue
		}
		_, da, db := pairLoss(fwd, float64(x[i]), float64(t[i]))
		if dx != nil {
			dx[i] += g * float32(da)
		}
		if dt != nil {
			dt[i] += g * float32(db)
		}
	}
}

// PairwiseDistance implements backend.Backend.
func (r *Backend) PairwiseDistance(a backend.PairwiseDistanceArgs) {
	const k = "PairwiseDistance"
	if a.K < 0 || a.D < 0 {
		backend.Fail(Name, k, "negative size %d×%d", a.K, a.D)
	}
	x := Floats(Name, k, a.X, a.K*a.D)
	y := Floats(Name, k, a.Y, a.K*a.K)
	for i := 0; i < a.K; i++ {
		for j := 0; j < a.K; j++ {
			var s float64
			for c := 0; c < a.D; c++ {
				d := float64(x[i*a.D+c]) - float64(x[j*a.D+c])
				s += d * d
			}
			y[i*a.K+j] = float32(math.Sqrt(s))
		}
	}
}

// PairwiseDistanceBackward implements backend.Backend.
func (r *Backend) PairwiseDistanceBackward(a backend.PairwiseDistanceBackwardArgs) {
	const k = "PairwiseDistanceBackward"
	x := Floats(Name, k, a.X, a.K*a.D)
	y := Floats(Name, k, a.Y, a.K*a.K)
	dy := Floats(Name, k, a.DY, a.K*a.K)
	dx := dest(k, a.DX, a.K*a.D)
	if dx == nil {
		return
	}
	for i := 0; i < a.K; i++ {
		for j := 0; j < a.K; j++ {
			d := float64(y[i*a.K+j])
			if !(d > 0) {
				continue
			}
			g := (float64(dy[i*a.K+j]) + float64(dy[j*a.K+i])) / d
			for c := 0; c < a.D; c++ {
				dx[i*a.D+c] += float32(g * (float64(x[i*a.D+c]) - float64(x[j*a.D+c])))
			}
		}
	}
}
