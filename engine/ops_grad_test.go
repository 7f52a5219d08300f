package engine_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// awayFrom moves values within gap of any kink point k (ReLU at 0, Clamp at
// its bounds) so central differences never straddle a kink.
func awayFrom(t *engine.Tensor, gap float32, kinks ...float32) *engine.Tensor {
	return enginetest.Edit(t, func(vs []float32) {
		for i, v := range vs {
			for _, k := range kinks {
				if v-k < gap && v-k > -gap {
					vs[i] = k + 2*gap
				}
			}
		}
	})
}

// positive makes every value at least lo (domains of Log, Sqrt, Pow).
func positive(t *engine.Tensor, lo float32) *engine.Tensor {
	return enginetest.Edit(t, func(vs []float32) {
		for i, v := range vs {
			vs[i] = lo + float32(math.Abs(float64(v)))
		}
	})
}

func TestElementwiseGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tol := enginetest.DefaultTolerance
	for _, shape := range [][]int{{5}, {3, 7}, {2, 3, 5, 1}} {
		name := fmt.Sprint(shape)
		x := awayFrom(enginetest.Param(rng, 1.5, shape...), 0.05, 0, -3, 3, -0.5, 0.8)
		pos := positive(enginetest.Param(rng, 1, shape...), 0.3)
		unary := map[string]func() *engine.Tensor{
			"ReLU":      func() *engine.Tensor { return engine.ReLU(x) },
			"LeakyReLU": func() *engine.Tensor { return engine.LeakyReLU(x, 0.1) },
			"Sigmoid":   func() *engine.Tensor { return engine.Sigmoid(x) },
			"SiLU":      func() *engine.Tensor { return engine.SiLU(x) },
			"HardSwish": func() *engine.Tensor { return engine.HardSwish(x) },
			"Tanh":      func() *engine.Tensor { return engine.Tanh(x) },
			"Exp":       func() *engine.Tensor { return engine.Exp(x) },
			"Abs":       func() *engine.Tensor { return engine.Abs(x) },
			"Clamp":     func() *engine.Tensor { return engine.Clamp(x, -0.5, 0.8) },
			"AddScalar": func() *engine.Tensor { return engine.AddScalar(x, 2.5) },
			"MulScalar": func() *engine.Tensor { return engine.MulScalar(x, -1.5) },
			"Neg":       func() *engine.Tensor { return engine.Neg(x) },
		}
		for op, fn := range unary {
			enginetest.GradCheck(t, op+name, tol, fn, x)
		}
		positiveOps := map[string]func() *engine.Tensor{
			"Log":     func() *engine.Tensor { return engine.Log(pos) },
			"Sqrt":    func() *engine.Tensor { return engine.Sqrt(pos) },
			"Pow2":    func() *engine.Tensor { return engine.Pow(pos, 2) },
			"Pow-1.5": func() *engine.Tensor { return engine.Pow(pos, -1.5) },
			"Pow0.5":  func() *engine.Tensor { return engine.Pow(pos, 0.5) },
		}
		for op, fn := range positiveOps {
			enginetest.GradCheck(t, op+name, tol, fn, pos)
		}
	}
}

func TestBinaryBroadcastGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	pairs := [][2][]int{
		{{3, 4}, {3, 4}},
		{{2, 3, 4}, {4}},
		{{2, 1, 5}, {3, 1}},
		{{1}, {3, 2}},
		{{2, 3, 1, 1}, {1, 3, 4, 5}},
		{{}, {2, 3}},
		{{5, 1, 3}, {5, 2, 3}},
	}
	ops := map[string]func(a, b *engine.Tensor) *engine.Tensor{
		"Add": engine.Add, "Sub": engine.Sub, "Mul": engine.Mul, "Div": engine.Div,
	}
	for _, p := range pairs {
		a := awayFrom(enginetest.Param(rng, 1, p[0]...), 0.4, 0) // also a divisor when swapped
		b := positive(enginetest.Param(rng, 1, p[1]...), 0.5)
		for op, fn := range ops {
			t.Run(fmt.Sprint(op, p), func(t *testing.T) {
				enginetest.GradCheck(t, op, enginetest.DefaultTolerance, func() *engine.Tensor { return fn(a, b) }, a, b)
				// swapped operands broadcast the other way
				enginetest.GradCheck(t, op+"Swapped", enginetest.DefaultTolerance, func() *engine.Tensor { return fn(b, a) }, b, a)
			})
		}
	}
}

func TestWhereGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	a := enginetest.Param(rng, 1, 3, 5)
	b := enginetest.Param(rng, 1, 3, 5)
	mask := engine.RandU(rng, -1, 1, 3, 5)
	enginetest.Edit(mask, func(vs []float32) {
		for i, v := range vs {
			vs[i] = float32(max(0, math.Copysign(1, float64(v))))
		}
	})
	enginetest.GradCheck(t, "Where", enginetest.DefaultTolerance, func() *engine.Tensor { return engine.Where(mask, a, b) }, a, b)
	enginetest.GradCheck(t, "MaskedFill", enginetest.DefaultTolerance, func() *engine.Tensor { return engine.MaskedFill(a, mask, 3) }, a)
}

func TestShapeOpGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	tol := enginetest.DefaultTolerance
	x := enginetest.Param(rng, 1, 2, 3, 5, 3)
	y := enginetest.Param(rng, 1, 2, 4, 5, 3)
	cases := map[string]func() *engine.Tensor{
		"Reshape":   func() *engine.Tensor { return engine.Mul(engine.Reshape(x, 6, -1), engine.Reshape(x, 6, 15)) },
		"Flatten":   func() *engine.Tensor { return engine.Flatten(x) },
		"Permute":   func() *engine.Tensor { return engine.Permute(x, 2, 0, 3, 1) },
		"Transpose": func() *engine.Tensor { return engine.Transpose(x, 1, 3) },
		"Concat1":   func() *engine.Tensor { return engine.Concat(1, x, y, x) },
		"Concat-1":  func() *engine.Tensor { return engine.Concat(-1, x, x) },
		"Slice":     func() *engine.Tensor { return engine.Slice(x, 2, 1, 4) },
		"Split": func() *engine.Tensor {
			parts := engine.Split(y, 1, 1, 3)
			return engine.Concat(1, parts[1], parts[0])
		},
	}
	for op, fn := range cases {
		enginetest.GradCheck(t, op, tol, fn, x, y)
	}
}

func TestReductionGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	tol := enginetest.DefaultTolerance
	x := enginetest.Param(rng, 1, 3, 4, 5)
	for axis := -1; axis < 3; axis++ {
		for _, keep := range []bool{false, true} {
			name := fmt.Sprintf("axis=%d keep=%v", axis, keep)
			enginetest.GradCheck(t, "SumAxis "+name, tol, func() *engine.Tensor { return engine.SumAxis(x, axis, keep) }, x)
			enginetest.GradCheck(t, "MeanAxis "+name, tol, func() *engine.Tensor { return engine.MeanAxis(x, axis, keep) }, x)
			enginetest.GradCheck(t, "MaxAxis "+name, tol, func() *engine.Tensor { return engine.MaxAxis(x, axis, keep) }, x)
		}
		enginetest.GradCheck(t, fmt.Sprint("Softmax axis=", axis), tol, func() *engine.Tensor { return engine.Softmax(x, axis) }, x)
		enginetest.GradCheck(t, fmt.Sprint("LogSoftmax axis=", axis), tol, func() *engine.Tensor { return engine.LogSoftmax(x, axis) }, x)
	}
	enginetest.GradCheck(t, "Sum", tol, func() *engine.Tensor { return engine.Sum(x) }, x)
	enginetest.GradCheck(t, "Mean", tol, func() *engine.Tensor { return engine.Mean(x) }, x)
}

func TestMatMulGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	tol := enginetest.DefaultTolerance
	a := enginetest.Param(rng, 1, 5, 3)
	b := enginetest.Param(rng, 1, 3, 7)
	enginetest.GradCheck(t, "MatMul", tol, func() *engine.Tensor { return engine.MatMul(a, b) }, a, b)
	ba := enginetest.Param(rng, 1, 2, 3, 4, 5)
	bb := enginetest.Param(rng, 1, 2, 3, 5, 1)
	enginetest.GradCheck(t, "MatMulBatched", tol, func() *engine.Tensor { return engine.MatMul(ba, bb) }, ba, bb)
	shared := enginetest.Param(rng, 1, 5, 2)
	enginetest.GradCheck(t, "MatMulSharedRight", tol, func() *engine.Tensor { return engine.MatMul(ba, shared) }, ba, shared)
}

func TestPoolGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	tol := enginetest.DefaultTolerance
	// Distinct values 0.05 apart: max-pool's choice never flips under the
	// finite-difference step.
	x := engine.Zeros(2, 3, 7, 6).SetRequiresGrad(true)
	enginetest.Edit(x, func(vs []float32) {
		for i, k := range rng.Perm(x.Len()) {
			vs[i] = 0.05 * float32(k-x.Len()/2)
		}
	})
	for _, opt := range []engine.PoolOptions{{Kernel: 2}, {Kernel: 3, Stride: 2, Pad: 1}, {Kernel: 3, Stride: 1, Pad: 1}, {Kernel: 5, Stride: 2}} {
		enginetest.GradCheck(t, fmt.Sprintf("MaxPool2d %+v", opt), tol, func() *engine.Tensor { return engine.MaxPool2d(x, opt) }, x)
		enginetest.GradCheck(t, fmt.Sprintf("AvgPool2d %+v", opt), tol, func() *engine.Tensor { return engine.AvgPool2d(x, opt) }, x)
	}
	enginetest.GradCheck(t, "GlobalAvgPool2d", tol, func() *engine.Tensor { return engine.GlobalAvgPool2d(x) }, x)
	enginetest.GradCheck(t, "Upsample2x", tol, func() *engine.Tensor { return engine.Upsample2x(x) }, x)
	for _, size := range [][2]int{{11, 13}, {3, 4}, {14, 6}} {
		enginetest.GradCheck(t, fmt.Sprint("UpsampleNearest", size), tol, func() *engine.Tensor { return engine.UpsampleNearest(x, size[0], size[1]) }, x)
	}
}

func TestConvGradientsOddShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	tol := enginetest.DefaultTolerance
	cases := []struct {
		n, c, h, w, cout, k int
		opt                 engine.ConvOptions
	}{
		{3, 5, 9, 7, 6, 3, engine.ConvOptions{Stride: 2, Pad: 1}},
		{2, 6, 8, 5, 9, 3, engine.ConvOptions{Stride: 2, Pad: 1, Groups: 3}},
		{2, 4, 7, 9, 8, 3, engine.ConvOptions{Pad: 1, Groups: 4}}, // depthwise multiplier 2
		{1, 3, 11, 11, 5, 5, engine.ConvOptions{Stride: 3, Pad: 2}},
		{3, 2, 5, 5, 3, 1, engine.ConvOptions{Stride: 2}},
		// wide maps take the shifted-GEMM path
		{2, 8, 3, 18, 4, 3, engine.ConvOptions{Pad: 1}},
		{1, 16, 3, 20, 6, 3, engine.ConvOptions{Pad: 2, Dilation: 2, Groups: 2}},
		{2, 8, 5, 35, 3, 3, engine.ConvOptions{Stride: 2, Pad: 1}},
	}
	for _, tc := range cases {
		groups := max(tc.opt.Groups, 1)
		x := enginetest.Param(rng, 1, tc.n, tc.c, tc.h, tc.w)
		w := enginetest.Param(rng, 0.5, tc.cout, tc.c/groups, tc.k, tc.k)
		enginetest.GradCheck(t, fmt.Sprintf("Conv2d %+v", tc), tol, func() *engine.Tensor { return engine.Conv2d(x, w, nil, tc.opt) }, x, w)
	}
}

func TestBackwardRejectsNaNLoss(t *testing.T) {
	x := engine.FromHost([]float32{-1, 2}, 2).SetRequiresGrad(true)
	loss := engine.Sum(engine.Log(x))
	err := engine.Guard(func() error { loss.Backward(); return nil })
	if !errors.Is(err, engine.ErrNotFinite) {
		t.Fatalf("got %v, want a non-finite error", err)
	}
	if !strings.Contains(err.Error(), "Backward") || !strings.Contains(err.Error(), "Sum") {
		t.Fatalf("error %q should name Backward and the op that made the loss", err)
	}
	if x.GradToHost() != nil && (x.GradToHost()[0] != 0 || x.GradToHost()[1] != 0) {
		t.Fatalf("gradients were written despite the NaN loss: %v", x.GradToHost())
	}
}

func TestBroadcastShapeError(t *testing.T) {
	err := engine.Guard(func() error { engine.Add(engine.Zeros(2, 3), engine.Zeros(4, 3)); return nil })
	if !errors.Is(err, engine.ErrShape) || !strings.Contains(err.Error(), "engine: Add:") || !strings.Contains(err.Error(), "[[2 3] [4 3]]") {
		t.Fatalf("got %v", err)
	}
	err = engine.Guard(func() error { engine.MatMul(engine.Zeros(2, 3), engine.Zeros(4, 3)); return nil })
	if !errors.Is(err, engine.ErrShape) || !strings.Contains(err.Error(), "MatMul") {
		t.Fatalf("got %v", err)
	}
}

func TestBackwardWith(t *testing.T) {
	x := engine.FromHost([]float32{1, 2, 3}, 3).SetRequiresGrad(true)
	y := engine.Mul(x, x)
	y.BackwardWith(engine.FromHost([]float32{1, 0, -1}, 3))
	if g := x.GradToHost(); g[0] != 2 || g[1] != 0 || g[2] != -6 {
		t.Fatalf("gradient %v, want [2 0 -6]", g)
	}
	err := engine.Guard(func() error { y.BackwardWith(engine.Zeros(2)); return nil })
	if !errors.Is(err, engine.ErrShape) {
		t.Fatalf("wrong gradient shape: %v", err)
	}
}

func TestRecycle(t *testing.T) {
	x := engine.Full(1, 1<<12)
	engine.NoGrad(func() {
		y := engine.ReLU(x)
		engine.Recycle(y, x) // x was not made by an op and must be left alone
		if v := x.ToHost(); v[0] != 1 {
			t.Fatalf("Recycle touched a tensor the engine did not allocate: %v", v[0])
		}
		err := engine.Guard(func() error { engine.ReLU(y); return nil })
		if !errors.Is(err, engine.ErrReleased) {
			t.Fatalf("an op on a recycled tensor: got %v, want ErrReleased", err)
		}
	})
}

// TestConvFrozenWeights covers the backward passes that skip the weight
// gradient (a frozen teacher feeding a trainable input) and the bias.
func TestConvFrozenWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	for _, opt := range []engine.ConvOptions{{Pad: 1}, {Stride: 2, Pad: 1}} {
		for _, wide := range []int{6, 34} { // im2col and shifted-GEMM paths
			x := enginetest.Param(rng, 1, 2, 8, 5, wide)
			w := engine.RandN(rng, 0.3, 4, 8, 3, 3)
			enginetest.GradCheck(t, fmt.Sprintf("Conv2d frozen %+v width %d", opt, wide), enginetest.DefaultTolerance, func() *engine.Tensor {
				return engine.Conv2d(x, w, nil, opt)
			}, x)
			wt := enginetest.Param(rng, 0.3, 4, 8, 3, 3)
			frozenX := engine.RandN(rng, 1, 2, 8, 5, wide)
			enginetest.GradCheck(t, fmt.Sprintf("Conv2d weights only %+v width %d", opt, wide), enginetest.DefaultTolerance, func() *engine.Tensor {
				return engine.Conv2d(frozenX, wt, nil, opt)
			}, wt)
		}
	}
}

// TestChainedGradients runs convolutions on intermediate tensors, whose
// gradient buffers the first contributing op overwrites instead of clearing
// and adding; h feeds two consumers, so the second must add. Tanh keeps the
// chain smooth: a ReLU between convolutions puts kinks under the
// finite-difference step (ReLU's own overwrite path is covered above).
func TestChainedGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	for _, wide := range []int{7, 33} {
		x := enginetest.Param(rng, 1, 2, 8, 5, wide)
		w1 := enginetest.Param(rng, 0.3, 8, 8, 3, 3)
		w2 := enginetest.Param(rng, 0.3, 8, 8, 3, 3)
		w3 := enginetest.Param(rng, 0.3, 8, 8, 1, 1)
		enginetest.GradCheck(t, fmt.Sprint("chain width ", wide), enginetest.DefaultTolerance, func() *engine.Tensor {
			h := engine.Tanh(engine.Conv2d(x, w1, nil, engine.ConvOptions{Pad: 1}))
			a := engine.Conv2d(h, w2, nil, engine.ConvOptions{Pad: 1, Stride: 2})
			b := engine.Conv2d(h, w3, nil, engine.ConvOptions{Stride: 2})
			return engine.Add(engine.Tanh(a), b)
		}, x, w1, w2, w3)
	}
}

// TestLargePointwise runs pointwise ops on tensors large enough to be split
// across workers (and so under the race detector in CI) and checks every
// element against a direct computation.
func TestLargePointwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	x := enginetest.Param(rng, 1, 3, 40000)
	cases := []struct {
		name string
		op   func(*engine.Tensor) *engine.Tensor
		f    func(float64) float64
		df   func(float64) float64
	}{
		{"ReLU", engine.ReLU, func(v float64) float64 { return math.Max(v, 0) }, func(v float64) float64 {
			if v > 0 {
				return 1
			}
			return 0
		}},
		{"Sigmoid", engine.Sigmoid, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }, func(v float64) float64 {
			s := 1 / (1 + math.Exp(-v))
			return s * (1 - s)
		}},
	}
	for _, tc := range cases {
		x.ZeroGrad()
		y := tc.op(x)
		engine.Sum(engine.MulScalar(y, 2)).Backward()
		yv, gx := y.ToHost(), x.GradToHost()
		for i, v := range x.ToHost() {
			if d := float64(yv[i]) - tc.f(float64(v)); math.Abs(d) > 1e-6 {
				t.Fatalf("%s element %d: got %v want %v", tc.name, i, yv[i], tc.f(float64(v)))
			}
			if d := float64(gx[i]) - 2*tc.df(float64(v)); math.Abs(d) > 1e-6 {
				t.Fatalf("%s gradient element %d: got %v want %v", tc.name, i, gx[i], 2*tc.df(float64(v)))
			}
		}
	}
}
