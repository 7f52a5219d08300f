package optim

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

func param(name string, vals ...float32) nn.Named {
	return nn.Named{Name: name, Tensor: engine.FromHost(vals, len(vals)).SetRequiresGrad(true)}
}

// setGrad gives p the gradient g through a tiny graph (sum(p·g)).
func setGrad(p *engine.Tensor, g ...float32) {
	p.ZeroGrad()
	engine.Sum(engine.Mul(p, engine.FromHost(g, len(g)))).Backward()
}

func close32(t *testing.T, what string, got, want float32) {
	t.Helper()
	if math.Abs(float64(got-want)) > 1e-6*max(1, math.Abs(float64(want))) {
		t.Fatalf("%s: got %.9g want %.9g", what, got, want)
	}
}

func TestSGDHandComputed(t *testing.T) {
	w := param("w", 1, -2)
	b := param("b", 0.5)
	opt, err := NewSGD([]nn.Named{w, b}, SGDConfig{LR: 0.1, Momentum: 0.9, WeightDecay: 0.01, Decay: exemptB})
	if err != nil {
		t.Fatal(err)
	}
	// step 1: w decays (g + 0.01·w), b does not.
	setGrad(w.Tensor, 0.5, 1)
	setGrad(b.Tensor, -1)
	opt.Step()
	// buf_w = [0.5+0.01, 1−0.02] = [0.51, 0.98]; w = [1−0.051, −2−0.098]
	close32(t, "w0 step 1", w.Tensor.ToHost()[0], 0.949)
	close32(t, "w1 step 1", w.Tensor.ToHost()[1], -2.098)
	close32(t, "b step 1", b.Tensor.ToHost()[0], 0.6)
	// step 2: buf = 0.9·buf + g'.
	setGrad(w.Tensor, 0.5, 1)
	setGrad(b.Tensor, -1)
	opt.Step()
	g0 := float32(0.5 + 0.01*0.949)
	buf0 := 0.9*float32(0.51) + g0
	close32(t, "w0 step 2", w.Tensor.ToHost()[0], 0.949-0.1*buf0)
	close32(t, "b step 2", b.Tensor.ToHost()[0], 0.6+0.1*(0.9*1+1))
	if opt.Steps() != 2 {
		t.Fatalf("steps %d", opt.Steps())
	}
	if NoDecayForVectors("bias", b.Tensor) || !NoDecayForVectors("weight", engine.Zeros(2, 2)) {
		t.Fatal("NoDecayForVectors should exempt exactly the 1-D tensors")
	}
}

// exemptB exempts the parameter named b from weight decay.
func exemptB(name string, _ *engine.Tensor) bool { return name != "b" }

func TestSGDNesterovAndPlain(t *testing.T) {
	p := param("p", 1)
	opt, _ := NewSGD([]nn.Named{p}, SGDConfig{LR: 0.5})
	setGrad(p.Tensor, 2)
	opt.Step()
	close32(t, "plain", p.Tensor.ToHost()[0], 0)
	q := param("q", 1)
	nes, _ := NewSGD([]nn.Named{q}, SGDConfig{LR: 0.1, Momentum: 0.5, Nesterov: true})
	setGrad(q.Tensor, 2)
	nes.Step() // buf = 2; update g + 0.5·buf = 3
	close32(t, "nesterov 1", q.Tensor.ToHost()[0], 0.7)
	setGrad(q.Tensor, 2)
	nes.Step() // buf = 3; update 2 + 1.5 = 3.5
	close32(t, "nesterov 2", q.Tensor.ToHost()[0], 0.35)
}

func TestAdamWHandComputed(t *testing.T) {
	p := param("p", 1, -1)
	opt, err := NewAdamW([]nn.Named{p}, AdamWConfig{LR: 0.1, WeightDecay: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	// Step 1: m̂ = g, v̂ = g², update = lr·g/(|g|+eps) = ±lr; decay first.
	setGrad(p.Tensor, 0.2, -3)
	opt.Step()
	close32(t, "p0 step 1", p.Tensor.ToHost()[0], 1*(1-0.05)-0.1*0.2/(0.2+1e-8))
	close32(t, "p1 step 1", p.Tensor.ToHost()[1], -1*(1-0.05)+0.1)
	// Step 2 by the formula, computed in float64.
	before := float64(p.Tensor.ToHost()[0])
	setGrad(p.Tensor, 0.4, 0)
	opt.Step()
	m := 0.9*0.1*0.2 + 0.1*0.4
	v := 0.999*0.001*0.04 + 0.001*0.16
	mh, vh := m/(1-0.81), v/(1-0.999*0.999)
	want := before*(1-0.05) - 0.1*mh/(math.Sqrt(vh)+1e-8)
	close32(t, "p0 step 2", p.Tensor.ToHost()[0], float32(want))
}

func TestResumeIsExact(t *testing.T) {
	grads := [][]float32{{0.3, -0.2}, {0.1, 0.5}, {-0.4, 0.2}, {0.05, -0.6}}
	for _, kind := range []string{"sgd", "adamw"} {
		t.Run(kind, func(t *testing.T) {
			build := func(p nn.Named) Optimizer {
				if kind == "sgd" {
					o, _ := NewSGD([]nn.Named{p}, SGDConfig{LR: 0.1, Momentum: 0.9, WeightDecay: 1e-3})
					return o
				}
				o, _ := NewAdamW([]nn.Named{p}, AdamWConfig{LR: 0.1, WeightDecay: 0.05})
				return o
			}
			full := param("w", 1, 2)
			a := build(full)
			for _, g := range grads {
				setGrad(full.Tensor, g...)
				a.Step()
			}
			half := param("w", 1, 2)
			b := build(half)
			for _, g := range grads[:2] {
				setGrad(half.Tensor, g...)
				b.Step()
			}
			var saved []nn.Named
			for _, s := range b.State() {
				saved = append(saved, nn.Named{Name: s.Name, Tensor: s.Tensor.Clone()})
			}
			resumedParam := nn.Named{Name: "w", Tensor: half.Tensor.Clone().SetRequiresGrad(true)}
			c := build(resumedParam)
			if err := c.LoadState(saved); err != nil {
				t.Fatal(err)
			}
			if c.Steps() != 2 {
				t.Fatalf("restored step count %d, want 2", c.Steps())
			}
			for _, g := range grads[2:] {
				setGrad(resumedParam.Tensor, g...)
				c.Step()
			}
			rv := resumedParam.Tensor.ToHost()
			for i, v := range full.Tensor.ToHost() {
				if rv[i] != v {
					t.Fatalf("element %d: resumed %v, uninterrupted %v", i, rv[i], v)
				}
			}
		})
	}
}

func TestLoadStateErrors(t *testing.T) {
	p := param("w", 1, 2)
	o, _ := NewAdamW([]nn.Named{p}, AdamWConfig{LR: 0.1})
	state := o.State()
	bad := []nn.Named{state[0], state[1], {Name: "w.exp_avg_sq", Tensor: engine.Zeros(3)}}
	if err := o.LoadState(bad); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "w.exp_avg_sq") {
		t.Fatalf("wrong shape: got %v", err)
	}
	if err := o.LoadState(state[:2]); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing: got %v", err)
	}
	extra := append(append([]nn.Named{}, state...), nn.Named{Name: "zzz", Tensor: engine.Zeros(1)})
	if err := o.LoadState(extra); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "zzz") {
		t.Fatalf("extra: got %v", err)
	}
}

func TestSchedules(t *testing.T) {
	s, err := NewStepSchedule(0.1, Warmup{Steps: 10, Factor: 0.1}, []int{20, 30}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		step int
		want float32
	}{{0, 0.01}, {5, 0.1 * (0.1*0.5 + 0.5)}, {10, 0.1}, {19, 0.1}, {20, 0.01}, {35, 0.001}} {
		close32(t, "step schedule", s.LR(c.step), c.want)
	}
	cs, err := NewCosineSchedule(1, 0.1, Warmup{Steps: 4, Factor: 0}, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		step int
		want float32
	}{{0, 0}, {2, 0.5 * float32(0.1+0.45*(1+math.Cos(math.Pi*0.02)))}, {50, 0.55}, {100, 0.1}, {150, 0.1}} {
		close32(t, "cosine", cs.LR(c.step), c.want)
	}
	if _, err := NewStepSchedule(0.1, Warmup{}, []int{5, 2}, 0.1); err == nil {
		t.Fatal("descending milestones accepted")
	}
	if _, err := NewCosineSchedule(0.1, 0.2, Warmup{}, 10); err == nil {
		t.Fatal("min above base accepted")
	}
}

func TestClipGradNorm(t *testing.T) {
	a := param("a", 0, 0)
	b := param("b", 0)
	setGrad(a.Tensor, 3, 0)
	setGrad(b.Tensor, 4)
	norm, err := ClipGradNorm([]nn.Named{a, b}, 1)
	if err != nil {
		t.Fatal(err)
	}
	close32(t, "norm", norm, 5)
	coef := float32(1 / (5 + 1e-6))
	close32(t, "clipped a", a.Tensor.GradToHost()[0], 3*coef)
	close32(t, "clipped b", b.Tensor.GradToHost()[0], 4*coef)
	// Under the limit nothing changes.
	setGrad(b.Tensor, 0.5)
	a.Tensor.ZeroGrad()
	if _, err := ClipGradNorm([]nn.Named{a, b}, 1); err != nil || b.Tensor.GradToHost()[0] != 0.5 {
		t.Fatalf("unclipped gradient changed to %v (%v)", b.Tensor.GradToHost()[0], err)
	}
	b.Tensor.GradTensor().CopyFromHost([]float32{float32(math.NaN())})
	if _, err := ClipGradNorm([]nn.Named{a, b}, 1); !errors.Is(err, engine.ErrNotFinite) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("NaN gradient: got %v", err)
	}
}

// TestLargeParameterSplit updates a parameter large enough to be split across
// workers (and so under the race detector) and checks every element.
func TestLargeParameterSplit(t *testing.T) {
	const n = 50000
	vals := make([]float32, n)
	grads := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i%97) / 97
		grads[i] = float32(i%31)/31 - 0.5
	}
	p := nn.Named{Name: "big", Tensor: engine.FromHost(append([]float32(nil), vals...), n).SetRequiresGrad(true)}
	setGrad(p.Tensor, grads...)
	opt, _ := NewAdamW([]nn.Named{p}, AdamWConfig{LR: 0.01, WeightDecay: 0.1})
	opt.Step()
	got := p.Tensor.ToHost()
	for i, v := range vals {
		g := float64(grads[i])
		want := float64(v)*(1-0.001) - 0.01*g/(math.Abs(g)+1e-8)
		if math.Abs(float64(got[i])-want) > 1e-6 {
			t.Fatalf("element %d: got %v want %v", i, got[i], want)
		}
	}
}
