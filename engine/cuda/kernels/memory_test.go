package kernels_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func TestFillCopyAxpby(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(1, 1))
		const n = 301
		x, y0 := randn(rng, n, 1), randn(rng, n, 1)
		y := d.put(t, y0)
		run(t, d, "gidedge_fill", small(n), ptr(y), f32(2.5), i32(n))
		want := make([]float32, n)
		for i := range want {
			want[i] = 2.5
		}
		near(t, "fill", d.get(t, y, n), want, 0, 0)

		xp := d.put(t, x)
		run(t, d, "gidedge_copy", small(n), ptr(y), ptr(xp), f32(0), i32(n))
		near(t, "copy", d.get(t, y, n), x, 0, 0)
		run(t, d, "gidedge_copy", small(n), ptr(y), ptr(xp), f32(1), i32(n))
		for i := range want {
			want[i] = 2 * x[i]
		}
		near(t, "copy accumulate", d.get(t, y, n), want, 1e-6, 1e-6)

		y = d.put(t, y0)
		run(t, d, "gidedge_axpby", elementwise(n), ptr(y), ptr(xp), f32(-1.5), f32(0.5), i32(n))
		for i := range want {
			want[i] = -1.5*x[i] + 0.5*y0[i]
		}
		near(t, "axpby", d.get(t, y, n), want, 1e-6, 1e-6)

		s := d.put(t, []float32{-3})
		run(t, d, "gidedge_scale_by", small(n), ptr(xp), ptr(s), i32(n))
		for i := range want {
			want[i] = -3 * x[i]
		}
		near(t, "scale_by", d.get(t, xp, n), want, 1e-6, 1e-6)
	})
}

func TestCountNonFinite(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		x := make([]float32, 517)
		x[3], x[200], x[516] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
		count := d.putInts(t, []int32{4})
		run(t, d, "gidedge_count_nonfinite", small(len(x)), ptr(count), ptr(d.put(t, x)), i32(len(x)))
		if got := d.getInts(t, count, 1)[0]; got != 7 {
			t.Fatalf("count = %d, want 4 + 3", got)
		}
	})
}

func TestStridedCopyPermutesAndSlices(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(2, 1))
		shape := []int{3, 5, 7}
		x := randn(rng, 3*5*7, 1)
		// Permute (2, 0, 1): walk the output [7, 3, 5] reading x's strides
		// in that order.
		xs := kernels.Strides(shape)
		l, err := kernels.NewLayout([]int{7, 3, 5}, kernels.Strides([]int{7, 3, 5}), []int{xs[2], xs[0], xs[1]})
		if err != nil {
			t.Fatal(err)
		}
		y := d.put(t, make([]float32, len(x)))
		run(t, d, "gidedge_strided_copy", small(len(x)), ptr(y), ptr(d.put(t, x)), f32(0), l.Arg())
		want := engine.Permute(engine.FromHost(x, shape...), 2, 0, 1).ToHost()
		near(t, "permute", d.get(t, y, len(x)), want, 0, 0)

		// Slice [1:4] of axis 1 into the middle of a [3, 9, 7] tensor
		// (a concatenation part): both sides strided, pointer offsets.
		dst := make([]float32, 3*9*7)
		l, err = kernels.NewLayout([]int{3, 3, 7}, kernels.Strides([]int{3, 9, 7}), xs)
		if err != nil {
			t.Fatal(err)
		}
		yp := d.put(t, dst)
		run(t, d, "gidedge_strided_copy", elementwise(int(l.N)), ptr(yp+4*2*7), ptr(d.put(t, x)+4*1*7), f32(0), l.Arg())
		got := d.get(t, yp, len(dst))
		slice := engine.Slice(engine.FromHost(x, shape...), 1, 1, 4)
		wantCat := engine.Concat(1, engine.Zeros(3, 2, 7), slice, engine.Zeros(3, 4, 7)).ToHost()
		near(t, "slice into concat", got, wantCat, 0, 0)
	})
}
