package kernels_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func TestUnaryMatchesEngine(t *testing.T) {
	cases := []struct {
		name   string
		op     int
		a, b   float32
		lo, hi float32 // input range
		f      func(x *engine.Tensor) *engine.Tensor
	}{
		{"affine", kernels.UnaryAffine, -1.5, 0.25, -3, 3, func(x *engine.Tensor) *engine.Tensor { return engine.AddScalar(engine.MulScalar(x, -1.5), 0.25) }},
		{"exp", kernels.UnaryExp, 0, 0, -6, 6, engine.Exp},
		{"log", kernels.UnaryLog, 0, 0, 0.05, 9, engine.Log},
		{"sqrt", kernels.UnarySqrt, 0, 0, 0.05, 9, engine.Sqrt},
		{"abs", kernels.UnaryAbs, 0, 0, -3, 3, engine.Abs},
		{"relu", kernels.UnaryReLU, 0, 0, -3, 3, engine.ReLU},
		{"leaky relu", kernels.UnaryLeakyReLU, 0.1, 0, -3, 3, func(x *engine.Tensor) *engine.Tensor { return engine.LeakyReLU(x, 0.1) }},
		{"sigmoid", kernels.UnarySigmoid, 0, 0, -9, 9, engine.Sigmoid},
		{"silu", kernels.UnarySiLU, 0, 0, -9, 9, engine.SiLU},
		{"hardswish", kernels.UnaryHardSwish, 0, 0, -5, 5, engine.HardSwish},
		{"tanh", kernels.UnaryTanh, 0, 0, -5, 5, engine.Tanh},
		{"pow 2", kernels.UnaryPow, 2, 0, -3, 3, func(x *engine.Tensor) *engine.Tensor { return engine.Pow(x, 2) }},
		{"pow 1.5", kernels.UnaryPow, 1.5, 0, 0.1, 3, func(x *engine.Tensor) *engine.Tensor { return engine.Pow(x, 1.5) }},
		{"pow 3 negative", kernels.UnaryPow, 3, 0, -3, -0.1, func(x *engine.Tensor) *engine.Tensor { return engine.Pow(x, 3) }},
		{"clamp", kernels.UnaryClamp, -0.5, 1, -3, 3, func(x *engine.Tensor) *engine.Tensor { return engine.Clamp(x, -0.5, 1) }},
	}
	if len(cases) != kernels.UnaryCount+2 {
		t.Fatalf("%d cases for %d unary ops (pow has three)", len(cases), kernels.UnaryCount)
	}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(3, uint64(c.op)))
				const n = 403
				x, gy, gx0 := randu(rng, n, c.lo, c.hi), randn(rng, n, 1), randn(rng, n, 1)
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return c.f(in[0]) }, gy, tns(x, n))
				xp, yp := d.put(t, x), d.put(t, make([]float32, n))
				run(t, d, "gidedge_unary", small(n), ptr(yp), ptr(xp), i32(c.op), f32(c.a), f32(c.b), i32(n))
				near(t, "y", d.get(t, yp, n), want, 1e-5, 2e-5)

				gx := d.put(t, gx0)
				run(t, d, "gidedge_unary_backward", small(n), ptr(gx), ptr(d.put(t, gy)), ptr(xp), ptr(yp), i32(c.op), f32(c.a), f32(c.b), f32(1), i32(n))
				wantG := make([]float32, n)
				for i := range wantG {
					wantG[i] = gx0[i] + grads[0][i]
				}
				near(t, "gx", d.get(t, gx, n), wantG, 1e-5, 1e-4)
			})
		}
	})
}

// TestReLUKeepsNaN checks the engine's ReLU rule at its edge cases: NaN
// stays NaN forward, and the gradient is masked only where the output is
// ≤ 0, so a NaN output passes it (PyTorch's threshold_backward).
func TestReLUKeepsNaN(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{nan, -1, 0, 2, float32(math.Copysign(0, -1))}
	forEachDevice(t, func(t *testing.T, d device) {
		n := len(x)
		xp, yp := d.put(t, x), d.put(t, make([]float32, n))
		run(t, d, "gidedge_unary", small(n), ptr(yp), ptr(xp), i32(kernels.UnaryReLU), f32(0), f32(0), i32(n))
		y := d.get(t, yp, n)
		if !math.IsNaN(float64(y[0])) || y[1] != 0 || y[2] != 0 || y[3] != 2 || y[4] != 0 {
			t.Fatalf("relu(%v) = %v, want [NaN 0 0 2 0]", x, y)
		}
		gx := d.put(t, make([]float32, n))
		run(t, d, "gidedge_unary_backward", small(n), ptr(gx), ptr(d.put(t, []float32{3, 3, 3, 3, 3})), ptr(xp), ptr(yp), i32(kernels.UnaryReLU), f32(0), f32(0), f32(0), i32(n))
		if g := d.get(t, gx, n); g[0] != 3 || g[1] != 0 || g[2] != 0 || g[3] != 3 || g[4] != 0 {
			t.Fatalf("relu gradient %v, want [3 0 0 3 0] (NaN passes)", g)
		}
	})
}

// broadcastLayout is the layout of out = a op b for NumPy-broadcast shapes.
func broadcastLayout(t *testing.T, out, a, b []int) kernels.Layout {
	t.Helper()
	bstr := func(s []int) []int {
		st := make([]int, len(out))
		inner := kernels.Strides(s)
		off := len(out) - len(s)
		for d := range s {
			if s[d] != 1 {
				st[off+d] = inner[d]
			}
		}
		return st
	}
	l, err := kernels.NewLayout(out, kernels.Strides(out), bstr(a), bstr(b))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sumTo reduces a full-size gradient g over out to shape s (broadcast
// dimensions summed), with gidedge_reduce on the device.
func sumTo(t *testing.T, d device, g []float32, out, s []int) []float32 {
	t.Helper()
	var axes []int
	off := len(out) - len(s)
	for i := range out {
		if i < off || s[i-off] == 1 && out[i] != 1 {
			axes = append(axes, i)
		}
	}
	r, err := kernels.NewReduce(out, kernels.Strides(out), axes...)
	if err != nil {
		t.Fatal(err)
	}
	y := d.put(t, make([]float32, r.NKeep))
	run(t, d, "gidedge_reduce", kernels.PerBlock(int(r.NKeep)), ptr(y), null, ptr(d.put(t, g)), i32(kernels.ReduceSum), f32(1), f32(0), r.Arg())
	return d.get(t, y, int(r.NKeep))
}

func TestBinaryBroadcastMatchesEngine(t *testing.T) {
	ops := []struct {
		name string
		op   int
		f    func(a, b *engine.Tensor) *engine.Tensor
	}{
		{"add", kernels.BinaryAdd, engine.Add},
		{"sub", kernels.BinarySub, engine.Sub},
		{"mul", kernels.BinaryMul, engine.Mul},
		{"div", kernels.BinaryDiv, engine.Div},
	}
	shapes := [][3][]int{
		{{3, 4, 5}, {3, 1, 5}, {4, 1}},
		{{2, 3, 5}, {2, 3, 5}, {2, 3, 5}},
		{{7, 3}, {1}, {7, 3}},
	}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, op := range ops {
			for _, s := range shapes {
				t.Run(fmt.Sprintf("%s %v %v", op.name, s[1], s[2]), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(4, uint64(op.op)))
					out, sa, sb := s[0], s[1], s[2]
					a, b := randu(rng, numel(sa), 0.5, 2), randu(rng, numel(sb), 0.5, 2)
					gy := randn(rng, numel(out), 1)
					want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return op.f(in[0], in[1]) }, gy, tns(a, sa...), tns(b, sb...))
					l := broadcastLayout(t, out, sa, sb)
					ap, bp, yp := d.put(t, a), d.put(t, b), d.put(t, make([]float32, numel(out)))
					run(t, d, "gidedge_binary", small(numel(out)), ptr(yp), ptr(ap), ptr(bp), i32(op.op), f32(0), l.Arg())
					near(t, "y", d.get(t, yp, numel(out)), want, 1e-6, 1e-6)
					run(t, d, "gidedge_binary", small(numel(out)), ptr(yp), ptr(ap), ptr(bp), i32(op.op), f32(1), l.Arg())
					twice := make([]float32, len(want))
					for i, v := range want {
						twice[i] = 2 * v
					}
					near(t, "y accumulated", d.get(t, yp, numel(out)), twice, 1e-6, 1e-6)
					for side, shape := range [][]int{sa, sb} {
						g := d.put(t, make([]float32, numel(out)))
						run(t, d, "gidedge_binary_backward", small(numel(out)), ptr(g), ptr(d.put(t, gy)), ptr(ap), ptr(bp), i32(op.op), i32(side), l.Arg())
						near(t, fmt.Sprintf("grad %d", side), sumTo(t, d, d.get(t, g, numel(out)), out, shape), grads[side], 1e-5, 1e-5)
					}
				})
			}
		}
	})
}

func TestBinaryMaxMin(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		a := []float32{1, 5, -2, 3, 3}
		b := []float32{2, 4, -2, 7, 3}
		l, _ := kernels.NewLayout([]int{5}, []int{1}, []int{1}, []int{1})
		ap, bp, yp, g := d.put(t, a), d.put(t, b), d.put(t, make([]float32, 5)), d.put(t, make([]float32, 5))
		gy := d.put(t, []float32{1, 1, 1, 1, 1})
		run(t, d, "gidedge_binary", small(5), ptr(yp), ptr(ap), ptr(bp), i32(kernels.BinaryMax), f32(0), l.Arg())
		near(t, "max", d.get(t, yp, 5), []float32{2, 5, -2, 7, 3}, 0, 0)
		run(t, d, "gidedge_binary", small(5), ptr(yp), ptr(ap), ptr(bp), i32(kernels.BinaryMin), f32(0), l.Arg())
		near(t, "min", d.get(t, yp, 5), []float32{1, 4, -2, 3, 3}, 0, 0)
		// Ties send the gradient to a.
		run(t, d, "gidedge_binary_backward", small(5), ptr(g), ptr(gy), ptr(ap), ptr(bp), i32(kernels.BinaryMax), i32(0), l.Arg())
		near(t, "max grad a", d.get(t, g, 5), []float32{0, 1, 1, 0, 1}, 0, 0)
		run(t, d, "gidedge_binary_backward", small(5), ptr(g), ptr(gy), ptr(ap), ptr(bp), i32(kernels.BinaryMin), i32(1), l.Arg())
		near(t, "min grad b", d.get(t, g, 5), []float32{0, 1, 0, 0, 0}, 0, 0)
	})
}

func TestWhereMatchesEngine(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		rng := rand.New(rand.NewPCG(5, 1))
		const n = 77
		mask := make([]float32, n)
		for i := range mask {
			if rng.IntN(2) == 0 {
				mask[i] = 1
			}
		}
		a, b, gy := randn(rng, n, 1), randn(rng, n, 1), randn(rng, n, 1)
		want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.Where(in[0], in[1], in[2]) }, gy, konst(mask, n), tns(a, n), tns(b, n))
		mp, ap, bp, yp := d.put(t, mask), d.put(t, a), d.put(t, b), d.put(t, make([]float32, n))
		run(t, d, "gidedge_where", small(n), ptr(yp), ptr(mp), ptr(ap), ptr(bp), f32(0), f32(0), f32(0), i32(n))
		near(t, "where", d.get(t, yp, n), want, 0, 0)
		ga, gb := d.put(t, make([]float32, n)), d.put(t, make([]float32, n))
		run(t, d, "gidedge_where_backward", small(n), ptr(ga), ptr(gb), ptr(mp), ptr(d.put(t, gy)), f32(0), i32(n))
		near(t, "ga", d.get(t, ga, n), grads[1], 0, 0)
		near(t, "gb", d.get(t, gb, n), grads[2], 0, 0)

		// MaskedFill: a constant where the mask is set.
		filled, _ := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.MaskedFill(in[0], in[1], -7) }, nil, konst(a, n), konst(mask, n))
		run(t, d, "gidedge_where", small(n), ptr(yp), ptr(mp), null, ptr(ap), f32(-7), f32(0), f32(0), i32(n))
		near(t, "masked fill", d.get(t, yp, n), filled, 0, 0)
		// The selection's backward pass as a Where with a zero operand,
		// accumulated into an existing gradient.
		base := randn(rng, n, 1)
		ga2 := d.put(t, base)
		run(t, d, "gidedge_where", small(n), ptr(ga2), ptr(mp), ptr(d.put(t, gy)), null, f32(0), f32(0), f32(1), i32(n))
		for i := range base {
			base[i] += grads[1][i]
		}
		near(t, "where accumulated", d.get(t, ga2, n), base, 1e-6, 1e-6)
	})
}

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}
