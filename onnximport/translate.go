package onnximport

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// constant is an initializer or a Constant node's value.
type constant struct {
	dims  []int64
	f     []float32 // float tensors
	i     []int64   // integer tensors
	isInt bool
}

// translator turns ONNX nodes into graph nodes one at a time, running each
// in the engine as it goes: the traced shapes decide what Reshape and
// Resize targets become and check every step.
type translator struct {
	opset     int64 // the opset whose op forms are read (13 after an upgrade)
	origOpset int64 // the file's opset, for messages
	consts    map[string]*constant
	consumers map[string][]*onnxpb.NodeProto
	keep      map[string]bool // tensors asked for: never fused away
	image     string          // the image input
	bgr       bool
	unfoldBN  bool

	net   *models.GraphModule
	env   map[string]*engine.Tensor
	vary  map[string][]bool // per tensor: the dimensions that follow the input's batch or size
	rng   *rand.Rand
	used  map[string]bool // graph node and tensor names
	fused map[*onnxpb.NodeProto]bool
	// from records, per graph node, the ONNX node it came from.
	from []*onnxpb.NodeProto
	// constTensor maps a constant's name to the graph tensor a constant
	// node made of it.
	constTensor map[string]string
}

type translateFunc func(t *translator, n *onnxpb.NodeProto) error

var translators = map[string]translateFunc{
	"Conv":               (*translator).conv,
	"BatchNormalization": (*translator).batchNorm,
	"Relu":               unaryOp(models.OpReLU),
	"Sigmoid":            (*translator).sigmoid,
	"Tanh":               unaryOp(models.OpTanh),
	"HardSwish":          unaryOp(models.OpHardSwish),
	"LeakyRelu":          (*translator).leakyReLU,
	"HardSigmoid":        (*translator).hardSigmoid,
	"Clip":               (*translator).clip,
	"Add":                binaryOp(models.OpAdd),
	"Sub":                binaryOp(models.OpSub),
	"Mul":                binaryOp(models.OpMul),
	"Div":                binaryOp(models.OpDiv),
	"Concat":             (*translator).concat,
	"Split":              (*translator).split,
	"Slice":              (*translator).slice,
	"Transpose":          (*translator).transpose,
	"Reshape":            (*translator).reshape,
	"Flatten":            (*translator).flatten,
	"MaxPool":            poolOp(models.OpMaxPool),
	"AveragePool":        poolOp(models.OpAvgPool),
	"GlobalAveragePool":  (*translator).globalPool,
	"ReduceMean":         (*translator).reduceMean,
	"Pad":                (*translator).pad,
	"Resize":             (*translator).resize,
	"Gemm":               (*translator).gemm,
	"MatMul":             (*translator).matMul,
	"Identity":           (*translator).identity,
	"Dropout":            (*translator).identity,
	"Constant":           func(*translator, *onnxpb.NodeProto) error { return nil },
}

// fail returns the *UnsupportedError of node n.
func (t *translator) fail(n *onnxpb.NodeProto, format string, args ...any) error {
	return unsupported(n, t.origOpset, fmt.Sprintf(format, args...))
}

func unsupported(n *onnxpb.NodeProto, opset int64, reason string) *UnsupportedError {
	name := fmt.Sprintf("%q", n.Name)
	if n.Name == "" && len(n.Output) > 0 {
		name = fmt.Sprintf("producing %q", n.Output[0])
	}
	return &UnsupportedError{Node: name, OpType: n.OpType, Domain: n.Domain, Opset: opset, Reason: reason}
}

// add appends a graph node made from ONNX node src and returns its layer.
func (t *translator) add(src *onnxpb.NodeProto, g models.GraphNode) *models.GraphLayer {
	g.Name = t.fresh(g.Name)
	t.from = append(t.from, src)
	return t.net.AddNode(t.rng, g)
}

// run executes the last added node.
func (t *translator) run() { t.net.RunNode(len(t.net.Config.Nodes)-1, t.env) }

// fresh returns base, or base_1, base_2, … when taken.
func (t *translator) fresh(base string) string {
	if base == "" {
		base = "node"
	}
	name := base
	for k := 1; t.used[name]; k++ {
		name = fmt.Sprintf("%s_%d", base, k)
	}
	t.used[name] = true
	return name
}

// nodeName is the graph name of an ONNX node.
func nodeName(n *onnxpb.NodeProto) string {
	if n.Name != "" {
		return n.Name
	}
	return n.OpType + ":" + n.Output[0]
}

// tensor returns the traced tensor name, making a constant node for a
// constant operand.
func (t *translator) tensor(n *onnxpb.NodeProto, name string) (string, error) {
	if _, ok := t.env[name]; ok {
		return name, nil
	}
	c, ok := t.consts[name]
	if !ok {
		return "", t.fail(n, "input %q is neither computed by a translated node nor a constant", name)
	}
	if made, ok := t.constTensor[name]; ok {
		return made, nil
	}
	if c.isInt {
		return "", t.fail(n, "input %q is an integer constant used as data", name)
	}
	dims := make([]int, len(c.dims))
	for i, d := range c.dims {
		dims[i] = int(d)
	}
	out := t.fresh(name)
	l := t.add(n, models.GraphNode{Name: "const:" + name, Op: models.OpConstant, Outputs: []string{out}, Dims: dims})
	l.Constant.CopyFromHost(c.f)
	t.run()
	t.vary[out] = make([]bool, len(dims))
	t.constTensor[name] = out
	return out, nil
}

// shape is a traced tensor's shape.
func (t *translator) shape(name string) []int { return t.env[name].Shape() }

func (t *translator) floats(n *onnxpb.NodeProto, k int, what string) ([]float32, []int64, error) {
	if k >= len(n.Input) || n.Input[k] == "" {
		return nil, nil, t.fail(n, "%s (input %d) is missing", what, k)
	}
	c, ok := t.consts[n.Input[k]]
	if !ok || c.isInt {
		return nil, nil, t.fail(n, "%s %q must be a float constant (an initializer or Constant node)", what, n.Input[k])
	}
	return c.f, c.dims, nil
}

// ints reads an optional integer constant input; ok is false when absent.
func (t *translator) ints(n *onnxpb.NodeProto, k int, what string) (v []int64, ok bool, err error) {
	if k >= len(n.Input) || n.Input[k] == "" {
		return nil, false, nil
	}
	c, found := t.consts[n.Input[k]]
	if !found || !c.isInt {
		return nil, false, t.fail(n, "%s %q must be an integer constant", what, n.Input[k])
	}
	return c.i, true, nil
}

func attrInts(n *onnxpb.NodeProto, name string, def []int64) []int64 {
	if a := onnxgraph.Attr(n, name); a != nil {
		return a.Ints
	}
	return def
}

// single checks that a node reads one traced tensor and returns it.
func (t *translator) single(n *onnxpb.NodeProto) (string, error) {
	if len(n.Input) == 0 {
		return "", t.fail(n, "no input")
	}
	return t.tensor(n, n.Input[0])
}

// usedOutputs checks that only the first output of n is read.
func (t *translator) usedOutputs(n *onnxpb.NodeProto, what string) error {
	for _, o := range n.Output[1:] {
		if o != "" && (len(t.consumers[o]) > 0 || t.keep[o]) {
			return t.fail(n, "output %q (%s) is used; only the first output is translated", o, what)
		}
	}
	return nil
}

func sameVary(v []bool) []bool { return slices.Clone(v) }

// put adds a node without tensors of its own, runs it and records how its
// output varies.
func (t *translator) put(src *onnxpb.NodeProto, g models.GraphNode, vary []bool) {
	t.add(src, g)
	t.finish(g.Outputs[0], vary)
}

// nchw checks that a node reads one traced NCHW tensor.
func (t *translator) nchw(n *onnxpb.NodeProto) (string, []int, error) {
	x, err := t.single(n)
	if err != nil {
		return "", nil, err
	}
	shape := t.shape(x)
	if len(shape) != 4 {
		return "", nil, t.fail(n, "input %q has shape %v, want NCHW", x, shape)
	}
	return x, shape, nil
}

// finish runs the last added node and records how its output varies.
func (t *translator) finish(out string, vary []bool) {
	t.run()
	t.vary[out] = vary
}
