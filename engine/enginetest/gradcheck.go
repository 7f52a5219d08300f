// Package enginetest holds test helpers shared by every package that builds
// differentiable code on the engine: a finite-difference gradient checker.
package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/profile"
)

// Tolerance bounds the disagreement between analytic and numeric gradients:
// an element passes when |a − n| ≤ Abs + Rel·max(|a|, |n|).
type Tolerance struct {
	Abs, Rel float64
	// Step is the finite-difference step (default 1e-2: float32 needs a
	// large step for central differences to beat rounding).
	Step float32
	// MaxElements checks at most this many elements per input (0 = all).
	MaxElements int
}

// DefaultTolerance suits float32 ops of moderate curvature.
var DefaultTolerance = Tolerance{Abs: 2e-3, Rel: 2e-2, Step: 1e-2, MaxElements: 64}

// T is the subset of testing.TB the checker needs.
type T interface {
	Helper()
	Errorf(format string, args ...any)
}

// GradCheck compares the analytic gradient of sum(f(inputs)·R), for a fixed
// random R, with central finite differences for every input that requires
// gradients. It reports mismatches through t and returns how many failed.
func GradCheck(t T, name string, tol Tolerance, f func() *engine.Tensor, inputs ...*engine.Tensor) int {
	t.Helper()
	if tol.Step == 0 {
		tol.Step = 1e-2
	}
	rng := rand.New(rand.NewPCG(7, 11))
	var weights *engine.Tensor
	loss := func() (*engine.Tensor, float64) {
		out := f()
		if weights == nil {
			weights = engine.RandU(rng, -1, 1, out.Shape()...)
		}
		l := engine.Sum(engine.Mul(out, weights))
		return l, float64(l.Item())
	}
	for _, in := range inputs {
		in.ZeroGrad()
	}
	l, _ := loss()
	l.Backward()
	analytic := make([][]float32, len(inputs))
	for i, in := range inputs {
		if g := in.GradToHost(); g != nil {
			analytic[i] = g
		} else {
			analytic[i] = make([]float32, in.Len())
		}
	}
	failures := 0
	engine.NoGrad(func() {
		for i, in := range inputs {
			if !in.RequiresGrad() {
				continue
			}
			data := in.ToHost()
			idx := rng.Perm(len(data))
			if tol.MaxElements > 0 && len(idx) > tol.MaxElements {
				idx = idx[:tol.MaxElements]
			}
			for _, k := range idx {
				orig := data[k]
				data[k] = orig + tol.Step
				in.CopyFromHost(data)
				_, plus := loss()
				data[k] = orig - tol.Step
				in.CopyFromHost(data)
				_, minus := loss()
				data[k] = orig
				in.CopyFromHost(data)
				numeric := (plus - minus) / (2 * float64(tol.Step))
				a := float64(analytic[i][k])
				if math.Abs(a-numeric) > tol.Abs+tol.Rel*math.Max(math.Abs(a), math.Abs(numeric)) {
					failures++
					if failures <= 5 {
						t.Errorf("%s: input %d %v element %d: analytic %.6g, numeric %.6g", name, i, in.Shape(), k, a, numeric)
					}
				}
			}
		}
	})
	if failures > 5 {
		t.Errorf("%s: %d mismatches in all", name, failures)
	}
	return failures
}

// Param returns a random trainable tensor.
func Param(rng *rand.Rand, std float32, shape ...int) *engine.Tensor {
	return engine.RandN(rng, std, shape...).SetRequiresGrad(true)
}

// Describe formats a shape list for subtest names.
func Describe(shapes ...[]int) string { return fmt.Sprint(shapes) }

// Edit reads t's values to the host, lets fn change them and writes them
// back: tests use it to shape inputs (move values off a kink, set a mask).
func Edit(t *engine.Tensor, fn func(v []float32)) *engine.Tensor {
	v := t.ToHost()
	fn(v)
	t.CopyFromHost(v)
	return t
}

// CPUTime is the process's user and system time so far: benchmarks report
// it beside wall time because other load on a shared machine distorts it
// less.
func CPUTime() time.Duration { return profile.CPUTime() }
