package kernels_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func TestBatchNormMatchesEngine(t *testing.T) {
	const n, c, h, w = 3, 5, 7, 9 // 189 values per channel: several block strides
	hw := h * w
	forEachDevice(t, func(t *testing.T, d device) {
		for _, training := range []bool{true, false} {
			t.Run(fmt.Sprintf("training=%v", training), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(13, 1))
				x := randn(rng, n*c*hw, 2)
				for i := range x {
					x[i] += 0.5
				}
				gamma, beta := randu(rng, c, 0.5, 1.5), randn(rng, c, 1)
				rm0, rv0 := randn(rng, c, 0.1), randu(rng, c, 0.5, 2)
				gy := randn(rng, n*c*hw, 1)
				st := &engine.BatchNormState{RunningMean: engine.FromHost(slices.Clone(rm0), c), RunningVar: engine.FromHost(slices.Clone(rv0), c), Momentum: 0.1, Eps: 1e-5}
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor {
					return engine.BatchNorm2d(in[0], in[1], in[2], st, training)
				}, gy, tns(x, n, c, h, w), tns(gamma, c), tns(beta, c))

				xp, gp, bp := d.put(t, x), d.put(t, gamma), d.put(t, beta)
				rm, rv := d.put(t, rm0), d.put(t, rv0)
				mean, invstd := d.put(t, make([]float32, c)), d.put(t, make([]float32, c))
				y := d.put(t, make([]float32, len(x)))
				if training {
					run(t, d, "gidedge_bn_stats", kernels.PerBlock(c), ptr(mean), ptr(invstd), ptr(rm), ptr(rv), ptr(xp), f32(1e-5), f32(0.1), i32(n), i32(c), i32(hw))
					run(t, d, "gidedge_bn_forward", small(len(x)), ptr(y), ptr(xp), ptr(mean), ptr(invstd), ptr(gp), ptr(bp), i32(n), i32(c), i32(hw))
					near(t, "running mean", d.get(t, rm, c), st.RunningMean.ToHost(), 1e-6, 1e-5)
					near(t, "running var", d.get(t, rv, c), st.RunningVar.ToHost(), 1e-6, 1e-5)
				} else {
					run(t, d, "gidedge_bn_forward_eval", small(len(x)), ptr(y), ptr(mean), ptr(invstd), ptr(xp), ptr(rm), ptr(rv), ptr(gp), ptr(bp), f32(1e-5), i32(n), i32(c), i32(hw))
					near(t, "eval mean", d.get(t, mean, c), rm0, 0, 0)
					near(t, "eval invstd", d.get(t, invstd, c), invStd(rv0, 1e-5), 1e-6, 1e-6)
				}
				near(t, "y", d.get(t, y, len(x)), want, 1e-5, 1e-5)

				gyp := d.put(t, gy)
				sg, sgx := d.put(t, make([]float32, c)), d.put(t, make([]float32, c))
				run(t, d, "gidedge_bn_backward_reduce", kernels.PerBlock(c), ptr(sg), ptr(sgx), ptr(gyp), ptr(xp), ptr(mean), ptr(invstd), i32(n), i32(c), i32(hw))
				near(t, "gamma grad", d.get(t, sgx, c), grads[1], 1e-4, 1e-4)
				near(t, "beta grad", d.get(t, sg, c), grads[2], 1e-4, 1e-4)
				gx := d.put(t, make([]float32, len(x)))
				tr := 0
				if training {
					tr = 1
				}
				run(t, d, "gidedge_bn_backward_data", small(len(x)), ptr(gx), ptr(gyp), ptr(xp), ptr(mean), ptr(invstd), ptr(gp), ptr(sg), ptr(sgx), i32(tr), f32(0), i32(n), i32(c), i32(hw))
				near(t, "x grad", d.get(t, gx, len(x)), grads[0], 1e-5, 1e-4)
			})
		}
	})
}

func invStd(v []float32, eps float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = 1 / float32(sqrt64(float64(x)+float64(eps)))
	}
	return out
}
