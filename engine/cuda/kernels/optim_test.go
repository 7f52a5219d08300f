package kernels_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/engine/optim"
)

// paramWithGrad is a parameter of value p whose gradient is g.
func paramWithGrad(p, g []float32) nn.Named {
	t := engine.FromHost(slices.Clone(p), len(p)).SetRequiresGrad(true)
	engine.Sum(engine.Mul(t, engine.FromHost(slices.Clone(g), len(g)))).Backward()
	return nn.Named{Name: "w", Tensor: t}
}

func TestAdamWMatchesOptim(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(23, 1))
		const n, steps = 333, 3
		p0 := randn(rng, n, 1)
		grads := [steps][]float32{randn(rng, n, 1), randn(rng, n, 1), randn(rng, n, 1)}
		cfg := optim.AdamWConfig{LR: 1e-2, WeightDecay: 0.05}
		param := paramWithGrad(p0, grads[0])
		opt, err := optim.NewAdamW([]nn.Named{param}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		pp, mp, vp := d.put(t, p0), d.put(t, make([]float32, n)), d.put(t, make([]float32, n))
		for s := 0; s < steps; s++ {
			if s > 0 {
				opt.ZeroGrad()
				engine.Sum(engine.Mul(param.Tensor, engine.FromHost(slices.Clone(grads[s]), n))).Backward()
			}
			opt.Step()
			// The same step-dependent scalars engine/optim computes.
			step := float64(s + 1)
			bc1 := 1 - math.Pow(0.9, step)
			bc2 := 1 - math.Pow(0.999, step)
			run(t, d, "gidedge_adamw", small(n), ptr(pp), ptr(mp), ptr(vp), ptr(d.put(t, grads[s])), f32(1-cfg.LR*cfg.WeightDecay),
				f32(0.9), f32(0.999), f32(float32(float64(cfg.LR)/bc1)), f32(float32(1/math.Sqrt(bc2))), f32(1e-8), i32(n))
			near(t, fmt.Sprintf("p after step %d", s+1), d.get(t, pp, n), param.Tensor.ToHost(), 1e-6, 1e-5)
		}
		state := opt.State()
		near(t, "exp_avg", d.get(t, mp, n), state[1].Tensor.ToHost(), 1e-6, 1e-5)
		near(t, "exp_avg_sq", d.get(t, vp, n), state[2].Tensor.ToHost(), 1e-7, 1e-5)
	})
}

func TestSGDMatchesOptim(t *testing.T) {
	cfgs := []optim.SGDConfig{
		{LR: 0.1},
		{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3},
		{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3, Nesterov: true},
	}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, cfg := range cfgs {
			t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(24, 1))
				const n = 129
				p0, g0, g1 := randn(rng, n, 1), randn(rng, n, 1), randn(rng, n, 1)
				param := paramWithGrad(p0, g0)
				opt, err := optim.NewSGD([]nn.Named{param}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				pp, bp := d.put(t, p0), d.put(t, make([]float32, n))
				nesterov := 0
				if cfg.Nesterov {
					nesterov = 1
				}
				for s, g := range [][]float32{g0, g1} {
					if s > 0 {
						opt.ZeroGrad()
						engine.Sum(engine.Mul(param.Tensor, engine.FromHost(slices.Clone(g), n))).Backward()
					}
					opt.Step()
					run(t, d, "gidedge_sgd", small(n), ptr(pp), ptr(bp), ptr(d.put(t, g)), f32(cfg.LR), f32(cfg.Momentum), f32(cfg.WeightDecay), i32(nesterov), i32(n))
					near(t, fmt.Sprintf("p after step %d", s+1), d.get(t, pp, n), param.Tensor.ToHost(), 1e-6, 1e-5)
				}
			})
		}
	})
}
