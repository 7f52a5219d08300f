package kernels_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
)

func TestPairwiseSqDistMatchesEngine(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(22, 1))
		const m, n, k = 7, 5, 9
		a, b, gy := randn(rng, m*k, 1), randn(rng, n*k, 1), randn(rng, m*n, 1)
		// The engine composition: Σ_k (a[i, 1, k] − b[1, j, k])².
		want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor {
			diff := engine.Sub(engine.Reshape(in[0], m, 1, k), engine.Reshape(in[1], 1, n, k))
			return engine.SumAxis(engine.Mul(diff, diff), 2, false)
		}, gy, tns(a, m, k), tns(b, n, k))
		ap, bp := d.put(t, a), d.put(t, b)
		dist := d.put(t, make([]float32, m*n))
		run(t, d, "gidedge_pairwise_sqdist", small(m*n), ptr(dist), ptr(ap), ptr(bp), i32(m), i32(n), i32(k))
		near(t, "d", d.get(t, dist, m*n), want, 1e-5, 1e-5)
		gyp := d.put(t, gy)
		for side, wantG := range grads {
			rows := m
			if side == 1 {
				rows = n
			}
			g := d.put(t, make([]float32, rows*k))
			run(t, d, "gidedge_pairwise_sqdist_backward", small(rows*k), ptr(g), ptr(gyp), ptr(ap), ptr(bp), i32(m), i32(n), i32(k), i32(side), f32(0))
			near(t, "grad", d.get(t, g, rows*k), wantG, 1e-5, 1e-4)
		}
	})
}
