package engine_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/enginetest"
)

// naiveConv is a direct six-loop convolution used as the reference.
func naiveConv(x, w, b *engine.Tensor, o engine.ConvOptions) []float32 {
	n, c, h, wd := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	cout, cg, kh, kw := w.Dim(0), w.Dim(1), w.Dim(2), w.Dim(3)
	groups := max(o.Groups, 1)
	s, d := max(o.Stride, 1), max(o.Dilation, 1)
	oh := engine.ConvOutSize(h, kh, s, o.Pad, d)
	ow := engine.ConvOutSize(wd, kw, s, o.Pad, d)
	out := make([]float32, n*cout*oh*ow)
	coutG := cout / groups
	xv, wv := x.ToHost(), w.ToHost()
	var bv []float32
	if b != nil {
		bv = b.ToHost()
	}
	for i := 0; i < n; i++ {
		for co := 0; co < cout; co++ {
			gr := co / coutG
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var acc float32
					if b != nil {
						acc = bv[co]
					}
					for ci := 0; ci < cg; ci++ {
						cin := gr*cg + ci
						for ky := 0; ky < kh; ky++ {
							for kx := 0; kx < kw; kx++ {
								iy := oy*s - o.Pad + ky*d
								ix := ox*s - o.Pad + kx*d
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								acc += xv[((i*c+cin)*h+iy)*wd+ix] * wv[((co*cg+ci)*kh+ky)*kw+kx]
							}
						}
					}
					out[((i*cout+co)*oh+oy)*ow+ox] = acc
				}
			}
		}
	}
	_ = c
	return out
}

func TestConv2d(t *testing.T) {
	cases := []struct {
		n, c, h, w, cout, k int
		opt                 engine.ConvOptions
	}{
		{2, 3, 7, 5, 4, 3, engine.ConvOptions{Pad: 1}},
		{1, 4, 9, 9, 6, 3, engine.ConvOptions{Stride: 2, Pad: 1}},
		{3, 2, 6, 7, 5, 1, engine.ConvOptions{}},
		{2, 4, 8, 8, 4, 3, engine.ConvOptions{Pad: 1, Groups: 4}},
		{1, 6, 7, 9, 6, 3, engine.ConvOptions{Stride: 2, Pad: 1, Groups: 6}},
		{2, 4, 7, 7, 6, 3, engine.ConvOptions{Pad: 2, Dilation: 2, Groups: 2}},
		{1, 3, 5, 5, 2, 2, engine.ConvOptions{Stride: 2}},
		// One-pixel outputs (P6/P7 of a small input): some kernel columns
		// see only padding.
		{1, 2, 2, 2, 3, 3, engine.ConvOptions{Stride: 2, Pad: 1}},
		{2, 2, 1, 5, 3, 3, engine.ConvOptions{Stride: 2, Pad: 1}},
		{1, 2, 1, 1, 3, 3, engine.ConvOptions{Stride: 2, Pad: 1}},
		{1, 2, 3, 1, 2, 3, engine.ConvOptions{Stride: 3, Pad: 1}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			groups := max(tc.opt.Groups, 1)
			x := enginetest.Param(rng, 1, tc.n, tc.c, tc.h, tc.w)
			w := enginetest.Param(rng, 0.5, tc.cout, tc.c/groups, tc.k, tc.k)
			b := enginetest.Param(rng, 0.5, tc.cout)
			got := engine.Conv2d(x, w, b, tc.opt).ToHost()
			want := naiveConv(x, w, b, tc.opt)
			for i, v := range want {
				if d := got[i] - v; d > 1e-4 || d < -1e-4 {
					t.Fatalf("forward element %d: got %v want %v", i, got[i], v)
				}
			}
			enginetest.GradCheck(t, "Conv2d", enginetest.DefaultTolerance, func() *engine.Tensor {
				return engine.Conv2d(x, w, b, tc.opt)
			}, x, w, b)
		})
	}
}

func TestConv2dShapeError(t *testing.T) {
	x := engine.Zeros(1, 3, 8, 8)
	w := engine.Zeros(4, 2, 3, 3)
	err := engine.Guard(func() error {
		engine.Conv2d(x, w, nil, engine.ConvOptions{})
		return nil
	})
	if err == nil {
		t.Fatal("expected an error for mismatched channels")
	}
	want := "engine: Conv2d: weight has 2 input channels per group, input gives 3 (shapes [[1 3 8 8] [4 2 3 3]])"
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("error %q, want prefix %q", got, want)
	}
}

func TestBatchNorm2d(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, training := range []bool{true, false} {
		t.Run(fmt.Sprint("training=", training), func(t *testing.T) {
			x := enginetest.Param(rng, 1, 3, 4, 5, 3)
			g := enginetest.Param(rng, 1, 4)
			b := enginetest.Param(rng, 1, 4)
			st := &engine.BatchNormState{RunningMean: engine.RandN(rng, 0.1, 4), RunningVar: engine.Full(1.5, 4), Momentum: 0.1, Eps: 1e-5}
			enginetest.GradCheck(t, "BatchNorm2d", enginetest.DefaultTolerance, func() *engine.Tensor {
				keep := *st
				defer func() { *st = keep }()
				stCopy := &engine.BatchNormState{RunningMean: st.RunningMean.Clone(), RunningVar: st.RunningVar.Clone(), Momentum: st.Momentum, Eps: st.Eps}
				return engine.BatchNorm2d(x, g, b, stCopy, training)
			}, x, g, b)
		})
	}
}

// TestBatchNorm2dValues checks batch norm's forward values and running
// statistics against numbers computed by hand: two images, two channels of
// 2 values each.
func TestBatchNorm2dValues(t *testing.T) {
	// Channel 0 holds 1, 3 (image 0) and 5, 7 (image 1): mean 4, biased
	// variance 5, unbiased 20/3. Channel 1 holds 2, 2, 2, 6: mean 3,
	// biased variance 3, unbiased 4.
	x := engine.FromHost([]float32{1, 3, 2, 2, 5, 7, 2, 6}, 2, 2, 1, 2)
	gamma := engine.FromHost([]float32{2, 0.5}, 2)
	beta := engine.FromHost([]float32{1, -1}, 2)
	st := &engine.BatchNormState{RunningMean: engine.FromHost([]float32{0.5, -1}, 2), RunningVar: engine.FromHost([]float32{1, 2}, 2), Momentum: 0.25, Eps: 1e-5}

	y := engine.BatchNorm2d(x, gamma, beta, st, true).ToHost()
	s0, s1 := 1/math.Sqrt(5+1e-5), 1/math.Sqrt(3+1e-5)
	want := []float64{
		(1-4)*s0*2 + 1, (3-4)*s0*2 + 1, (2-3)*s1*0.5 - 1, (2-3)*s1*0.5 - 1,
		(5-4)*s0*2 + 1, (7-4)*s0*2 + 1, (2-3)*s1*0.5 - 1, (6-3)*s1*0.5 - 1,
	}
	for i, w := range want {
		if math.Abs(float64(y[i])-w) > 1e-5 {
			t.Fatalf("training output %d: got %v want %v", i, y[i], w)
		}
	}
	// r ← 0.75·r + 0.25·batch, with the unbiased variance.
	wantMean := []float64{0.75*0.5 + 0.25*4, 0.75*-1 + 0.25*3}
	wantVar := []float64{0.75*1 + 0.25*20.0/3, 0.75*2 + 0.25*4}
	rm, rv := st.RunningMean.ToHost(), st.RunningVar.ToHost()
	for c := 0; c < 2; c++ {
		if math.Abs(float64(rm[c])-wantMean[c]) > 1e-6 || math.Abs(float64(rv[c])-wantVar[c]) > 1e-5 {
			t.Fatalf("channel %d running statistics %v, %v; want %v, %v", c, rm[c], rv[c], wantMean[c], wantVar[c])
		}
	}
	// Eval mode normalises with the running statistics and leaves them alone.
	y = engine.BatchNorm2d(x, gamma, beta, st, false).ToHost()
	for i, v := range []float64{1, 3, 2, 2, 5, 7, 2, 6} {
		c := (i / 2) % 2
		g, b := []float64{2, 0.5}[c], []float64{1, -1}[c]
		w := (v-wantMean[c])/math.Sqrt(wantVar[c]+1e-5)*g + b
		if math.Abs(float64(y[i])-w) > 1e-5 {
			t.Fatalf("eval output %d: got %v want %v", i, y[i], w)
		}
	}
	if rm2 := st.RunningMean.ToHost(); rm2[0] != rm[0] || rm2[1] != rm[1] {
		t.Fatalf("eval changed the running mean from %v to %v", rm, rm2)
	}
}

// TestBatchNorm2dAct checks the fused batch norm + activation against the
// two ops run one after the other, which the gradient checks above and in
// ops_grad_test.go cover: values, running statistics and every gradient
// must be the same bit for bit on the device under test (fused or not).
func TestBatchNorm2dAct(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	acts := map[string]engine.Activation{
		"ReLU":          {Op: backend.UnaryReLU},
		"ReLU6":         {Op: backend.UnaryClamp, Alpha: 0, Beta: 6},
		"Clamp(-.3,.4)": {Op: backend.UnaryClamp, Alpha: -0.3, Beta: 0.4},
	}
	for name, act := range acts {
		for _, training := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/training=%v", name, training), func(t *testing.T) {
				xv := engine.RandN(rng, 2, 3, 5, 7, 9).ToHost()
				run := func(fused bool) (y []float32, grads [][]float32, stats [][]float32) {
					x := engine.FromHost(xv, 3, 5, 7, 9).SetRequiresGrad(true)
					g := engine.FromHost([]float32{1, -0.5, 2, 0.7, 1.3}, 5).SetRequiresGrad(true)
					b := engine.FromHost([]float32{0.1, 0, -0.2, 3, -1}, 5).SetRequiresGrad(true)
					st := &engine.BatchNormState{RunningMean: engine.Full(0.2, 5), RunningVar: engine.Full(1.5, 5), Momentum: 0.1, Eps: 1e-5}
					var out *engine.Tensor
					if fused {
						out = engine.BatchNorm2dAct(x, g, b, st, training, act)
					} else {
						bn := engine.BatchNorm2d(x, g, b, st, training)
						if act.Op == backend.UnaryReLU {
							out = engine.ReLU(bn)
						} else {
							out = engine.Clamp(bn, act.Alpha, act.Beta)
						}
					}
					r := engine.RandN(rand.New(rand.NewPCG(1, 1)), 1, 3, 5, 7, 9)
					loss := engine.Sum(engine.Mul(out, r))
					y = out.ToHost()
					loss.Backward()
					grads = [][]float32{x.GradToHost(), g.GradToHost(), b.GradToHost()}
					stats = [][]float32{st.RunningMean.ToHost(), st.RunningVar.ToHost()}
					loss.Release()
					return y, grads, stats
				}
				y1, g1, s1 := run(true)
				y2, g2, s2 := run(false)
				same := func(what string, a, b []float32) {
					t.Helper()
					for i := range a {
						if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
							t.Fatalf("%s[%d]: fused %v, separate %v", what, i, a[i], b[i])
						}
					}
				}
				same("output", y1, y2)
				for i, w := range []string{"x gradient", "gamma gradient", "beta gradient"} {
					same(w, g1[i], g2[i])
				}
				same("running mean", s1[0], s2[0])
				same("running var", s1[1], s2[1])
			})
		}
	}
}
