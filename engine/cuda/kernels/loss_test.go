package kernels_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func TestSigmoidFocalMatchesEngine(t *testing.T) {
	params := [][2]float32{{0.25, 2}, {-1, 2}, {0.25, 0}, {0.5, 1}, {0.25, 1.5}}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, p := range params {
			t.Run(fmt.Sprintf("alpha=%v gamma=%v", p[0], p[1]), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(19, uint64(p[1]*10)))
				const n = 211
				x := randn(rng, n, 3)
				tg := make([]float32, n)
				for i := range tg {
					switch i % 3 {
					case 0:
						tg[i] = 1
					case 1:
						tg[i] = rng.Float32() // soft targets
					}
				}
				gy, gx0 := randn(rng, n, 1), randn(rng, n, 1)
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.SigmoidFocalLoss(in[0], in[1], p[0], p[1]) }, gy, tns(x, n), konst(tg, n))
				xp, tp := d.put(t, x), d.put(t, tg)
				y := d.put(t, make([]float32, n))
				run(t, d, "gidedge_sigmoid_focal_forward", small(n), ptr(y), ptr(xp), ptr(tp), f32(p[0]), f32(p[1]), i32(n))
				near(t, "loss", d.get(t, y, n), want, 1e-5, 1e-4)
				gx := d.put(t, gx0)
				run(t, d, "gidedge_sigmoid_focal_backward", small(n), ptr(gx), ptr(d.put(t, gy)), ptr(xp), ptr(tp), f32(p[0]), f32(p[1]), f32(1), i32(n))
				for i := range grads[0] {
					grads[0][i] += gx0[i]
				}
				near(t, "gx", d.get(t, gx, n), grads[0], 1e-5, 1e-4)
			})
		}
	})
}

func TestPairLossesMatchEngine(t *testing.T) {
	cases := []struct {
		name  string
		op    int
		param float32
		f     func(a, b *engine.Tensor) *engine.Tensor
		soft  bool // b is a probability
	}{
		{"bce", kernels.LossBCELogits, 0, engine.BCEWithLogits, true},
		{"l1", kernels.LossL1, 0, engine.L1Loss, false},
		{"smooth l1", kernels.LossSmoothL1, 0.3, func(a, b *engine.Tensor) *engine.Tensor { return engine.SmoothL1Loss(a, b, 0.3) }, false},
		{"smooth l1 beta 0", kernels.LossSmoothL1, 0, func(a, b *engine.Tensor) *engine.Tensor { return engine.SmoothL1Loss(a, b, 0) }, false},
		{"mse", kernels.LossMSE, 0, engine.MSELoss, false},
	}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(20, uint64(c.op)))
				const n = 157
				a, b := randn(rng, n, 2), randn(rng, n, 1)
				if c.soft {
					b = randu(rng, n, 0, 1)
				}
				b[0] = a[0] // a zero difference: derivative 0 for L1
				gy := randn(rng, n, 1)
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return c.f(in[0], in[1]) }, gy, tns(a, n), tns(b, n))
				ap, bp := d.put(t, a), d.put(t, b)
				y := d.put(t, make([]float32, n))
				run(t, d, "gidedge_pair_loss", small(n), ptr(y), ptr(ap), ptr(bp), i32(c.op), f32(c.param), i32(n))
				near(t, "loss", d.get(t, y, n), want, 1e-5, 1e-5)
				ga, gb := d.put(t, make([]float32, n)), d.put(t, make([]float32, n))
				run(t, d, "gidedge_pair_loss_backward", small(n), ptr(ga), ptr(gb), ptr(d.put(t, gy)), ptr(ap), ptr(bp), i32(c.op), f32(c.param), f32(0), i32(n))
				near(t, "ga", d.get(t, ga, n), grads[0], 1e-5, 1e-5)
				near(t, "gb", d.get(t, gb, n), grads[1], 1e-5, 1e-5)
			})
		}
	})
}

func TestGIoUMatchesEngine(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(21, 1))
		const n = 41
		box := func() []float32 {
			out := make([]float32, 4*n)
			for i := 0; i < n; i++ {
				x, y := rng.Float32()*50, rng.Float32()*50
				out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = x, y, x+1+rng.Float32()*30, y+1+rng.Float32()*30
			}
			return out
		}
		p, tg := box(), box()
		copy(p[:4], tg[:4])                   // identical boxes
		copy(p[4:8], []float32{0, 0, 10, 10}) // disjoint boxes
		copy(tg[4:8], []float32{20, 20, 30, 30})
		copy(p[8:12], []float32{0, 0, 10, 10}) // one inside the other
		copy(tg[8:12], []float32{2, 3, 7, 8})
		gy := randn(rng, n, 1)
		want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.GIoULoss(in[0], in[1]) }, gy, tns(p, n, 4), tns(tg, n, 4))
		pp, tp := d.put(t, p), d.put(t, tg)
		y := d.put(t, make([]float32, n))
		run(t, d, "gidedge_giou_forward", small(n), ptr(y), ptr(pp), ptr(tp), i32(n))
		near(t, "loss", d.get(t, y, n), want, 1e-5, 1e-4)
		gp, gt := d.put(t, make([]float32, 4*n)), d.put(t, make([]float32, 4*n))
		run(t, d, "gidedge_giou_backward", small(n), ptr(gp), ptr(gt), ptr(d.put(t, gy)), ptr(pp), ptr(tp), f32(0), i32(n))
		near(t, "gp", d.get(t, gp, 4*n), grads[0], 1e-5, 2e-3)
		near(t, "gt", d.get(t, gt, 4*n), grads[1], 1e-5, 2e-3)
	})
}
