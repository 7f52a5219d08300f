package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cpu"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// The kernels a MobileNetV2 student is made of, at the shapes of
// retinanet-student at 160 px, batch 8, on one worker, with CPU time per
// op beside wall time:
//
//	go test ./engine/cpu -run - -bench . -benchtime 20x

func randomBuffer(b backend.Backend, rng *rand.Rand, n int) backend.Buffer {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	buf := b.Alloc(backend.Float32, n)
	b.FromHost(buf, v)
	return buf
}

// loop runs fn b.N times and reports CPU milliseconds per op.
func loop(b *testing.B, fn func()) {
	fn()
	cpu0 := enginetest.CPUTime()
	for b.Loop() {
		fn()
	}
	b.ReportMetric(float64((enginetest.CPUTime()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}

var studentDepthwise = []struct{ c, h, stride int }{{16, 80, 1}, {64, 80, 2}, {96, 40, 1}, {96, 40, 2}, {128, 20, 1}, {256, 10, 1}, {48, 20, 1}}

func BenchmarkDepthwise(b *testing.B) {
	be := cpu.New(1)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range studentDepthwise {
		o := (s.h+2-3)/s.stride + 1
		g := backend.ConvGeometry{N: 8, C: s.c, H: s.h, W: s.h, Cout: s.c, KernelH: 3, KernelW: 3, StrideH: s.stride, StrideW: s.stride,
			PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: s.c, OutH: o, OutW: o}
		x, w := randomBuffer(be, rng, 8*s.c*s.h*s.h), randomBuffer(be, rng, s.c*9)
		y, dy := be.Alloc(backend.Float32, 8*s.c*o*o), randomBuffer(be, rng, 8*s.c*o*o)
		dx, dw := be.Alloc(backend.Float32, 8*s.c*s.h*s.h), be.Alloc(backend.Float32, s.c*9)
		name := fmt.Sprintf("%dx%d²s%d", s.c, s.h, s.stride)
		b.Run(name+"/forward", func(b *testing.B) {
			loop(b, func() { be.Conv2d(backend.ConvArgs{Geometry: g, X: x, W: w, Y: y}) })
		})
		b.Run(name+"/backward", func(b *testing.B) {
			loop(b, func() {
				be.Conv2dBackward(backend.ConvBackwardArgs{Geometry: g, X: x, W: w, DY: dy, DX: backend.Dest{Buf: dx}, DW: backend.Dest{Buf: dw}})
			})
		})
	}
}

func BenchmarkBatchNorm(b *testing.B) {
	be := cpu.New(1)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct{ c, hw int }{{16, 6400}, {64, 6400}, {96, 1600}, {128, 400}, {48, 400}} {
		n := 8 * s.c * s.hw
		x, dy := randomBuffer(be, rng, n), randomBuffer(be, rng, n)
		y, dx := be.Alloc(backend.Float32, n), be.Alloc(backend.Float32, n)
		gamma, beta := randomBuffer(be, rng, s.c), randomBuffer(be, rng, s.c)
		rm, rv := randomBuffer(be, rng, s.c), randomBuffer(be, rng, s.c)
		mean, invStd := be.Alloc(backend.Float32, s.c), be.Alloc(backend.Float32, s.c)
		dg, db := be.Alloc(backend.Float32, s.c), be.Alloc(backend.Float32, s.c)
		name := fmt.Sprintf("%dx%d", s.c, s.hw)
		b.Run(name+"/forward", func(b *testing.B) {
			loop(b, func() {
				be.BatchNorm(backend.BatchNormArgs{N: 8, C: s.c, HW: s.hw, X: x, Y: y, Gamma: gamma, Beta: beta, RunningMean: rm, RunningVar: rv,
					Mean: mean, InvStd: invStd, Training: true, Momentum: 0.1, Eps: 1e-5})
			})
		})
		b.Run(name+"/backward", func(b *testing.B) {
			loop(b, func() {
				be.BatchNormBackward(backend.BatchNormBackwardArgs{N: 8, C: s.c, HW: s.hw, X: x, Gamma: gamma, DY: dy, Mean: mean, InvStd: invStd,
					DX: backend.Dest{Buf: dx}, DGamma: backend.Dest{Buf: dg}, DBeta: backend.Dest{Buf: db}, Training: true})
			})
		})
	}
}

// denseConvs are retinanet-teacher's 3×3 convolutions at 160 px, then the
// probe network's stride-2 ones (batch 8, 128 px).
var denseConvs = []struct{ cin, cout, h, stride int }{
	{3, 24, 160, 2}, {24, 32, 80, 2}, {32, 32, 40, 1}, {32, 80, 40, 2}, {80, 80, 20, 1},
	{80, 160, 20, 2}, {160, 160, 10, 1}, {160, 256, 10, 2}, {256, 256, 5, 1},
	{128, 128, 20, 1}, {128, 128, 10, 1}, {128, 128, 5, 1}, {128, 54, 20, 1},
	{3, 16, 128, 2}, {16, 32, 64, 2}, {32, 64, 32, 2}, {64, 128, 16, 2},
}

func BenchmarkConv(b *testing.B) {
	be := cpu.New(1)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range denseConvs {
		o := (s.h+2-3)/s.stride + 1
		g := backend.ConvGeometry{N: 8, C: s.cin, H: s.h, W: s.h, Cout: s.cout, KernelH: 3, KernelW: 3, StrideH: s.stride, StrideW: s.stride,
			PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1, OutH: o, OutW: o}
		x, w := randomBuffer(be, rng, 8*s.cin*s.h*s.h), randomBuffer(be, rng, s.cout*s.cin*9)
		y, dy := be.Alloc(backend.Float32, 8*s.cout*o*o), randomBuffer(be, rng, 8*s.cout*o*o)
		dx, dw := be.Alloc(backend.Float32, 8*s.cin*s.h*s.h), be.Alloc(backend.Float32, s.cout*s.cin*9)
		gflop := 2 * 8 * float64(s.cout*o*o) * float64(s.cin*9) / 1e9
		name := fmt.Sprintf("%d-%dx%d²s%d", s.cin, s.cout, s.h, s.stride)
		b.Run(name+"/forward", func(b *testing.B) {
			loop(b, func() { be.Conv2d(backend.ConvArgs{Geometry: g, X: x, W: w, Y: y}) })
			b.ReportMetric(gflop, "gflop")
		})
		b.Run(name+"/backward", func(b *testing.B) {
			loop(b, func() {
				be.Conv2dBackward(backend.ConvBackwardArgs{Geometry: g, X: x, W: w, DY: dy, DX: backend.Dest{Buf: dx}, DW: backend.Dest{Buf: dw}})
			})
			b.ReportMetric(2*gflop, "gflop")
		})
	}
}
