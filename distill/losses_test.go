package distill

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
	"github.com/gidedge/gidedge/models"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-5*max(1, math.Abs(want)) {
		t.Errorf("%s = %.8g, want %.8g", what, got, want)
	}
}

func TestLevelFor(t *testing.T) {
	levels := []int{3, 4, 5}
	for _, c := range []struct {
		side float32
		want int
	}{{8, 0}, {24, 0}, {47.9, 0}, {48, 1}, {95, 1}, {96, 2}, {300, 2}, {0, 0}} {
		if got := LevelFor([4]float32{10, 10, 10 + c.side, 10 + c.side}, 4, 48, levels); got != c.want {
			t.Errorf("LevelFor(side %v) = %d, want %d", c.side, got, c.want)
		}
	}
	// A 24×96 box has √(wh) = 48: P4.
	if got := LevelFor([4]float32{0, 0, 24, 96}, 4, 48, levels); got != 1 {
		t.Errorf("LevelFor(24×96) = %d, want 1", got)
	}
	for name, want := range map[string]float32{"retinanet-student": 48, "retinanet-tiny": 24, "fcos-student": 128, "fcos-tiny": 32} {
		cfg, err := models.Named(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := AutoS0(cfg); got != want {
			t.Errorf("AutoS0(%s) = %v, want %v", name, got, want)
		}
	}
	// FPN's canonical s0 = 224 sends a 100-pixel box to P3 at these levels.
	if got := LevelFor([4]float32{0, 0, 100, 100}, 4, 224, levels); got != 0 {
		t.Errorf("LevelFor(100, s0 224) = %d, want 0", got)
	}
}

func TestFeatureLoss(t *testing.T) {
	s := engine.FromHost([]float32{1, 2, 3, 4, 0, 0, 0, 0}, 2, 1, 2, 2)
	tt := engine.FromHost([]float32{1, 2, 3, 2, 1, 1, 1, 1}, 2, 1, 2, 2)
	// GI 0: mean of (0,0,0,4) = 1; GI 1: mean of (1,1,1,1) = 1 → 1.
	near(t, "FeatureLoss", float64(FeatureLoss(s, tt).Item()), 1)
}

func TestRelationLoss(t *testing.T) {
	// Teacher points 0, 1, 3 on a line: distances 1, 3, 2, mean 2, so
	// ψ_t = (0.5, 1.5, 1). Student points 0, 2, 4: distances 2, 4, 2, mean
	// 8/3, ψ_s = (0.75, 1.5, 0.75). Smooth L1 (β 1) of the differences
	// 0.25, 0, 0.25 is 0.03125, 0, 0.03125; both orders of each pair count,
	// divided by K² = 9: 0.125 / 9.
	teacher := engine.FromHost([]float32{0, 1, 3}, 3, 1)
	student := engine.FromHost([]float32{0, 2, 4}, 3, 1)
	near(t, "RelationLoss", float64(RelationLoss(student, teacher, [][2]int{{0, 3}}).Item()), 0.125/9)

	// Scale invariance: the normalisation removes a global factor.
	scaled := engine.FromHost([]float32{0, 10, 30}, 3, 1)
	near(t, "RelationLoss(teacher, 10·teacher)", float64(RelationLoss(scaled, teacher, [][2]int{{0, 3}}).Item()), 0)

	// Groups: the second group has one GI and no loss; the mean is over
	// the groups that have one.
	s2 := engine.FromHost([]float32{0, 2, 4, 7}, 4, 1)
	t2 := engine.FromHost([]float32{0, 1, 3, 5}, 4, 1)
	near(t, "RelationLoss(groups)", float64(RelationLoss(s2, t2, [][2]int{{0, 3}, {3, 4}}).Item()), 0.125/9)
	near(t, "RelationLoss(<2 GIs)", float64(RelationLoss(s2, t2, [][2]int{{0, 1}, {1, 2}}).Item()), 0)
	// Identical features everywhere: no non-zero distance, no loss.
	same := engine.FromHost([]float32{1, 1, 1, 1}, 2, 2)
	near(t, "RelationLoss(identical)", float64(RelationLoss(same, same, [][2]int{{0, 2}}).Item()), 0)
}

func TestPairwiseDistances(t *testing.T) {
	f := engine.FromHost([]float32{0, 0, 3, 4, 6, 8}, 3, 2)
	d := PairwiseDistances(f).ToHost()
	want := []float64{0, 5, 10, 5, 0, 5, 10, 5, 0}
	for i, w := range want {
		if math.Abs(float64(d[i])-w) > 1e-3 {
			t.Fatalf("distances %v, want %v", d, want)
		}
	}
}

func TestResponseLoss(t *testing.T) {
	// Logit 0 against probability 0.5: BCE ln 2 per element; 2 rows × 2
	// classes → 4 ln 2 / 2 rows. L1: |1−0| + |−2−2| over 2 rows (others 0).
	sCls := engine.Zeros(2, 2)
	tProb := engine.Full(0.5, 2, 2)
	sReg := engine.FromHost([]float32{1, 0, 0, 0, 0, -2, 0, 0}, 2, 4)
	tReg := engine.FromHost([]float32{0, 0, 0, 0, 0, 2, 0, 0}, 2, 4)
	cls, reg := ResponseLoss(sCls, tProb, sReg, tReg)
	near(t, "response cls", float64(cls.Item()), 2*math.Ln2)
	near(t, "response reg", float64(reg.Item()), 2.5)
	c0, r0 := ResponseLoss(engine.Zeros(0, 2), engine.Zeros(0, 2), engine.Zeros(0, 4), engine.Zeros(0, 4))
	if c0.Item() != 0 || r0.Item() != 0 {
		t.Errorf("empty mask gave %v, %v, want zeros", c0.Item(), r0.Item())
	}
}

func TestROIResponseLoss(t *testing.T) {
	// Two regions, two classes plus background. The teacher is uniform on
	// both (p_t = 1/3). Region 0: the student's logits (ln 2, 0, 0) give
	// p_s = (1/2, 1/4, 1/4), so KL = (ln(2/3) + 2·ln(4/3)) / 3; region 1
	// matches the teacher (KL 0). Deltas: |1| on class 0 of region 0 and
	// |2| on class 1 of region 1, each weighted by p_t = 1/3.
	tCls := engine.Zeros(2, 3)
	sCls := engine.FromHost([]float32{float32(math.Ln2), 0, 0, 0, 0, 0}, 2, 3)
	sReg := engine.FromHost([]float32{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0}, 2, 8)
	tReg := engine.Zeros(2, 8)
	cls, reg := ROIResponseLoss(sCls, tCls, sReg, tReg)
	near(t, "ROI response cls", float64(cls.Item()), (math.Log(2.0/3)+2*math.Log(4.0/3))/3/2)
	near(t, "ROI response reg", float64(reg.Item()), (1.0/3+2.0/3)/2)
	// A confident teacher: only its class's deltas count, and matching
	// logits give no classification loss.
	conf := engine.FromHost([]float32{-30, 30, -30}, 1, 3)
	cls, reg = ROIResponseLoss(conf, conf, engine.FromHost([]float32{5, 5, 5, 5, 0, 1, 0, 0}, 1, 8), engine.Zeros(1, 8))
	near(t, "ROI response cls (equal)", float64(cls.Item()), 0)
	near(t, "ROI response reg (class 1 only)", float64(reg.Item()), 1)
	c0, r0 := ROIResponseLoss(engine.Zeros(0, 3), engine.Zeros(0, 3), engine.Zeros(0, 8), engine.Zeros(0, 8))
	if c0.Item() != 0 || r0.Item() != 0 {
		t.Errorf("no regions gave %v, %v, want zeros", c0.Item(), r0.Item())
	}
}

func TestFitNetAndMaskedImitation(t *testing.T) {
	s := []*engine.Tensor{engine.Full(1, 1, 2, 2, 2), engine.Full(0, 1, 2, 1, 1)}
	tt := []*engine.Tensor{engine.Full(0, 1, 2, 2, 2), engine.Full(3, 1, 2, 1, 1)}
	// Level means 1 and 9 → 5.
	near(t, "FitNetLoss", float64(FitNetLoss(s, tt).Item()), 5)
	masks := []*engine.Tensor{engine.FromHost([]float32{1, 0, 0, 1}, 1, 1, 2, 2), engine.FromHost([]float32{0}, 1, 1, 1, 1)}
	// Two masked locations × 2 channels × error 1 = 4, over C·N_p = 4.
	near(t, "MaskedImitationLoss", float64(MaskedImitationLoss(s, tt, masks).Item()), 1)
	masks[0] = engine.Zeros(1, 1, 2, 2)
	near(t, "MaskedImitationLoss(empty)", float64(MaskedImitationLoss(s, tt, masks).Item()), 0)
}

// TestLossGradients checks every distillation loss against central finite
// differences with respect to the student's side.
func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tol := enginetest.DefaultTolerance
	scalar := func(v *engine.Tensor) *engine.Tensor { return engine.Reshape(v, 1) }

	sf := enginetest.Param(rng, 1, 3, 2, 2, 2)
	tf := engine.RandN(rng, 1, 3, 2, 2, 2)
	enginetest.GradCheck(t, "FeatureLoss", tol, func() *engine.Tensor { return scalar(FeatureLoss(sf, tf)) }, sf)

	sr := enginetest.Param(rng, 1, 5, 6)
	tr := engine.RandN(rng, 1, 5, 6)
	enginetest.GradCheck(t, "PairwiseDistances", tol, func() *engine.Tensor { return PairwiseDistances(sr) }, sr)
	for _, groups := range [][][2]int{{{0, 5}}, {{0, 2}, {2, 5}}} {
		enginetest.GradCheck(t, "RelationLoss", tol, func() *engine.Tensor { return scalar(RelationLoss(sr, tr, groups)) }, sr)
	}

	sc := enginetest.Param(rng, 2, 4, 3)
	tp := engine.RandU(rng, 0, 1, 4, 3)
	sg := enginetest.Param(rng, 1, 4, 4)
	tg := engine.RandN(rng, 1, 4, 4)
	enginetest.GradCheck(t, "ResponseLoss cls", tol, func() *engine.Tensor {
		c, _ := ResponseLoss(sc, tp, sg, tg)
		return scalar(c)
	}, sc)
	enginetest.GradCheck(t, "ResponseLoss reg", tol, func() *engine.Tensor {
		_, r := ResponseLoss(sc, tp, sg, tg)
		return scalar(r)
	}, sg)

	rc := enginetest.Param(rng, 1, 3, 4)
	rt := engine.RandN(rng, 2, 3, 4)
	rr := enginetest.Param(rng, 1, 3, 12)
	rtr := engine.RandN(rng, 1, 3, 12)
	enginetest.GradCheck(t, "ROIResponseLoss cls", tol, func() *engine.Tensor {
		c, _ := ROIResponseLoss(rc, rt, rr, rtr)
		return scalar(c)
	}, rc)
	enginetest.GradCheck(t, "ROIResponseLoss reg", tol, func() *engine.Tensor {
		_, r := ROIResponseLoss(rc, rt, rr, rtr)
		return scalar(r)
	}, rr)

	s0, s1 := enginetest.Param(rng, 1, 1, 2, 3, 3), enginetest.Param(rng, 1, 1, 2, 2, 2)
	t0, t1 := engine.RandN(rng, 1, 1, 2, 3, 3), engine.RandN(rng, 1, 1, 2, 2, 2)
	enginetest.GradCheck(t, "FitNetLoss", tol, func() *engine.Tensor {
		return scalar(FitNetLoss([]*engine.Tensor{s0, s1}, []*engine.Tensor{t0, t1}))
	}, s0, s1)
	m0 := engine.FromHost([]float32{1, 0, 1, 0, 0, 1, 1, 1, 0}, 1, 1, 3, 3)
	m1 := engine.FromHost([]float32{0, 1, 0, 0}, 1, 1, 2, 2)
	enginetest.GradCheck(t, "MaskedImitationLoss", tol, func() *engine.Tensor {
		return scalar(MaskedImitationLoss([]*engine.Tensor{s0, s1}, []*engine.Tensor{t0, t1}, []*engine.Tensor{m0, m1}))
	}, s0, s1)
}
