package quantize

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// ErrNothingToQuantize reports a model with no float Conv, Gemm or MatMul
// whose weights are constants.
var ErrNothingToQuantize = errors.New("quantize: no float Conv, Gemm or MatMul with constant weights to quantize")

// opClass says how an op is quantized.
type opClass int

const (
	classNone opClass = iota
	// classWeighted ops have constant int8 weights (and an int32 bias) and
	// quantized activations on input and output: DQ→op→Q fuses into
	// QLinearConv, QGemm or QLinearMatMul.
	classWeighted
	// classCompute ops get quantized inputs and an output with its own
	// calibrated range (QLinearAdd, QLinearConcat, QLinearLeakyRelu, ...).
	classCompute
	// classShared ops only move or select values: the output reuses the
	// input's scale and zero point so ONNX Runtime can drop the Q/DQ pair
	// and run the op directly on 8-bit data.
	classShared
)

var opClasses = map[string]opClass{
	"Conv": classWeighted, "Gemm": classWeighted, "MatMul": classWeighted,
	"Add": classCompute, "Mul": classCompute, "Concat": classCompute,
	"LeakyRelu": classCompute, "Sigmoid": classCompute,
	"AveragePool": classCompute, "GlobalAveragePool": classCompute,
	"MaxPool": classShared, "Reshape": classShared, "Transpose": classShared,
	"Flatten": classShared, "Squeeze": classShared, "Unsqueeze": classShared,
	"Resize": classShared, "Slice": classShared, "Split": classShared,
	"Gather": classShared, "DepthToSpace": classShared, "SpaceToDepth": classShared,
	"Relu": classShared, "Clip": classShared,
}

// Plan says which nodes and tensors of a prepared model are quantized.
type Plan struct {
	// Model is the prepared float model with the ReLUs that quantization
	// absorbs already removed; Build inserts Q/DQ into a copy of it.
	Model *onnxpb.ModelProto
	// Nodes are the quantized nodes by name, with their class.
	Nodes map[string]opClass
	// Weighted lists the quantized weighted nodes in graph order.
	Weighted []string
	// Tensors are the activations that get a Q→DQ pair, in graph order.
	Tensors []string
	// SharedFrom maps a tensor to the tensor whose parameters it reuses.
	SharedFrom map[string]string
	// Absorbed lists ReLU/Clip nodes removed because the uint8 grid of their
	// producer's output clamps exactly as they did.
	Absorbed []string
	// PerChannel says whether weights are quantized per output channel.
	PerChannel bool
	// Activations and Weights are the grids Build writes.
	Activations Activations
	Weights     WeightRange
	// Skipped explains, per op type, quantizable nodes left in float.
	Skipped map[string]int
}

// Calibrated lists the tensors whose ranges must be measured: every
// quantized tensor that does not reuse another's parameters.
func (p *Plan) Calibrated() []string {
	var out []string
	for _, t := range p.Tensors {
		if _, shared := p.SharedFrom[t]; !shared {
			out = append(out, t)
		}
	}
	return out
}

// root follows SharedFrom to the tensor that owns the parameters.
func (p *Plan) root(t string) string {
	for i := 0; i < len(p.Tensors)+1; i++ {
		src, ok := p.SharedFrom[t]
		if !ok {
			return t
		}
		t = src
	}
	return t
}

// Selection narrows what a plan quantizes.
type Selection struct {
	// Exclude holds node names and op types to keep in float.
	Exclude []string
	// Activations decides whether ReLU can be absorbed (uint8 only).
	Activations Activations
	// QuantizeTail also quantizes the ops after the last quantized weighted
	// layer (a detector's score activations, reshapes and box decoding). They
	// cost little time in float, and 8-bit scores lose ranking precision.
	QuantizeTail bool
	// Weights is the int8 weight grid (full when empty; WeightsAuto must be
	// resolved by the caller).
	Weights WeightRange
	// FloatForSpeed names layers kept float because their 8-bit kernels
	// are slower on this CPU (see the speed probe).
	FloatForSpeed []string
}

// NewPlan decides what to quantize in a prepared model. Every Exclude entry
// must match a node name or an op type present in the graph.
func NewPlan(prep *Prepared, sel Selection) (*Plan, error) {
	m := onnxgraph.Clone(prep.Model)
	g := m.Graph
	if err := checkExclude(g, sel.Exclude); err != nil {
		return nil, err
	}
	if err := checkExclude(g, sel.FloatForSpeed); err != nil {
		return nil, err
	}
	excluded, slow := map[string]bool{}, map[string]bool{}
	for _, e := range sel.Exclude {
		excluded[e] = true
	}
	for _, e := range sel.FloatForSpeed {
		slow[e] = true
	}
	isExcluded := func(n *onnxpb.NodeProto) bool { return excluded[n.Name] || excluded[n.OpType] || slow[n.Name] }

	act, weights := sel.Activations, sel.Weights
	if act == "" {
		act = Uint8
	}
	if weights == "" || weights == WeightsAuto {
		weights = WeightsFull
	}
	p := &Plan{Model: m, Nodes: map[string]opClass{}, SharedFrom: map[string]string{}, PerChannel: prep.PerChannel,
		Activations: act, Weights: weights, Skipped: map[string]int{}}
	ix := onnxgraph.NewIndex(g)
	floatTensor := floatTensors(g, ix)
	quantized := map[string]bool{}
	var tensors []string
	addTensor := func(t string) {
		if t != "" && !quantized[t] && floatTensor[t] && !ix.IsConstant(t) {
			quantized[t] = true
			tensors = append(tensors, t)
		}
	}
	var tail map[*onnxpb.NodeProto]bool
	if !sel.QuantizeTail {
		tail = tailNodes(g, ix, isExcluded)
	}
	for _, n := range g.Node {
		class, known := opClasses[n.OpType]
		if !known || n.Domain != "" {
			continue
		}
		if slow[n.Name] {
			p.Skipped[n.OpType+" (8-bit kernel slower on this CPU)"]++
			continue
		}
		if isExcluded(n) {
			p.Skipped[n.OpType+" (excluded)"]++
			continue
		}
		if tail[n] && class != classWeighted {
			p.Skipped[n.OpType+" (after the last quantized layer)"]++
			continue
		}
		acts := activationInputs(n, ix, floatTensor)
		switch class {
		case classWeighted:
			if !floatTensor[n.Input[0]] {
				// Its input comes from an op whose output type the plan
				// does not know (a two-stage detector's RoiAlign pooling):
				// it stays float rather than get a Q/DQ of unknown type.
				p.Skipped[n.OpType+" (input of unknown type)"]++
				continue
			}
			if !weightedEligible(n, ix) {
				if n.OpType == "MatMul" && len(acts) == 2 {
					class = classCompute // activation × activation
					break
				}
				p.Skipped[n.OpType+" (weights not a float constant)"]++
				continue
			}
		case classCompute:
			if len(acts) == 0 || !anyQuantized(acts, quantized) || hasConstantFloatInput(n, ix, floatTensor) {
				if len(acts) > 0 {
					p.Skipped[n.OpType+" (no quantized input, or a constant operand)"]++
				}
				continue
			}
		case classShared:
			if len(acts) == 0 || acts[0] != n.Input[0] || !quantized[n.Input[0]] {
				continue
			}
		}
		p.Nodes[n.Name] = class
		if class == classWeighted {
			p.Weighted = append(p.Weighted, n.Name)
			addTensor(n.Input[0])
		} else {
			for _, a := range acts {
				addTensor(a)
			}
		}
		for i, o := range n.Output {
			if o == "" || (n.OpType == "MaxPool" && i > 0) {
				continue
			}
			addTensor(o)
			if class == classShared && quantized[o] {
				p.SharedFrom[o] = n.Input[0]
			}
		}
	}
	if len(p.Weighted) == 0 {
		return nil, fmt.Errorf("%w (ops: %s)", ErrNothingToQuantize, opSummary(g))
	}
	if sel.Activations != Int8 {
		tensors = p.absorbActivations(g, ix, tensors)
	}
	p.Tensors = tensors
	return p, nil
}

// absorbActivations removes each quantized ReLU (or Clip with lower bound 0)
// whose input comes only from a quantized weighted or compute node: that
// node's output is then quantized with the ReLU output's uint8 range, which
// starts at 0 with zero point 0, so the Q saturates negatives exactly as the
// ReLU did and ONNX Runtime fuses the pair into one quantized op.
func (p *Plan) absorbActivations(g *onnxpb.GraphProto, ix *onnxgraph.Index, tensors []string) []string {
	removed := map[*onnxpb.NodeProto]bool{}
	dropped := map[string]bool{}
	for _, n := range g.Node {
		if (n.OpType != "Relu" && n.OpType != "Clip") || p.Nodes[n.Name] != classShared || !clipsAtZero(n, ix) {
			continue
		}
		in := n.Input[0]
		prod := ix.Producer[in]
		if prod == nil || len(prod.Output) != 1 || len(ix.Consumers[in]) != 1 || ix.IsGraphOutput(in) {
			continue
		}
		if c, ok := p.Nodes[prod.Name]; !ok || (c != classWeighted && c != classCompute) {
			continue
		}
		prod.Output[0] = n.Output[0]
		delete(p.SharedFrom, n.Output[0])
		delete(p.Nodes, n.Name)
		dropped[in] = true
		removed[n] = true
		p.Absorbed = append(p.Absorbed, n.Name)
	}
	if len(removed) == 0 {
		return tensors
	}
	kept := g.Node[:0]
	for _, n := range g.Node {
		if !removed[n] {
			kept = append(kept, n)
		}
	}
	g.Node = kept
	out := tensors[:0]
	for _, t := range tensors {
		if !dropped[t] {
			out = append(out, t)
		}
	}
	return out
}

// tailNodes marks the nodes from which no quantizable weighted node can be
// reached: everything after the network's last Conv/Gemm/MatMul layers.
// g.Node must be in topological order.
func tailNodes(g *onnxpb.GraphProto, ix *onnxgraph.Index, excluded func(*onnxpb.NodeProto) bool) map[*onnxpb.NodeProto]bool {
	reaches := make(map[*onnxpb.NodeProto]bool, len(g.Node))
	tail := map[*onnxpb.NodeProto]bool{}
	for i := len(g.Node) - 1; i >= 0; i-- {
		n := g.Node[i]
		for _, o := range n.Output {
			for _, c := range ix.Consumers[o] {
				if reaches[c] || (opClasses[c.OpType] == classWeighted && c.Domain == "" && weightedEligible(c, ix) && !excluded(c)) {
					reaches[n] = true
				}
			}
		}
		if !reaches[n] {
			tail[n] = true
		}
	}
	return tail
}

func checkExclude(g *onnxpb.GraphProto, exclude []string) error {
	names, ops := map[string]bool{}, map[string]bool{}
	for _, n := range g.Node {
		names[n.Name] = true
		ops[n.OpType] = true
	}
	for _, e := range exclude {
		if !names[e] && !ops[e] {
			return fmt.Errorf("quantize: exclude %q matches no node name or op type in the model", e)
		}
	}
	return nil
}

// floatTensors marks every tensor whose element type is float32: graph
// inputs and initializers by declaration, node outputs by propagation from
// float inputs through ops that keep the type.
func floatTensors(g *onnxpb.GraphProto, ix *onnxgraph.Index) map[string]bool {
	isFloat := map[string]bool{}
	for _, v := range g.Input {
		if elem, _, _ := onnxgraph.TensorType(v); elem == onnxgraph.Float32 {
			isFloat[v.Name] = true
		}
	}
	for _, t := range g.Initializer {
		if t.DataType == onnxgraph.Float32 {
			isFloat[t.Name] = true
		}
	}
	for _, v := range append(append([]*onnxpb.ValueInfoProto(nil), g.ValueInfo...), g.Output...) {
		if elem, _, _ := onnxgraph.TensorType(v); elem == onnxgraph.Float32 {
			isFloat[v.Name] = true
		}
	}
	for _, n := range g.Node {
		if _, known := opClasses[n.OpType]; !known || n.Domain != "" || len(n.Input) == 0 {
			continue
		}
		if isFloat[n.Input[0]] {
			for i, o := range n.Output {
				if n.OpType == "MaxPool" && i > 0 {
					continue // indices
				}
				isFloat[o] = true
			}
		}
	}
	return isFloat
}

// activationInputs lists a node's non-constant float inputs that carry
// data: for shared ops only the first input (the rest are shapes, axes,
// indices or scales).
func activationInputs(n *onnxpb.NodeProto, ix *onnxgraph.Index, isFloat map[string]bool) []string {
	var out []string
	for i, in := range n.Input {
		if in == "" || !isFloat[in] || ix.IsConstant(in) {
			continue
		}
		if opClasses[n.OpType] == classShared && i > 0 {
			continue
		}
		if opClasses[n.OpType] == classWeighted && i > 0 && n.OpType != "MatMul" {
			continue
		}
		out = append(out, in)
	}
	return out
}

func anyQuantized(ts []string, quantized map[string]bool) bool {
	for _, t := range ts {
		if quantized[t] {
			return true
		}
	}
	return false
}

// hasConstantFloatInput is true for element-wise ops with a constant float
// operand (anchor arithmetic, normalisation), which stay in float.
func hasConstantFloatInput(n *onnxpb.NodeProto, ix *onnxgraph.Index, isFloat map[string]bool) bool {
	if n.OpType != "Add" && n.OpType != "Mul" && n.OpType != "Concat" {
		return false
	}
	for _, in := range n.Input {
		if in != "" && isFloat[in] && ix.IsConstant(in) {
			return true
		}
	}
	return false
}

// weightedEligible reports whether a Conv/Gemm/MatMul has constant float
// weights of a usable rank.
func weightedEligible(n *onnxpb.NodeProto, ix *onnxgraph.Index) bool {
	if len(n.Input) < 2 {
		return false
	}
	w := ix.Init[n.Input[1]]
	if w == nil || w.DataType != onnxgraph.Float32 {
		return false
	}
	switch n.OpType {
	case "Conv":
		if len(w.Dims) < 3 {
			return false
		}
		if len(n.Input) > 2 && n.Input[2] != "" {
			b := ix.Init[n.Input[2]]
			return b != nil && b.DataType == onnxgraph.Float32 && len(b.Dims) == 1 && b.Dims[0] == w.Dims[0]
		}
		return true
	case "Gemm", "MatMul":
		return len(w.Dims) == 2
	}
	return false
}

// clipsAtZero reports whether a Relu, or a Clip whose lower bound is
// exactly 0, clamps negatives to zero.
func clipsAtZero(n *onnxpb.NodeProto, ix *onnxgraph.Index) bool {
	if n.OpType == "Relu" {
		return true
	}
	if len(n.Input) < 2 || n.Input[1] == "" {
		return false
	}
	t := ix.Init[n.Input[1]]
	if t == nil {
		return false
	}
	v, err := onnxgraph.Float32s(t)
	return err == nil && len(v) == 1 && v[0] == 0
}

func opSummary(g *onnxpb.GraphProto) string {
	counts := map[string]int{}
	for _, n := range g.Node {
		counts[n.OpType]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, counts[k])
	}
	return strings.Join(parts, " ")
}
