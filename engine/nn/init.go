package nn

import (
	"math"
	"math/rand/v2"

	"github.com/gidedge/gidedge/engine"
)

// Initialisers draw on the host and upload (see draw).

// KaimingNormal fills t with N(0, 2/fan) (He et al., ReLU gain).
func KaimingNormal(rng *rand.Rand, t *engine.Tensor, fan int) {
	Normal(rng, t, math.Sqrt(2/float64(fan)))
}

// XavierUniform fills t with U(−a, a), a = √(6/(fanIn+fanOut)).
func XavierUniform(rng *rand.Rand, t *engine.Tensor, fanIn, fanOut int) {
	a := math.Sqrt(6 / float64(fanIn+fanOut))
	draw(t, func() float64 { return (2*rng.Float64() - 1) * a })
}

// Normal fills t with N(0, std²).
func Normal(rng *rand.Rand, t *engine.Tensor, std float64) {
	draw(t, func() float64 { return rng.NormFloat64() * std })
}

// draw fills t with samples drawn on the host, in row-major order, and
// uploads them: one seed gives the same weights on every device.
func draw(t *engine.Tensor, sample func() float64) {
	v := make([]float32, t.Len())
	for i := range v {
		v[i] = float32(sample())
	}
	t.CopyFromHost(v)
}

// PriorProbBias returns the bias that makes sigmoid output p at start,
// −log((1−p)/p), as RetinaNet initialises its classification head.
func PriorProbBias(p float64) float32 {
	return float32(-math.Log((1 - p) / p))
}

// Fill sets every element of t to v.
func Fill(t *engine.Tensor, v float32) { t.Fill(v) }

// XavierNormal fills t with N(0, 2/(fanIn+fanOut)) (Glorot, linear gain).
func XavierNormal(rng *rand.Rand, t *engine.Tensor, fanIn, fanOut int) {
	Normal(rng, t, math.Sqrt(2/float64(fanIn+fanOut)))
}

// KaimingUniform fills t with U(−b, b), b = √(6/fan) (He, ReLU gain).
func KaimingUniform(rng *rand.Rand, t *engine.Tensor, fan int) {
	Uniform(rng, t, -math.Sqrt(6/float64(fan)), math.Sqrt(6/float64(fan)))
}

// Uniform fills t with U(lo, hi).
func Uniform(rng *rand.Rand, t *engine.Tensor, lo, hi float64) {
	draw(t, func() float64 { return lo + (hi-lo)*rng.Float64() })
}

// ConvFans returns the fan-in and fan-out of a convolution weight
// [Cout, Cin/groups, KH, KW] (or a linear weight [Out, In]), as PyTorch
// computes them for its initialisers.
func ConvFans(t *engine.Tensor) (fanIn, fanOut int) {
	s := t.Shape()
	if len(s) < 2 {
		return t.Len(), t.Len()
	}
	receptive := 1
	for _, d := range s[2:] {
		receptive *= d
	}
	return s[1] * receptive, s[0] * receptive
}
