package engine_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// apart nudges b so that no pair (a[i], b[i]) lies within gap of each other,
// keeping finite differences away from the kink of |a − b|.
func apart(a, b *engine.Tensor, gap float32) {
	av := a.ToHost()
	enginetest.Edit(b, func(bv []float32) {
		for i, x := range av {
			if d := bv[i] - x; d < gap && d > -gap {
				bv[i] = x + 2*gap
			}
		}
	})
}

func TestLossValues(t *testing.T) {
	ln2 := float32(math.Ln2)
	cases := []struct {
		name string
		got  func() *engine.Tensor
		want []float32
	}{
		{"BCEWithLogits", func() *engine.Tensor {
			return engine.BCEWithLogits(engine.FromHost([]float32{0, 2, -3}, 3), engine.FromHost([]float32{0.5, 1, 0}, 3))
		}, []float32{ln2, float32(math.Log1p(math.Exp(-2))), float32(math.Log1p(math.Exp(-3)))}},
		{"SigmoidFocalLoss", func() *engine.Tensor {
			return engine.SigmoidFocalLoss(engine.FromHost([]float32{0, 0}, 2), engine.FromHost([]float32{1, 0}, 2), 0.25, 2)
		}, []float32{ln2 * 0.25 * 0.25, ln2 * 0.25 * 0.75}},
		{"SigmoidFocalLossNoAlpha", func() *engine.Tensor {
			return engine.SigmoidFocalLoss(engine.FromHost([]float32{0}, 1), engine.FromHost([]float32{1}, 1), -1, 0)
		}, []float32{ln2}},
		{"CrossEntropy", func() *engine.Tensor {
			return engine.CrossEntropy(engine.FromHost([]float32{1, 2, 3, 0, 0, 0}, 2, 3), []int{2, -1})
		}, []float32{float32(math.Log(math.E+math.Exp(2)+math.Exp(3)) - 3), 0}},
		{"L1Loss", func() *engine.Tensor {
			return engine.L1Loss(engine.FromHost([]float32{1, -2}, 2), engine.FromHost([]float32{3, 1}, 2))
		}, []float32{2, 3}},
		{"SmoothL1Loss", func() *engine.Tensor {
			return engine.SmoothL1Loss(engine.FromHost([]float32{0, 0, 0}, 3), engine.FromHost([]float32{0.5, 2, -1.5}, 3), 1)
		}, []float32{0.125, 1.5, 1}},
		{"MSELoss", func() *engine.Tensor {
			return engine.MSELoss(engine.FromHost([]float32{1, -2}, 2), engine.FromHost([]float32{3, 1}, 2))
		}, []float32{4, 9}},
		{"GIoULoss", func() *engine.Tensor {
			return engine.GIoULoss(
				engine.FromHost([]float32{0, 0, 2, 2, 0, 0, 1, 1, 0, 0, 4, 4}, 3, 4),
				engine.FromHost([]float32{1, 1, 3, 3, 2, 0, 3, 1, 0, 0, 4, 4}, 3, 4))
		}, []float32{1 - (1.0/7 - 2.0/9), 1 + 1.0/3, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.got().ToHost()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d values, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				if d := got[i] - w; d > 1e-5 || d < -1e-5 {
					t.Errorf("element %d: got %.7g want %.7g", i, got[i], w)
				}
			}
		})
	}
}

func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tol := enginetest.DefaultTolerance
	for _, shape := range [][]int{{7}, {3, 5}, {2, 3, 1, 5}} {
		a := enginetest.Param(rng, 1.5, shape...)
		b := enginetest.Param(rng, 1.5, shape...)
		apart(a, b, 0.05)
		soft := engine.RandU(rng, 0, 1, shape...)
		hard := engine.RandU(rng, 0, 1, shape...)
		enginetest.Edit(hard, func(v []float32) {
			for i := range v {
				v[i] = float32(math.Round(float64(v[i])))
			}
		})
		name := enginetest.Describe(shape)
		enginetest.GradCheck(t, "BCEWithLogits"+name, tol, func() *engine.Tensor { return engine.BCEWithLogits(a, b) }, a, b)
		enginetest.GradCheck(t, "BCEWithLogitsSoft"+name, tol, func() *engine.Tensor { return engine.BCEWithLogits(a, soft) }, a)
		for _, gamma := range []float32{0, 1, 2, 1.5} {
			enginetest.GradCheck(t, "SigmoidFocalLossHard"+name, tol, func() *engine.Tensor { return engine.SigmoidFocalLoss(a, hard, 0.25, gamma) }, a)
			enginetest.GradCheck(t, "SigmoidFocalLossSoft"+name, tol, func() *engine.Tensor { return engine.SigmoidFocalLoss(a, soft, -1, gamma) }, a)
		}
		enginetest.GradCheck(t, "L1Loss"+name, tol, func() *engine.Tensor { return engine.L1Loss(a, b) }, a, b)
		enginetest.GradCheck(t, "SmoothL1Loss"+name, tol, func() *engine.Tensor { return engine.SmoothL1Loss(a, b, 0.7) }, a, b)
		enginetest.GradCheck(t, "SmoothL1LossBeta0"+name, tol, func() *engine.Tensor { return engine.SmoothL1Loss(a, b, 0) }, a, b)
		enginetest.GradCheck(t, "MSELoss"+name, tol, func() *engine.Tensor { return engine.MSELoss(a, b) }, a, b)
	}
	logits := enginetest.Param(rng, 2, 5, 7)
	enginetest.GradCheck(t, "CrossEntropy", tol, func() *engine.Tensor {
		return engine.CrossEntropy(logits, []int{0, 6, -1, 3, 3})
	}, logits)
}

// randomBoxes returns n boxes with corners at least gap apart from the
// matching corners of other (so finite differences never cross a min/max tie).
func randomBoxes(rng *rand.Rand, n int) []float32 {
	out := make([]float32, 0, n*4)
	for i := 0; i < n; i++ {
		x, y := rng.Float32()*8, rng.Float32()*8
		w, h := 1+rng.Float32()*6, 1+rng.Float32()*6
		out = append(out, x, y, x+w, y+h)
	}
	return out
}

func TestGIoULossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	const n = 24
	p := randomBoxes(rng, n)
	q := randomBoxes(rng, n)
	// Keep each coordinate pair at least 0.1 apart: min/max switch there.
	for i := range p {
		if d := p[i] - q[i]; d < 0.1 && d > -0.1 {
			q[i] += 0.3
		}
	}
	// Make row 0 disjoint and row 1 nested to cover both extremes.
	copy(p[0:4], []float32{0, 0, 1, 1})
	copy(q[0:4], []float32{3, 2, 5, 4})
	copy(p[4:8], []float32{1, 1, 2, 3})
	copy(q[4:8], []float32{0, 0, 4, 4})
	pred := engine.FromHost(p, n, 4).SetRequiresGrad(true)
	target := engine.FromHost(q, n, 4).SetRequiresGrad(true)
	tol := enginetest.DefaultTolerance
	tol.MaxElements = 0
	tol.Step = 1e-3
	tol.Abs = 5e-3
	enginetest.GradCheck(t, "GIoULoss", tol, func() *engine.Tensor { return engine.GIoULoss(pred, target) }, pred, target)
}

func TestLossShapeErrors(t *testing.T) {
	a, b := engine.Zeros(2, 3), engine.Zeros(3, 2)
	cases := map[string]func(){
		"MSELoss":          func() { engine.MSELoss(a, b) },
		"L1Loss":           func() { engine.L1Loss(a, b) },
		"SmoothL1Loss":     func() { engine.SmoothL1Loss(a, b, 1) },
		"BCEWithLogits":    func() { engine.BCEWithLogits(a, b) },
		"SigmoidFocalLoss": func() { engine.SigmoidFocalLoss(a, b, 0.25, 2) },
		"GIoULoss":         func() { engine.GIoULoss(a, b) },
		"CrossEntropy":     func() { engine.CrossEntropy(a, []int{0, 3}) },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			err := engine.Guard(func() error { fn(); return nil })
			if !errors.Is(err, engine.ErrShape) {
				t.Fatalf("got %v, want a shape error", err)
			}
			if !strings.Contains(err.Error(), "engine: "+name+":") || !strings.Contains(err.Error(), "[2 3]") {
				t.Fatalf("error %q does not name the op and shapes", err)
			}
		})
	}
}
