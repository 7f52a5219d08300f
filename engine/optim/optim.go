// Package optim updates parameters from their gradients: SGD with momentum
// and AdamW (PyTorch's update rules), learning-rate schedules with linear
// warm-up, and gradient clipping by global norm.
//
// Optimizers hold the parameters they were built with (nn.Params of a
// model) and keep their state (momentum, moment estimates, step count) in
// float32 tensors on the parameters' device that State exposes by name, so
// a checkpoint can save them and LoadState can restore them for a
// bit-exact resume. The updates are device kernels (backend AdamW and SGD);
// only per-step scalars (learning rate, bias corrections) are computed on
// the host.
//
// Errors: constructors reject invalid settings, LoadState names the state
// tensor that is missing or has the wrong shape, and ClipGradNorm reports a
// non-finite gradient naming the parameter. All errors are prefixed "optim:".
package optim

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

// ErrState is wrapped when LoadState receives state that does not match the
// optimizer's parameters.
var ErrState = errors.New("optim: optimizer state mismatch")

// Optimizer applies one update per Step to the parameters it owns.
type Optimizer interface {
	// Step updates every parameter that has a gradient. It does not clear
	// the gradients; call ZeroGrad before the next backward pass.
	Step()
	// ZeroGrad clears the gradients of every parameter.
	ZeroGrad()
	// LR returns the learning rate the next Step uses.
	LR() float32
	// SetLR changes the learning rate (schedules call it every step).
	SetLR(lr float32)
	// Steps is how many updates have been applied.
	Steps() int
	// State returns the optimizer's buffers by name (shared, not copied).
	State() []nn.Named
	// LoadState copies saved buffers into the optimizer.
	LoadState(state []nn.Named) error
}

// DecayFilter reports whether a parameter receives weight decay; detectors
// usually exempt biases and batch-norm scales. Nil decays everything.
type DecayFilter func(name string, t *engine.Tensor) bool

// NoDecayForVectors exempts 1-D parameters (biases, batch-norm gamma and beta).
func NoDecayForVectors(_ string, t *engine.Tensor) bool { return t.Rank() > 1 }

// slot is one parameter with its per-parameter settings and buffers.
type slot struct {
	name  string
	param *engine.Tensor
	decay bool
	bufs  []*engine.Tensor
}

// base holds what every optimizer shares.
type base struct {
	slots []slot
	lr    float32
	steps int
	// stepCount mirrors steps as a tensor so it travels with State.
	stepCount *engine.Tensor
}

func newBase(params []nn.Named, lr float32, decay DecayFilter, buffers ...string) (base, error) {
	if lr < 0 || math.IsNaN(float64(lr)) {
		return base{}, fmt.Errorf("optim: learning rate %v must be non-negative", lr)
	}
	seen := map[string]bool{}
	b := base{lr: lr, stepCount: engine.Zeros(1)}
	for _, p := range params {
		if seen[p.Name] {
			return base{}, fmt.Errorf("optim: parameter %q given twice", p.Name)
		}
		seen[p.Name] = true
		s := slot{name: p.Name, param: p.Tensor, decay: decay == nil || decay(p.Name, p.Tensor)}
		for range buffers {
			s.bufs = append(s.bufs, engine.Zeros(p.Tensor.Shape()...))
		}
		b.slots = append(b.slots, s)
	}
	return b, nil
}

func (b *base) LR() float32      { return b.lr }
func (b *base) SetLR(lr float32) { b.lr = lr }
func (b *base) Steps() int       { return b.steps }

func (b *base) ZeroGrad() {
	for _, s := range b.slots {
		s.param.ZeroGrad()
	}
}

// state names the buffers; it first writes the step count into its tensor
// (one small upload), so Step itself needs no host transfer.
func (b *base) state(buffers []string) []nn.Named {
	b.stepCount.CopyFromHost([]float32{float32(b.steps)})
	out := []nn.Named{{Name: "step", Tensor: b.stepCount}}
	for _, s := range b.slots {
		for i, name := range buffers {
			out = append(out, nn.Named{Name: s.name + "." + name, Tensor: s.bufs[i]})
		}
	}
	return out
}

func (b *base) loadState(buffers []string, state []nn.Named) error {
	want := b.state(buffers)
	given := make(map[string]*engine.Tensor, len(state))
	for _, n := range state {
		given[n.Name] = n.Tensor
	}
	for _, w := range want {
		t, ok := given[w.Name]
		if !ok {
			return fmt.Errorf("optim: state %q missing: %w", w.Name, ErrState)
		}
		if !slices.Equal(t.Shape(), w.Tensor.Shape()) {
			return fmt.Errorf("optim: state %q has shape %v, want %v: %w", w.Name, t.Shape(), w.Tensor.Shape(), ErrState)
		}
	}
	if len(given) != len(want) {
		for _, n := range state {
			if !slices.ContainsFunc(want, func(w nn.Named) bool { return w.Name == n.Name }) {
				return fmt.Errorf("optim: unexpected state %q: %w", n.Name, ErrState)
			}
		}
	}
	steps := given["step"].Item()
	if steps < 0 || float64(steps) != math.Trunc(float64(steps)) {
		return fmt.Errorf("optim: state \"step\" holds %v, want a non-negative integer: %w", steps, ErrState)
	}
	for _, w := range want {
		w.Tensor.CopyFrom(given[w.Name])
	}
	b.steps = int(steps)
	return nil
}

func (b *base) advance() { b.steps++ }

// SGDConfig configures SGD.
type SGDConfig struct {
	LR          float32
	Momentum    float32
	WeightDecay float32 // L2 penalty added to the gradient (coupled, as torch.optim.SGD)
	Nesterov    bool
	Decay       DecayFilter
}

// SGD is stochastic gradient descent with momentum, following
// torch.optim.SGD (dampening 0): g += wd·p; buf = momentum·buf + g;
// p −= lr·buf (or lr·(g + momentum·buf) with Nesterov).
type SGD struct {
	base
	cfg SGDConfig
}

var _ Optimizer = (*SGD)(nil)

var sgdBuffers = []string{"momentum_buffer"}

// NewSGD returns an SGD optimizer over params.
func NewSGD(params []nn.Named, cfg SGDConfig) (*SGD, error) {
	if cfg.Momentum < 0 || cfg.WeightDecay < 0 {
		return nil, fmt.Errorf("optim: sgd momentum %v and weight decay %v must be non-negative", cfg.Momentum, cfg.WeightDecay)
	}
	if cfg.Nesterov && cfg.Momentum == 0 {
		return nil, fmt.Errorf("optim: sgd nesterov needs a positive momentum")
	}
	b, err := newBase(params, cfg.LR, cfg.Decay, sgdBuffers...)
	if err != nil {
		return nil, err
	}
	return &SGD{base: b, cfg: cfg}, nil
}

// Step implements Optimizer.
func (o *SGD) Step() {
	for _, s := range o.slots {
		if !s.param.HasGrad() {
			continue
		}
		wd := o.cfg.WeightDecay
		if !s.decay {
			wd = 0
		}
		engine.SGDUpdate(s.param, s.bufs[0], o.lr, o.cfg.Momentum, wd, o.cfg.Nesterov)
	}
	o.advance()
}

// State implements Optimizer: "step" and "<param>.momentum_buffer".
func (o *SGD) State() []nn.Named { return o.state(sgdBuffers) }

// LoadState implements Optimizer.
func (o *SGD) LoadState(state []nn.Named) error { return o.loadState(sgdBuffers, state) }

// AdamWConfig configures AdamW; zero Beta1, Beta2 and Eps take PyTorch's
// defaults 0.9, 0.999 and 1e-8.
type AdamWConfig struct {
	LR           float32
	Beta1, Beta2 float32
	Eps          float32
	WeightDecay  float32 // decoupled: p −= lr·wd·p before the Adam update
	Decay        DecayFilter
}

// AdamW is Adam with decoupled weight decay, following torch.optim.AdamW.
type AdamW struct {
	base
	cfg AdamWConfig
}

var _ Optimizer = (*AdamW)(nil)

var adamBuffers = []string{"exp_avg", "exp_avg_sq"}

// NewAdamW returns an AdamW optimizer over params.
func NewAdamW(params []nn.Named, cfg AdamWConfig) (*AdamW, error) {
	if cfg.Beta1 == 0 {
		cfg.Beta1 = 0.9
	}
	if cfg.Beta2 == 0 {
		cfg.Beta2 = 0.999
	}
	if cfg.Eps == 0 {
		cfg.Eps = 1e-8
	}
	if cfg.Beta1 < 0 || cfg.Beta1 >= 1 || cfg.Beta2 < 0 || cfg.Beta2 >= 1 || cfg.Eps < 0 || cfg.WeightDecay < 0 {
		return nil, fmt.Errorf("optim: adamw betas (%v, %v) must be in [0, 1), eps %v and weight decay %v non-negative", cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
	}
	b, err := newBase(params, cfg.LR, cfg.Decay, adamBuffers...)
	if err != nil {
		return nil, err
	}
	return &AdamW{base: b, cfg: cfg}, nil
}

// Step implements Optimizer.
func (o *AdamW) Step() {
	t := float64(o.steps + 1)
	bc1 := 1 - math.Pow(float64(o.cfg.Beta1), t)
	bc2 := 1 - math.Pow(float64(o.cfg.Beta2), t)
	u := engine.AdamWScalars{
		Beta1: o.cfg.Beta1, Beta2: o.cfg.Beta2, Eps: o.cfg.Eps,
		StepSize: float32(float64(o.lr) / bc1), InvSqrtBC2: float32(1 / math.Sqrt(bc2)),
	}
	for _, s := range o.slots {
		if !s.param.HasGrad() {
			continue
		}
		u.Shrink = 1
		if s.decay {
			u.Shrink = 1 - o.lr*o.cfg.WeightDecay
		}
		engine.AdamWUpdate(s.param, s.bufs[0], s.bufs[1], u)
	}
	o.advance()
}

// State implements Optimizer: "step", "<param>.exp_avg" and "<param>.exp_avg_sq".
func (o *AdamW) State() []nn.Named { return o.state(adamBuffers) }

// LoadState implements Optimizer.
func (o *AdamW) LoadState(state []nn.Named) error { return o.loadState(adamBuffers, state) }

// ClipGradNorm rescales the gradients of params so that their global L2 norm
// is at most maxNorm (torch.nn.utils.clip_grad_norm_: scale by
// maxNorm/(norm+1e-6) when that is below 1) and returns the norm before
// clipping. The norm is reduced on the device and read once. A NaN or Inf
// gradient is reported naming the parameter, and no gradient is changed.
func ClipGradNorm(params []nn.Named, maxNorm float32) (float32, error) {
	var withGrad []*engine.Tensor
	for _, p := range params {
		if p.Tensor.HasGrad() {
			withGrad = append(withGrad, p.Tensor)
		}
	}
	if len(withGrad) == 0 {
		return 0, nil
	}
	norm := math.Sqrt(float64(engine.GradSquaredNorm(withGrad)))
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		// Find the culprit: one host read per parameter, only on failure.
		for _, p := range params {
			for i, g := range p.Tensor.GradToHost() {
				if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
					return float32(math.NaN()), fmt.Errorf("optim: gradient of %q %v is %v at flat index %d: %w", p.Name, p.Tensor.Shape(), g, i, engine.ErrNotFinite)
				}
			}
		}
		return float32(norm), fmt.Errorf("optim: gradient norm is %v (the sum of squares overflowed float32): %w", norm, engine.ErrNotFinite)
	}
	coef := float64(maxNorm) / (norm + 1e-6)
	if coef < 1 {
		for _, t := range withGrad {
			engine.ScaleGrad(t, float32(coef))
		}
	}
	return float32(norm), nil
}
