package kernels_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/engine/optim"
)

func TestReduceAxisMatchesEngine(t *testing.T) {
	shape := []int{3, 37, 5}
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(6, 1))
		x := randn(rng, numel(shape), 1)
		xp := d.put(t, x)
		for _, kernel := range []string{"gidedge_reduce", "gidedge_reduce_small"} {
			for axis := range shape {
				t.Run(fmt.Sprintf("%s axis %d", kernel, axis), func(t *testing.T) {
					r, err := kernels.NewReduce(shape, kernels.Strides(shape), axis)
					if err != nil {
						t.Fatal(err)
					}
					cfg := kernels.PerBlock(int(r.NKeep))
					if kernel == "gidedge_reduce_small" {
						cfg = small(int(r.NKeep))
					}
					n := int(r.NKeep)
					y, arg := d.put(t, randn(rng, n, 1)), d.putInts(t, make([]int32, n))
					run(t, d, kernel, cfg, ptr(y), null, ptr(xp), i32(kernels.ReduceSum), f32(1/float32(shape[axis])), f32(0), r.Arg())
					mean, _ := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.MeanAxis(in[0], axis, false) }, nil, konst(x, shape...))
					near(t, "mean", d.get(t, y, n), mean, 1e-6, 1e-5)

					run(t, d, kernel, cfg, ptr(y), ptr(arg), ptr(xp), i32(kernels.ReduceMax), f32(1), f32(0), r.Arg())
					gy := randn(rng, n, 1)
					maxes, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.MaxAxis(in[0], axis, false) }, gy, tns(x, shape...))
					near(t, "max", d.get(t, y, n), maxes, 0, 0)
					// The engine's gradient lands on the arg-max: the kernel
					// gives its element offset in x.
					args := d.getInts(t, arg, n)
					for o := 0; o < n; o++ {
						if grads[0][args[o]] != gy[o] {
							t.Fatalf("output %d: arg-max offset %d is not where the engine sends the gradient", o, args[o])
						}
					}

					before := randn(rng, n, 1)
					y = d.put(t, before)
					run(t, d, kernel, cfg, ptr(y), null, ptr(xp), i32(kernels.ReduceSumSq), f32(2), f32(0.5), r.Arg())
					sq, _ := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.SumAxis(engine.Mul(in[0], in[0]), axis, false) }, nil, konst(x, shape...))
					for i := range sq {
						sq[i] = 2*sq[i] + 0.5*before[i]
					}
					near(t, "2·Σx² + y/2", d.get(t, y, n), sq, 1e-5, 1e-5)
				})
			}
		}
	})
}

func TestReduceSeveralAxesAndStrides(t *testing.T) {
	// Per-channel sums of an NCHW tensor (batch-norm statistics, bias
	// gradients): keep C, reduce N, H, W; and a transposed view.
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(7, 1))
		shape := []int{3, 4, 5, 7}
		x := randn(rng, numel(shape), 1)
		r, err := kernels.NewReduce(shape, kernels.Strides(shape), 0, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		y := d.put(t, make([]float32, 4))
		run(t, d, "gidedge_reduce", kernels.PerBlock(4), ptr(y), null, ptr(d.put(t, x)), i32(kernels.ReduceSum), f32(1), f32(0), r.Arg())
		want := make([]float32, 4)
		for i, v := range x {
			want[i/35%4] += v
		}
		near(t, "per-channel sum", d.get(t, y, 4), want, 1e-5, 1e-5)

		// Sum over rows of the transpose of a [6, 9] matrix = column sums,
		// read through strides.
		m := randn(rng, 54, 1)
		r, _ = kernels.NewReduce([]int{9, 6}, []int{1, 9}, 1)
		y = d.put(t, make([]float32, 9))
		run(t, d, "gidedge_reduce_small", small(9), ptr(y), null, ptr(d.put(t, m)), i32(kernels.ReduceSum), f32(1), f32(0), r.Arg())
		cols := make([]float32, 9)
		for i, v := range m {
			cols[i%9] += v
		}
		near(t, "column sums", d.get(t, y, 9), cols, 1e-5, 1e-5)

		// Everything into one value.
		r, _ = kernels.NewReduce(shape, kernels.Strides(shape), 0, 1, 2, 3)
		y = d.put(t, make([]float32, 1))
		run(t, d, "gidedge_reduce", kernels.PerBlock(1), ptr(y), null, ptr(d.put(t, x)), i32(kernels.ReduceSum), f32(1), f32(0), r.Arg())
		var total float32
		for _, v := range want {
			total += v
		}
		near(t, "total", d.get(t, y, 1), []float32{total}, 1e-4, 1e-5)
	})
}

func TestSoftmaxMatchesEngine(t *testing.T) {
	shape := []int{3, 300, 2} // the axis is longer than a block
	forEachDevice(t, func(t *testing.T, d device) {
		for _, log := range []int{0, 1} {
			t.Run(fmt.Sprintf("log=%d", log), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(8, uint64(log)))
				x, gy, gx0 := randn(rng, numel(shape), 3), randn(rng, numel(shape), 1), randn(rng, numel(shape), 1)
				f := engine.Softmax
				if log == 1 {
					f = engine.LogSoftmax
				}
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return f(in[0], 1) }, gy, tns(x, shape...))
				n := numel(shape)
				xp, yp := d.put(t, x), d.put(t, make([]float32, n))
				run(t, d, "gidedge_softmax", kernels.PerBlock(6), ptr(yp), ptr(xp), i32(3), i32(300), i32(2), i32(log))
				near(t, "y", d.get(t, yp, n), want, 1e-6, 1e-5)
				gx := d.put(t, gx0)
				run(t, d, "gidedge_softmax_backward", kernels.PerBlock(6), ptr(gx), ptr(d.put(t, gy)), ptr(yp), i32(3), i32(300), i32(2), i32(log), f32(1))
				for i := range grads[0] {
					grads[0][i] += gx0[i]
				}
				near(t, "gx", d.get(t, gx, n), grads[0], 1e-5, 1e-4)
			})
		}
	})
}

func TestCrossEntropyMatchesEngine(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(9, 1))
		const n, c = 7, 13
		x, gy := randn(rng, n*c, 2), randn(rng, n, 1)
		labels := []int{3, -1, 0, 12, 5, 5, -1}
		want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.CrossEntropy(in[0], labels) }, gy, tns(x, n, c))
		l32 := make([]int32, n)
		for i, l := range labels {
			l32[i] = int32(l)
		}
		xp, lp := d.put(t, x), d.putInts(t, l32)
		loss, logz := d.put(t, make([]float32, n)), d.put(t, make([]float32, n))
		run(t, d, "gidedge_cross_entropy", kernels.PerBlock(n), ptr(loss), ptr(logz), ptr(xp), ptr(lp), i32(n), i32(c))
		near(t, "loss", d.get(t, loss, n), want, 1e-5, 1e-5)
		gx := d.put(t, make([]float32, n*c))
		run(t, d, "gidedge_cross_entropy_backward", small(n*c), ptr(gx), ptr(d.put(t, gy)), ptr(xp), ptr(logz), ptr(lp), f32(0), i32(n), i32(c))
		near(t, "gx", d.get(t, gx, n*c), grads[0], 1e-5, 1e-4)
	})
}

func TestClipGradNormMatchesOptim(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(10, 1))
		sizes := []int{1000, 37, 5}
		// The engine's ClipGradNorm over three parameters.
		var params []nn.Named
		grads := make([][]float32, len(sizes))
		for i, n := range sizes {
			p := engine.Zeros(n).SetRequiresGrad(true)
			grads[i] = randn(rng, n, 1)
			engine.Sum(engine.Mul(p, engine.FromHost(append([]float32(nil), grads[i]...), n))).Backward()
			params = append(params, nn.Named{Name: fmt.Sprint("p", i), Tensor: p})
		}
		norm, err := optim.ClipGradNorm(params, 3)
		if err != nil {
			t.Fatal(err)
		}
		// The kernels: partial sums of squares per parameter into one
		// array, the coefficient on the device, then scaling.
		const blocks = 3
		partial := d.put(t, make([]float32, blocks*len(sizes)))
		gps := make([]driver.DevicePtr, len(sizes))
		for i, g := range grads {
			gps[i] = d.put(t, g)
			run(t, d, "gidedge_sum_squares", kernels.PerBlock(blocks), ptr(partial+driver.DevicePtr(4*blocks*i)), ptr(gps[i]), i32(len(g)))
		}
		out := d.put(t, make([]float32, 2))
		run(t, d, "gidedge_clip_coef", kernels.PerBlock(1), ptr(out), ptr(partial), i32(blocks*len(sizes)), f32(3))
		res := d.get(t, out, 2)
		near(t, "norm", res[:1], []float32{norm}, 1e-4, 1e-5)
		if res[1] >= 1 {
			t.Fatalf("coefficient %g: the gradients (norm %g) should be clipped to 3", res[1], norm)
		}
		for i, g := range grads {
			run(t, d, "gidedge_scale_by", small(len(g)), ptr(gps[i]), ptr(out+4), i32(len(g)))
			near(t, fmt.Sprint("clipped p", i), d.get(t, gps[i], len(g)), params[i].Tensor.GradToHost(), 1e-6, 1e-5)
		}

		// A NaN makes the norm NaN and leaves the coefficient at 1.
		bad := d.put(t, []float32{1, float32(math.NaN()), 2})
		run(t, d, "gidedge_sum_squares", kernels.PerBlock(1), ptr(partial), ptr(bad), i32(3))
		run(t, d, "gidedge_clip_coef", kernels.PerBlock(1), ptr(out), ptr(partial), i32(1), f32(3))
		if res := d.get(t, out, 2); !math.IsNaN(float64(res[0])) || res[1] != 1 {
			t.Fatalf("non-finite gradient gave norm %g, coefficient %g; want NaN and 1", res[0], res[1])
		}
	})
}

// TestMaximaPropagateNaN: a NaN input is the maximum (PyTorch's max), and
// ties go to the first element.
func TestMaximaPropagateNaN(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		nan := float32(math.NaN())
		x := []float32{1, 3, 3, 2, nan, 5, -1, -1, -1, 2, 2, 2}
		shape := []int{3, 4}
		r, _ := kernels.NewReduce(shape, kernels.Strides(shape), 1)
		for _, kernel := range []string{"gidedge_reduce", "gidedge_reduce_small"} {
			cfg := kernels.PerBlock(3)
			if kernel == "gidedge_reduce_small" {
				cfg = small(3)
			}
			y, arg := d.put(t, make([]float32, 3)), d.putInts(t, make([]int32, 3))
			run(t, d, kernel, cfg, ptr(y), ptr(arg), ptr(d.put(t, x)), i32(kernels.ReduceMax), f32(1), f32(0), r.Arg())
			near(t, kernel+" max", d.get(t, y, 3), []float32{3, nan, 2}, 0, 0)
			if got := d.getInts(t, arg, 3); got[0] != 1 || got[1] != 4 || got[2] != 9 {
				t.Fatalf("%s arg-max %v, want [1 4 9]", kernel, got)
			}
		}
		g := kernels.Pool{Planes: 1, H: 3, W: 4, KH: 2, KW: 2, SH: 2, SW: 2, OH: 1, OW: 2}
		y, arg := d.put(t, make([]float32, 2)), d.putInts(t, make([]int32, 2))
		run(t, d, "gidedge_maxpool_forward", small(2), ptr(y), ptr(arg), ptr(d.put(t, x)), g.Arg())
		// Windows {1, 3, NaN, 5} and {3, 2, −1, −1} of the 3×4 plane.
		near(t, "maxpool", d.get(t, y, 2), []float32{nan, 3}, 0, 0)
		if got := d.getInts(t, arg, 2); got[0] != 4 || got[1] != 2 {
			t.Fatalf("maxpool arg-max %v, want [4 2]", got)
		}
	})
}
