package onnximport

import (
	"math"

	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// Translations of pointwise ops: activations, arithmetic, identities.

func unaryOp(op string) translateFunc {
	return func(t *translator, n *onnxpb.NodeProto) error {
		x, err := t.single(n)
		if err != nil {
			return err
		}
		t.put(n, models.GraphNode{Name: nodeName(n), Op: op, Inputs: []string{x}, Outputs: []string{n.Output[0]}}, sameVary(t.vary[x]))
		return nil
	}
}

func (t *translator) leakyReLU(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpLeakyReLU, Inputs: []string{x}, Outputs: []string{n.Output[0]},
		Alpha: onnxgraph.AttrFloatOr(n, "alpha", 0.01)}, sameVary(t.vary[x]))
	return nil
}

// gate finds the Mul that multiplies the output of n (a Sigmoid or
// HardSigmoid) by n's own input, when that Mul is the output's only reader:
// x·f(x), which becomes one activation.
func (t *translator) gate(n *onnxpb.NodeProto) *onnxpb.NodeProto {
	y := n.Output[0]
	if t.keep[y] || len(t.consumers[y]) != 1 {
		return nil
	}
	m := t.consumers[y][0]
	if m.OpType != "Mul" || len(m.Input) != 2 || (m.Domain != "" && m.Domain != "ai.onnx") {
		return nil
	}
	x := n.Input[0]
	if (m.Input[0] == x && m.Input[1] == y) || (m.Input[0] == y && m.Input[1] == x) {
		return m
	}
	return nil
}

func (t *translator) sigmoid(n *onnxpb.NodeProto) error {
	if m := t.gate(n); m != nil {
		x, err := t.single(n)
		if err != nil {
			return err
		}
		t.fused[m] = true
		t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpSiLU, Inputs: []string{x}, Outputs: []string{m.Output[0]}}, sameVary(t.vary[x]))
		return nil
	}
	return unaryOp(models.OpSigmoid)(t, n)
}

func (t *translator) hardSigmoid(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	alpha := onnxgraph.AttrFloatOr(n, "alpha", 0.2)
	beta := onnxgraph.AttrFloatOr(n, "beta", 0.5)
	if m := t.gate(n); m != nil && math.Abs(float64(alpha)-1.0/6) < 1e-6 && beta == 0.5 {
		t.fused[m] = true
		t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpHardSwish, Inputs: []string{x}, Outputs: []string{m.Output[0]}}, sameVary(t.vary[x]))
		return nil
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpHardSigmoid, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Alpha: alpha, Beta: beta}, sameVary(t.vary[x]))
	return nil
}

func (t *translator) clip(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	bound := func(k int, attr string) (*float32, error) {
		if t.opset < 11 {
			if a := onnxgraph.Attr(n, attr); a != nil {
				v := a.F
				return &v, nil
			}
			return nil, nil
		}
		if k >= len(n.Input) || n.Input[k] == "" {
			return nil, nil
		}
		v, _, err := t.floats(n, k, attr)
		if err != nil {
			return nil, err
		}
		if len(v) != 1 {
			return nil, t.fail(n, "%s has %d values, want a scalar", attr, len(v))
		}
		return &v[0], nil
	}
	lo, err := bound(1, "min")
	if err != nil {
		return err
	}
	hi, err := bound(2, "max")
	if err != nil {
		return err
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpClip, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Min: lo, Max: hi}, sameVary(t.vary[x]))
	return nil
}

// broadcastVary merges the varying dimensions of NumPy-broadcast operands.
func broadcastVary(a, b []bool) []bool {
	r := max(len(a), len(b))
	out := make([]bool, r)
	for i := range r {
		if k := i - (r - len(a)); k >= 0 && a[k] {
			out[i] = true
		}
		if k := i - (r - len(b)); k >= 0 && b[k] {
			out[i] = true
		}
	}
	return out
}

func binaryOp(op string) translateFunc {
	return func(t *translator, n *onnxpb.NodeProto) error {
		if len(n.Input) != 2 {
			return t.fail(n, "%d inputs, want 2", len(n.Input))
		}
		_, c0 := t.consts[n.Input[0]]
		_, c1 := t.consts[n.Input[1]]
		if c0 && c1 {
			return t.fail(n, "both operands are constants (fold them into one before exporting)")
		}
		a, err := t.tensor(n, n.Input[0])
		if err != nil {
			return err
		}
		b, err := t.tensor(n, n.Input[1])
		if err != nil {
			return err
		}
		t.put(n, models.GraphNode{Name: nodeName(n), Op: op, Inputs: []string{a, b}, Outputs: []string{n.Output[0]}}, broadcastVary(t.vary[a], t.vary[b]))
		return nil
	}
}

func (t *translator) identity(n *onnxpb.NodeProto) error {
	if err := t.usedOutputs(n, "the dropout mask"); err != nil {
		return err
	}
	x, err := t.single(n)
	if err != nil {
		return err
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpIdentity, Inputs: []string{x}, Outputs: []string{n.Output[0]}}, sameVary(t.vary[x]))
	return nil
}
