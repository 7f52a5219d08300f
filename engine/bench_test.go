package engine_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// BenchmarkProbeTrainStep times forward and backward of the probe network of
// `gidedge bench engine` (without the optimizer) and reports the CPU time per
// step over all cores, which other load on a shared machine distorts less
// than wall time.
func BenchmarkProbeTrainStep(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := engine.RandN(rng, 1, 8, 3, 128, 128)
	var ws, bs []*engine.Tensor
	in := 3
	for _, ch := range []int{16, 32, 64, 128} {
		for range 2 {
			ws = append(ws, engine.RandN(rng, 0.1, ch, in, 3, 3).SetRequiresGrad(true))
			bs = append(bs, engine.Zeros(ch).SetRequiresGrad(true))
			in = ch
		}
	}
	step := func() {
		h := x
		for i := range ws {
			h = engine.ReLU(engine.Conv2d(h, ws[i], bs[i], engine.ConvOptions{Stride: 2 - i%2, Pad: 1}))
		}
		loss := engine.Mean(engine.Mul(h, h))
		for i := range ws {
			ws[i].ZeroGrad()
			bs[i].ZeroGrad()
		}
		loss.Backward()
		loss.Release()
	}
	for range 3 {
		step()
	}
	cpu0 := enginetest.CPUTime()
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.ReportMetric(float64((enginetest.CPUTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}
