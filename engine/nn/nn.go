// Package nn composes engine ops into layers with named parameters: the
// building blocks of gidedge's detectors. A Module names every tensor it owns
// (trainable parameters and buffers such as batch-norm running statistics)
// so optimizers can find the parameters and checkpoints can save the state.
//
// Layers take a training flag in Forward where behaviour differs (batch norm);
// there is no hidden global mode.
package nn

import (
	"fmt"
	"sort"

	"github.com/gidedge/gidedge/engine"
)

// Visitor receives each tensor a module owns with its full dotted name.
type Visitor func(name string, t *engine.Tensor, trainable bool)

// Module is anything that owns named tensors.
type Module interface {
	Visit(prefix string, v Visitor)
}

// Named is a tensor with its name in the module tree.
type Named struct {
	Name   string
	Tensor *engine.Tensor
}

// Join builds a dotted name.
func Join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Params returns the trainable tensors of m in visiting order.
func Params(m Module) []Named {
	var out []Named
	m.Visit("", func(name string, t *engine.Tensor, trainable bool) {
		if trainable {
			out = append(out, Named{name, t})
		}
	})
	return out
}

// State returns every tensor of m (parameters and buffers), sorted by name,
// and fails on duplicate names.
func State(m Module) ([]Named, error) {
	var out []Named
	seen := map[string]bool{}
	var dup string
	m.Visit("", func(name string, t *engine.Tensor, _ bool) {
		if seen[name] && dup == "" {
			dup = name
		}
		seen[name] = true
		out = append(out, Named{name, t})
	})
	if dup != "" {
		return nil, fmt.Errorf("nn: duplicate tensor name %q", dup)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Trainable returns the parameters of params that require gradients (the
// ones an optimizer updates).
func Trainable(params []Named) []Named {
	var out []Named
	for _, p := range params {
		if p.Tensor.RequiresGrad() {
			out = append(out, p)
		}
	}
	return out
}

// SetTrainable marks every parameter of m trainable or frozen (a frozen
// teacher records no graph).
func SetTrainable(m Module, trainable bool) {
	m.Visit("", func(_ string, t *engine.Tensor, isParam bool) {
		if isParam {
			t.SetRequiresGrad(trainable)
		}
	})
}

// CountParams returns the number of trainable scalars.
func CountParams(m Module) int {
	n := 0
	for _, p := range Params(m) {
		n += p.Tensor.Len()
	}
	return n
}

// ZeroGrad clears every parameter gradient.
func ZeroGrad(m Module) {
	for _, p := range Params(m) {
		p.Tensor.ZeroGrad()
	}
}
