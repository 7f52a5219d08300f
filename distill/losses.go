package distill

import (
	"fmt"
	"math"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/models"
)

// The loss functions below work on tensors already gathered for the GIs;
// the Distiller does the gathering. Teacher tensors are constants (no
// gradient); student tensors carry the graph back to the student and the
// adaptation layers.

// LevelFor returns the index (0 = finest) of the pyramid level a box is
// distilled on: k = ⌊k0 + log2(√(wh)/s0)⌋ clamped to levels (pyramid
// indices, e.g. [3 4 5]).
//
// FPN's canonical k0 = 4, s0 = 224 was set for 800-pixel images and
// ImageNet-sized regions; on gidedge's 320-pixel inputs it would put every
// box under 112 pixels (nearly all of them) on P3. gidedge keeps k0 = 4 and
// takes s0 from the detector (AutoS0): for the RetinaNet configs s0 = 48, so
// boxes under 48 pixels go to P3, 48–96 to P4 and larger ones to P5, each GI
// landing on the level whose anchors (base sizes 24, 48, 96) the detector
// itself would match it with.
func LevelFor(b [4]float32, k0 int, s0 float32, levels []int) int {
	size := math.Sqrt(float64(max(b[2]-b[0], 0)) * float64(max(b[3]-b[1], 0)))
	k := levels[0]
	if size > 0 {
		k = int(math.Floor(float64(k0) + math.Log2(size/float64(s0))))
	}
	k = min(max(k, levels[0]), levels[len(levels)-1])
	return k - levels[0]
}

// AutoS0 is the default s0 of the level rule for a detector: the size from
// which its own assigner puts objects on P4. RetinaNet and the two-stage
// family's RPN (whose boxes the GIs are): the base anchor size of P4.
// FCOS: twice the lower bound of P4's size range (a box's largest
// centre-to-side distance is half its side).
func AutoS0(cfg models.Config) float32 {
	if cfg.Family == models.FamilyFCOS {
		if len(cfg.Assigner.SizeRanges) > 1 && cfg.Assigner.SizeRanges[1][0] > 0 {
			return 2 * cfg.Assigner.SizeRanges[1][0]
		}
	} else if len(cfg.Anchors.Sizes) > 1 {
		return cfg.Anchors.Sizes[1]
	}
	return 48
}

// FeatureLoss is GID's feature loss for ROI features of the same G GIs,
// student (after adaptation) and teacher, both [G, C, S, S]: the squared
// error averaged over each GI's C·S² elements, then over the G GIs.
func FeatureLoss(student, teacher *engine.Tensor) *engine.Tensor {
	return engine.Mean(engine.MSELoss(student, teacher))
}

// distanceFloor is the smallest distance counted as non-zero when the
// distances are normalised.
const distanceFloor = 1e-5

// PairwiseDistances returns the Euclidean distances between the rows of
// f [K, D] as a [K, K] tensor with a zero diagonal, inside the graph (the
// engine's pairwise-distance kernel: exact differences, no Gram-matrix
// cancellation, a zero gradient at zero distance).
func PairwiseDistances(f *engine.Tensor) *engine.Tensor {
	if f.Rank() != 2 {
		panic(&engine.OpError{Op: "distill.PairwiseDistances", Shapes: [][]int{f.Shape()}, Err: engine.ErrShape, Detail: "features must be [K, D]"})
	}
	return engine.PairwiseDistances(f)
}

// normalised returns ψ = d / μ for pairwise distances d [K, K] (zero
// diagonal), μ being the mean of the nonZero off-diagonal distances.
func normalised(d *engine.Tensor, nonZero int) *engine.Tensor {
	mu := engine.MulScalar(engine.Sum(d), 1/float32(nonZero))
	return engine.Div(d, mu)
}

// countNonZero returns, for each distance matrix, how many entries exceed
// distanceFloor, reading all of them to the host in one transfer.
func countNonZero(ds []*engine.Tensor) []int {
	counts := make([]int, len(ds))
	if len(ds) == 0 {
		return counts
	}
	var all []float32
	engine.NoGrad(func() {
		flat := make([]*engine.Tensor, len(ds))
		for i, d := range ds {
			flat[i] = engine.Reshape(d.Detach(), -1)
		}
		all = engine.Concat(0, flat...).ToHost()
	})
	at := 0
	for i, d := range ds {
		for _, v := range all[at : at+d.Len()] {
			if v > distanceFloor {
				counts[i]++
			}
		}
		at += d.Len()
	}
	return counts
}

// RelationLoss is GID's relation loss. student and teacher are [G, D]
// features of the same GIs (rows in the same order); groups lists the
// [start, end) row ranges whose GIs are related to each other (one per
// image, or one for the whole batch). For each group of K ≥ 2 GIs the
// pairwise Euclidean distances of each model are divided by their mean
// non-zero distance, and the smooth-L1 (β = 1) difference of the two
// matrices is summed over i ≠ j and divided by K². The result is the mean
// over the groups that have a loss; a zero scalar when none has.
func RelationLoss(student, teacher *engine.Tensor, groups [][2]int) *engine.Tensor {
	if student.Rank() != 2 || teacher.Rank() != 2 || student.Dim(0) != teacher.Dim(0) {
		panic(&engine.OpError{Op: "distill.RelationLoss", Shapes: [][]int{student.Shape(), teacher.Shape()}, Err: engine.ErrShape, Detail: "student and teacher features must be [G, D] with the same G"})
	}
	// All groups' distances first, so that counting their non-zero
	// entries is one host read per step rather than two per group.
	var sd, td []*engine.Tensor
	var sizes []int
	for _, g := range groups {
		k := g[1] - g[0]
		if k < 2 {
			continue
		}
		if g[0] < 0 || g[1] > student.Dim(0) {
			panic(&engine.OpError{Op: "distill.RelationLoss", Shapes: [][]int{student.Shape()}, Err: engine.ErrShape, Detail: fmt.Sprintf("group %v outside the %d rows", g, student.Dim(0))})
		}
		sd = append(sd, PairwiseDistances(engine.Slice(student, 0, g[0], g[1])))
		engine.NoGrad(func() { td = append(td, PairwiseDistances(engine.Slice(teacher, 0, g[0], g[1]))) })
		sizes = append(sizes, k)
	}
	counts := countNonZero(append(append([]*engine.Tensor(nil), sd...), td...))
	var total *engine.Tensor
	used := 0
	for i, k := range sizes {
		nS, nT := counts[i], counts[len(sd)+i]
		if nS == 0 || nT == 0 {
			continue
		}
		var psiT *engine.Tensor
		engine.NoGrad(func() { psiT = normalised(td[i], nT) })
		psiS := normalised(sd[i], nS)
		// Both diagonals are zero, so the sum runs over i ≠ j.
		l := engine.MulScalar(engine.Sum(engine.SmoothL1Loss(psiS, psiT, 1)), 1/float32(k*k))
		if total == nil {
			total = l
		} else {
			total = engine.Add(total, l)
		}
		used++
	}
	if total == nil {
		return engine.Scalar(0)
	}
	return engine.MulScalar(total, 1/float32(used))
}

// ResponseLoss is GID's response loss over the M masked positions:
// studentCls [M, K] logits against teacherProb [M, K] probabilities by
// binary cross-entropy, and studentReg against teacherReg [M, 4] (raw box
// regression) by L1, each summed and divided by M. A zero M gives zeros.
func ResponseLoss(studentCls, teacherProb, studentReg, teacherReg *engine.Tensor) (cls, reg *engine.Tensor) {
	m := studentCls.Dim(0)
	if m == 0 {
		return engine.Scalar(0), engine.Scalar(0)
	}
	inv := 1 / float32(m)
	cls = engine.MulScalar(engine.Sum(engine.BCEWithLogits(studentCls, teacherProb)), inv)
	reg = engine.MulScalar(engine.Sum(engine.L1Loss(studentReg, teacherReg)), inv)
	return cls, reg
}

// ROIResponseLoss is GID's response loss on the box heads of a two-stage
// pair, both run on the same G regions: class logits studentCls and
// teacherCls [G, K+1] (background last) and class-specific deltas
// studentReg and teacherReg [G, 4·K]. With p_t and p_s the two softmax
// distributions,
//
//	cls = KL(p_t ‖ p_s) = Σ_c p_t,c · (log p_t,c − log p_s,c),
//	reg = Σ_{c<K} p_t,c · Σ_j |s_c,j − t_c,j|,
//
// each averaged over the G regions. The head is a softmax classifier over
// exclusive classes, so its soft labels are a distribution and KL (Hinton's
// distillation loss at temperature 1) compares it as one; its gradient is
// the soft-label cross-entropy's. The deltas of class c only matter where
// the region is of class c, so each class's L1 is weighted by the
// teacher's probability of it (the background has no deltas). The teacher
// tensors are constants; a zero G gives zeros.
func ROIResponseLoss(studentCls, teacherCls, studentReg, teacherReg *engine.Tensor) (cls, reg *engine.Tensor) {
	g := studentCls.Dim(0)
	if studentCls.Rank() != 2 || teacherCls.Rank() != 2 || studentReg.Rank() != 2 || teacherReg.Rank() != 2 ||
		teacherCls.Dim(0) != g || studentReg.Dim(0) != g || teacherReg.Dim(0) != g ||
		teacherCls.Dim(1) != studentCls.Dim(1) || studentReg.Dim(1) != teacherReg.Dim(1) || studentReg.Dim(1) != 4*(studentCls.Dim(1)-1) {
		panic(&engine.OpError{Op: "distill.ROIResponseLoss", Shapes: [][]int{studentCls.Shape(), teacherCls.Shape(), studentReg.Shape(), teacherReg.Shape()}, Err: engine.ErrShape,
			Detail: "want class logits [G, K+1] and deltas [G, 4K] of the same G regions"})
	}
	if g == 0 {
		return engine.Scalar(0), engine.Scalar(0)
	}
	k := studentCls.Dim(1) - 1
	var pt, logPt, weight *engine.Tensor
	engine.NoGrad(func() {
		pt = engine.Softmax(teacherCls.Detach(), 1)
		logPt = engine.LogSoftmax(teacherCls.Detach(), 1)
		weight = engine.Reshape(engine.Slice(pt, 1, 0, k), g, k, 1)
	})
	inv := 1 / float32(g)
	cls = engine.MulScalar(engine.Sum(engine.Mul(pt, engine.Sub(logPt, engine.LogSoftmax(studentCls, 1)))), inv)
	l1 := engine.L1Loss(engine.Reshape(studentReg, g, k, 4), engine.Reshape(teacherReg.Detach(), g, k, 4))
	reg = engine.MulScalar(engine.Sum(engine.Mul(l1, weight)), inv)
	return cls, reg
}

// FitNetLoss imitates whole feature maps: for each level the squared error
// between the adapted student map and the teacher map, averaged over its
// elements, then averaged over the levels.
func FitNetLoss(student, teacher []*engine.Tensor) *engine.Tensor {
	var total *engine.Tensor
	for l := range student {
		v := engine.Mean(engine.MSELoss(student[l], teacher[l]))
		if total == nil {
			total = v
		} else {
			total = engine.Add(total, v)
		}
	}
	return engine.MulScalar(total, 1/float32(len(student)))
}

// MaskedImitationLoss is fine-grained feature imitation: the squared error
// between adapted student and teacher maps ([N, C, H, W] per level) at the
// locations of the masks ([N, 1, H, W] per level, 0 or 1), summed over all
// levels and channels and divided by C times the number of masked
// locations. Wang et al. divide by 2·N_p; dividing by C·N_p as well makes
// the value a per-element mean, on the same scale as FeatureLoss.
func MaskedImitationLoss(student, teacher, masks []*engine.Tensor) *engine.Tensor {
	var total *engine.Tensor
	var count float64
	c := 0
	for l := range student {
		c = student[l].Dim(1)
		n := float64(engine.Sum(masks[l]).Item())
		if n == 0 {
			continue
		}
		count += n
		v := engine.Sum(engine.Mul(engine.MSELoss(student[l], teacher[l]), masks[l]))
		if total == nil {
			total = v
		} else {
			total = engine.Add(total, v)
		}
	}
	if total == nil {
		return engine.Scalar(0)
	}
	return engine.MulScalar(total, float32(1/(count*float64(c))))
}
