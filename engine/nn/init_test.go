package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
)

func moments(v []float32) (mean, std, lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		mean += float64(x)
		lo, hi = min(lo, float64(x)), max(hi, float64(x))
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (float64(x) - mean) * (float64(x) - mean)
	}
	return mean, math.Sqrt(std / float64(len(v))), lo, hi
}

func TestInitialisers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := engine.Zeros(64, 32, 3, 3)
	fanIn, fanOut := ConvFans(w)
	if fanIn != 288 || fanOut != 576 {
		t.Fatalf("fans %d, %d; want 288, 576", fanIn, fanOut)
	}
	cases := []struct {
		name       string
		fill       func()
		std, bound float64 // expected std; bound > 0 for uniform ranges
	}{
		{"KaimingNormal", func() { KaimingNormal(rng, w, fanIn) }, math.Sqrt(2.0 / 288), 0},
		{"KaimingUniform", func() { KaimingUniform(rng, w, fanIn) }, math.Sqrt(2.0 / 288), math.Sqrt(6.0 / 288)},
		{"XavierNormal", func() { XavierNormal(rng, w, fanIn, fanOut) }, math.Sqrt(2.0 / 864), 0},
		{"XavierUniform", func() { XavierUniform(rng, w, fanIn, fanOut) }, math.Sqrt(2.0 / 864), math.Sqrt(6.0 / 864)},
		{"Normal", func() { Normal(rng, w, 0.01) }, 0.01, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.fill()
			mean, std, lo, hi := moments(w.ToHost())
			if math.Abs(mean) > 0.05*tc.std || math.Abs(std-tc.std) > 0.03*tc.std {
				t.Fatalf("mean %.4g std %.4g, want 0 and %.4g", mean, std, tc.std)
			}
			if tc.bound > 0 && (lo < -tc.bound || hi > tc.bound) {
				t.Fatalf("range [%.4g, %.4g] exceeds ±%.4g", lo, hi, tc.bound)
			}
		})
	}
	b := PriorProbBias(0.01)
	if p := 1 / (1 + math.Exp(-float64(b))); math.Abs(p-0.01) > 1e-6 {
		t.Fatalf("sigmoid(PriorProbBias(0.01)) = %v", p)
	}
}
