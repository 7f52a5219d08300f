package kernels_test

import (
	"math"
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

func TestPairwiseDistance(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(25, 1))
		const k, dim = 6, 11
		x, dy := randn(rng, k*dim, 1), randn(rng, k*k, 1)
		copy(x[3*dim:4*dim], x[1*dim:2*dim]) // rows 1 and 3 coincide: distance 0, gradient 0
		want := make([]float32, k*k)
		for i := 0; i < k; i++ {
			for j := 0; j < k; j++ {
				var acc float64
				for q := 0; q < dim; q++ {
					diff := float64(x[i*dim+q]) - float64(x[j*dim+q])
					acc += diff * diff
				}
				if i != j {
					want[i*k+j] = float32(math.Sqrt(acc))
				}
			}
		}
		wantDX := make([]float32, k*dim)
		for i := 0; i < k; i++ {
			for j := 0; j < k; j++ {
				if want[i*k+j] > 0 {
					for q := 0; q < dim; q++ {
						wantDX[i*dim+q] += (dy[i*k+j] + dy[j*k+i]) * (x[i*dim+q] - x[j*dim+q]) / want[i*k+j]
					}
				}
			}
		}
		xp, y := d.put(t, x), d.put(t, make([]float32, k*k))
		run(t, d, "gidedge_pairwise_distance", small(k*k), ptr(y), ptr(xp), i32(k), i32(dim))
		near(t, "y", d.get(t, y, k*k), want, 1e-5, 1e-5)
		dx := d.put(t, make([]float32, k*dim))
		run(t, d, "gidedge_pairwise_distance_backward", small(k*dim), ptr(dx), ptr(xp), ptr(y), ptr(d.put(t, dy)), f32(0), i32(k), i32(dim))
		near(t, "dx", d.get(t, dx, k*dim), wantDX, 1e-5, 1e-4)
	})
}
