package kernels_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func TestIndexSelectAndAddMatchEngine(t *testing.T) {
	shape := []int{3, 7, 5}
	idx := []int{6, 0, 3, 3, 6, 1}
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(16, 1))
		x := randn(rng, numel(shape), 1)
		outer, size, inner, m := 3, 7, 5, len(idx)
		gy := randn(rng, outer*m*inner, 1)
		want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.IndexSelect(in[0], 1, idx) }, gy, tns(x, shape...))
		i32s := make([]int32, m)
		for i, v := range idx {
			i32s[i] = int32(v)
		}
		ip := d.putInts(t, i32s)
		y := d.put(t, make([]float32, len(gy)))
		run(t, d, "gidedge_index_select", small(len(gy)), ptr(y), ptr(d.put(t, x)), ptr(ip), f32(0), i32(outer), i32(size), i32(inner), i32(m))
		near(t, "index_select", d.get(t, y, len(gy)), want, 0, 0)
		// index_add is the adjoint, with repeated indices summed.
		gx := d.put(t, make([]float32, len(x)))
		run(t, d, "gidedge_index_add", small(len(gy)), ptr(gx), ptr(d.put(t, gy)), ptr(ip), i32(outer), i32(size), i32(inner), i32(m))
		near(t, "index_add", d.get(t, gx, len(x)), grads[0], 1e-6, 1e-6)

		// And it is the engine's ScatterAdd on top of a base tensor.
		base := randn(rng, len(x), 1)
		sum, _ := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.ScatterAdd(in[0], 1, idx, in[1]) }, nil, konst(base, shape...), konst(gy, outer, m, inner))
		bp := d.put(t, base)
		run(t, d, "gidedge_index_add", small(len(gy)), ptr(bp), ptr(d.put(t, gy)), ptr(ip), i32(outer), i32(size), i32(inner), i32(m))
		near(t, "scatter_add", d.get(t, bp, len(x)), sum, 1e-6, 1e-6)
	})
}

func TestGatherMatchesEngine(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(17, 1))
		shape := []int{4, 6, 3}
		x := randn(rng, numel(shape), 1)
		// Gather along axis 1 with an index tensor [4, 5, 2] (smaller than
		// x on the other axes, as PyTorch allows).
		ishape := []int{4, 5, 2}
		idx := make([]float32, numel(ishape))
		for i := range idx {
			idx[i] = float32(rng.IntN(6))
		}
		gy := randn(rng, len(idx), 1)
		want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.Gather(in[0], 1, in[1]) }, gy, tns(x, shape...), konst(idx, ishape...))
		xs := kernels.Strides(shape)
		l, err := kernels.NewLayout(ishape, []int{xs[0], 0, xs[2]}, kernels.Strides(ishape))
		if err != nil {
			t.Fatal(err)
		}
		ip, bad := d.put(t, idx), d.putInts(t, []int32{0})
		y := d.put(t, make([]float32, len(idx)))
		run(t, d, "gidedge_gather", small(len(idx)), ptr(y), ptr(bad), ptr(d.put(t, x)), ptr(ip), i32(xs[1]), i32(6), l.Arg())
		near(t, "gather", d.get(t, y, len(idx)), want, 0, 0)
		gx := d.put(t, make([]float32, len(x)))
		run(t, d, "gidedge_scatter_add", small(len(idx)), ptr(gx), ptr(bad), ptr(d.put(t, gy)), ptr(ip), i32(xs[1]), i32(6), l.Arg())
		near(t, "scatter_add", d.get(t, gx, len(x)), grads[0], 1e-6, 1e-6)
		if got := d.getInts(t, bad, 1)[0]; got != 0 {
			t.Fatalf("%d indices counted bad, want 0", got)
		}

		// Out-of-range and fractional indices are counted, give NaN and add
		// nothing.
		idx[0], idx[5], idx[9] = 6, -1, 2.5
		ip = d.put(t, idx)
		run(t, d, "gidedge_gather", small(len(idx)), ptr(y), ptr(bad), ptr(d.put(t, x)), ptr(ip), i32(xs[1]), i32(6), l.Arg())
		got := d.get(t, y, len(idx))
		for _, i := range []int{0, 5, 9} {
			if !math.IsNaN(float64(got[i])) {
				t.Errorf("gather with index %v gave %v, want NaN", idx[i], got[i])
			}
		}
		gx = d.put(t, make([]float32, len(x)))
		run(t, d, "gidedge_scatter_add", small(len(idx)), ptr(gx), ptr(bad), ptr(d.put(t, gy)), ptr(ip), i32(xs[1]), i32(6), l.Arg())
		if got := d.getInts(t, bad, 1)[0]; got != 6 {
			t.Fatalf("%d bad indices counted, want 3 by gather and 3 by scatter_add", got)
		}
	})
}
