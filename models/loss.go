package models

import (
	"errors"
	"fmt"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
)

// ErrTargets is wrapped by the error Loss returns for a target whose class
// the model does not have.
var ErrTargets = errors.New("models: target class out of range")

// Loss parts reported by Detector.Loss.
const (
	LossCls        = "cls"
	LossBox        = "box"
	LossCenterness = "ctr"
)

// Loss is the detector's training loss for outputs of a batch and its
// targets (one slice per image, input pixels; crowd boxes are not trained
// on: positions they would own are ignored). It returns the scalar to
// minimise and its parts by name (cls, box and, for FCOS, ctr; the
// two-stage family's parts are described at twoStageLoss):
//
//   - cls: sigmoid focal loss (α, γ from the config) over every position and
//     class except ignored ones, divided by the number of positives;
//   - box: RetinaNet smooth-L1 on encoded deltas or GIoU on decoded boxes,
//     over positives, divided by their number; FCOS GIoU weighted by the
//     centerness targets and divided by their sum; times box_weight;
//   - ctr (FCOS): binary cross-entropy of centerness over positives,
//     divided by their number.
//
// Targets are user data: a class outside 0..K−1 is returned as an error
// wrapping ErrTargets that names the image, the box, the class and K,
// before anything is computed. Target lists that do not match the batch
// size are a programmer error and panic with an *engine.OpError, as shape
// mistakes do.
func (d *Detector) Loss(o *Outputs, targets [][]dataset.Target) (*engine.Tensor, map[string]float32, error) {
	cfg := d.Config
	n := o.ClsLogits[0].Dim(0)
	if len(targets) != n {
		panic(&engine.OpError{Op: "models.Loss", Shapes: [][]int{o.ClsLogits[0].Shape()}, Err: engine.ErrShape, Detail: fmt.Sprintf("%d target lists for a batch of %d", len(targets), n)})
	}
	if err := checkTargetClasses(targets, cfg.NumClasses); err != nil {
		return nil, nil, err
	}
	if cfg.TwoStage() {
		return d.twoStageLoss(o, targets)
	}
	p := d.Priors(o.InputH, o.InputW)
	r, k := p.Len(), cfg.NumClasses
	cls, reg := Flatten(o)
	if cls.Dim(1) != r {
		panic(&engine.OpError{Op: "models.Loss", Shapes: [][]int{cls.Shape()}, Err: engine.ErrShape, Detail: fmt.Sprintf("outputs have %d positions, priors of %dx%d have %d", cls.Dim(1), o.InputH, o.InputW, r)})
	}

	clsTarget := make([]float32, n*r*k)
	var weight []float32 // per (position, class); nil when nothing is ignored
	var posRows, posLocal []int
	var posBoxes []float32
	for i, ts := range targets {
		boxes := make([]float32, 0, 4*len(ts))
		for _, t := range ts {
			boxes = append(boxes, float32(t.Box.X1), float32(t.Box.Y1), float32(t.Box.X2), float32(t.Box.Y2))
		}
		for pos, a := range d.Assign(p, boxes) {
			row := i*r + pos
			if a == Ignored || (a >= 0 && ts[a].Crowd) {
				if weight == nil {
					weight = make([]float32, n*r*k)
					for q := range weight {
						weight[q] = 1
					}
				}
				clear(weight[row*k : (row+1)*k])
				continue
			}
			if a < 0 {
				continue
			}
			clsTarget[row*k+ts[a].Class] = 1
			posRows = append(posRows, row)
			posLocal = append(posLocal, pos)
			posBoxes = append(posBoxes, boxes[4*a:4*a+4]...)
		}
	}
	numPos := float32(max(1, len(posRows)))
	parts := map[string]float32{}

	focal := engine.SigmoidFocalLoss(cls, engine.FromHost(clsTarget, n, r, k), cfg.Loss.FocalAlpha, cfg.Loss.FocalGamma)
	if weight != nil {
		focal = engine.Mul(focal, engine.FromHost(weight, n, r, k))
	}
	total := engine.MulScalar(engine.Sum(focal), 1/numPos)
	parts[LossCls] = total.Item()
	parts[LossBox] = 0
	if cfg.Family == FamilyFCOS {
		parts[LossCenterness] = 0
	}
	if len(posRows) == 0 {
		return total, parts, nil
	}

	np := len(posRows)
	regPos := engine.IndexSelect(engine.Reshape(reg, n*r, 4), 0, posRows)
	var boxLoss *engine.Tensor
	switch {
	case cfg.Family == FamilyFCOS:
		ctrTarget := make([]float32, np)
		var ctrSum float32
		for q, pos := range posLocal {
			ctrTarget[q] = Centerness(p.Points[2*pos], p.Points[2*pos+1], posBoxes[4*q:4*q+4])
			ctrSum += ctrTarget[q]
		}
		giou := engine.GIoULoss(d.decodeRows(regPos, posLocal, p), engine.FromHost(posBoxes, np, 4))
		boxLoss = engine.MulScalar(engine.Sum(engine.Mul(giou, engine.FromHost(ctrTarget, np))), 1/max(ctrSum, 1e-6))
		ctrPos := engine.IndexSelect(engine.Reshape(FlattenCenterness(o), n*r, 1), 0, posRows)
		ctrLoss := engine.MulScalar(engine.Sum(engine.BCEWithLogits(ctrPos, engine.FromHost(ctrTarget, np, 1))), 1/numPos)
		parts[LossCenterness] = ctrLoss.Item()
		total = engine.Add(total, ctrLoss)
	case cfg.Loss.Box == BoxLossGIoU:
		giou := engine.GIoULoss(d.decodeRows(regPos, posLocal, p), engine.FromHost(posBoxes, np, 4))
		boxLoss = engine.MulScalar(engine.Sum(giou), 1/numPos)
	default:
		anchors := make([]float32, 0, 4*np)
		for _, pos := range posLocal {
			anchors = append(anchors, p.Anchors[4*pos:4*pos+4]...)
		}
		deltas := EncodeDeltas(anchors, posBoxes, cfg.Loss.BoxCoderWeights)
		sl1 := engine.SmoothL1Loss(regPos, engine.FromHost(deltas, np, 4), cfg.Loss.SmoothL1Beta)
		boxLoss = engine.MulScalar(engine.Sum(sl1), 1/numPos)
	}
	boxLoss = engine.MulScalar(boxLoss, cfg.Loss.BoxWeight)
	parts[LossBox] = boxLoss.Item()
	return engine.Add(total, boxLoss), parts, nil
}

// checkTargetClasses returns an error for the first target whose class is
// not one of the model's k classes.
func checkTargetClasses(targets [][]dataset.Target, k int) error {
	for i, ts := range targets {
		for j, t := range ts {
			if t.Class < 0 || t.Class >= k {
				return fmt.Errorf("%w: image %d of the batch, box %d has class %d; the model has %d classes (0..%d)", ErrTargets, i, j, t.Class, k, k-1)
			}
		}
	}
	return nil
}
