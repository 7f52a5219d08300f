package onnximport

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

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

// normAxis resolves a negative axis against rank r.
func (t *translator) normAxis(n *onnxpb.NodeProto, axis int64, r int) (int, error) {
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis >= int64(r) {
		return 0, t.fail(n, "axis %d is outside a rank-%d input", axis, r)
	}
	return int(axis), nil
}

func (t *translator) concat(n *onnxpb.NodeProto) error {
	ins := make([]string, len(n.Input))
	var vary []bool
	for k, name := range n.Input {
		x, err := t.tensor(n, name)
		if err != nil {
			return err
		}
		ins[k] = x
		if vary == nil {
			vary = sameVary(t.vary[x])
		} else {
			for i, v := range t.vary[x] {
				vary[i] = vary[i] || v
			}
		}
	}
	axis, err := t.normAxis(n, onnxgraph.AttrIntOr(n, "axis", 0), len(t.shape(ins[0])))
	if err != nil {
		return err
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpConcat, Inputs: ins, Outputs: []string{n.Output[0]}, Axis: axis}, vary)
	return nil
}

func (t *translator) split(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	shape := t.shape(x)
	axis, err := t.normAxis(n, onnxgraph.AttrIntOr(n, "axis", 0), len(shape))
	if err != nil {
		return err
	}
	var sizes []int64
	if t.opset < 13 {
		sizes = attrInts(n, "split", nil)
	} else if v, ok, err := t.ints(n, 1, "split"); err != nil {
		return err
	} else if ok {
		sizes = v
	}
	dim := int64(shape[axis])
	if len(sizes) == 0 {
		parts := int64(len(n.Output))
		if num := onnxgraph.AttrIntOr(n, "num_outputs", 0); num > 0 {
			parts = num
		}
		each := (dim + parts - 1) / parts
		for k := int64(0); k < parts; k++ {
			sizes = append(sizes, min(each, dim-k*each))
		}
	}
	if len(sizes) != len(n.Output) {
		return t.fail(n, "%d split sizes for %d outputs", len(sizes), len(n.Output))
	}
	total := int64(0)
	out := make([]int, len(sizes))
	for k, s := range sizes {
		if s <= 0 {
			return t.fail(n, "split size %d", s)
		}
		total += s
		out[k] = int(s)
	}
	if total != dim {
		return t.fail(n, "split sizes %v sum to %d, axis %d has %d", sizes, total, axis, dim)
	}
	if t.vary[x][axis] {
		return t.fail(n, "splits axis %d, which follows the batch or image size, into fixed sizes", axis)
	}
	t.add(n, models.GraphNode{Name: nodeName(n), Op: models.OpSplit, Inputs: []string{x}, Outputs: slices.Clone(n.Output), Axis: axis, Sizes: out})
	t.run()
	for _, o := range n.Output {
		t.vary[o] = sameVary(t.vary[x])
	}
	return nil
}

func (t *translator) slice(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	var starts, ends, axes, steps []int64
	if t.opset < 10 {
		starts, ends, axes = attrInts(n, "starts", nil), attrInts(n, "ends", nil), attrInts(n, "axes", nil)
	} else {
		var ok bool
		if starts, ok, err = t.ints(n, 1, "starts"); err != nil || !ok {
			return firstErr(err, t.fail(n, "starts missing"))
		}
		if ends, ok, err = t.ints(n, 2, "ends"); err != nil || !ok {
			return firstErr(err, t.fail(n, "ends missing"))
		}
		if axes, _, err = t.ints(n, 3, "axes"); err != nil {
			return err
		}
		if steps, _, err = t.ints(n, 4, "steps"); err != nil {
			return err
		}
	}
	if len(ends) != len(starts) {
		return t.fail(n, "%d starts and %d ends", len(starts), len(ends))
	}
	if axes == nil {
		for k := range starts {
			axes = append(axes, int64(k))
		}
	}
	if steps == nil {
		steps = make([]int64, len(starts))
		for k := range steps {
			steps[k] = 1
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return t.fail(n, "%d starts, %d axes and %d steps", len(starts), len(axes), len(steps))
	}
	cur := x
	vary := t.vary[x]
	for k := range starts {
		shape := t.shape(cur)
		axis, err := t.normAxis(n, axes[k], len(shape))
		if err != nil {
			return err
		}
		if steps[k] < 1 {
			return t.fail(n, "step %d on axis %d: only positive steps are translated", steps[k], axis)
		}
		dim := int64(shape[axis])
		s, e := clampIndex(starts[k], dim), clampIndex(ends[k], dim)
		if s >= e {
			return t.fail(n, "slice [%d:%d] of axis %d (size %d) is empty", starts[k], ends[k], axis, dim)
		}
		g := models.GraphNode{Name: nodeName(n), Op: models.OpSlice, Inputs: []string{cur}, Axis: axis, Step: int(steps[k]), Start: int(s)}
		if starts[k] < 0 && vary[axis] {
			g.Start = int(starts[k]) // counted from the end, wherever that is
		}
		switch {
		case ends[k] >= dim:
			// To the end, whatever the size (INT64_MAX in most exports).
		case ends[k] < 0:
			v := int(ends[k])
			g.End = &v
		default:
			v := int(e)
			g.End = &v
		}
		out := n.Output[0]
		if k < len(starts)-1 {
			out = t.fresh(n.Output[0] + "/axis" + fmt.Sprint(axis))
		}
		g.Outputs = []string{out}
		t.add(n, g)
		t.finish(out, sameVary(vary))
		cur = out
	}
	return nil
}

// clampIndex resolves an ONNX slice index against a dimension.
func clampIndex(v, dim int64) int64 {
	if v < 0 {
		v += dim
	}
	return max(0, min(v, dim))
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (t *translator) transpose(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	r := len(t.shape(x))
	perm64 := attrInts(n, "perm", nil)
	perm := make([]int, r)
	for i := range perm {
		perm[i] = r - 1 - i
	}
	if perm64 != nil {
		if len(perm64) != r {
			return t.fail(n, "perm %v for a rank-%d input", perm64, r)
		}
		for i, p := range perm64 {
			perm[i] = int(p)
		}
	}
	vary := make([]bool, r)
	for i, p := range perm {
		if p < 0 || p >= r {
			return t.fail(n, "perm %v", perm64)
		}
		vary[i] = t.vary[x][p]
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpTranspose, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Perm: perm}, vary)
	return nil
}

func (t *translator) reshape(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	target, ok, err := t.ints(n, 1, "shape")
	if err != nil {
		return err
	}
	if !ok {
		return t.fail(n, "the target shape (input 1) is missing")
	}
	in := t.shape(x)
	allowZero := onnxgraph.AttrIntOr(n, "allowzero", 0) != 0
	out := make([]int, len(target))
	infer, known := -1, 1
	for i, d := range target {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return t.fail(n, "target %v copies dimension %d of a rank-%d input", target, i, len(in))
			}
			out[i] = in[i]
		case d == 0:
			return t.fail(n, "allowzero with a zero dimension makes an empty tensor")
		case d == -1:
			if infer >= 0 {
				return t.fail(n, "target %v has two -1", target)
			}
			infer = i
			continue
		case d < 0:
			return t.fail(n, "target %v has dimension %d", target, d)
		default:
			out[i] = int(d)
		}
		known *= out[i]
	}
	total := 1
	for _, d := range in {
		total *= d
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return t.fail(n, "cannot infer -1 of %v from input %v", target, in)
		}
		out[infer] = total / known
	}
	dims, vary, err := followInput(in, out, t.vary[x])
	if err != nil {
		return t.fail(n, "reshape of %v into %v cannot follow the input's size: %v", in, out, err)
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpReshape, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Shape: dims}, vary)
	if got := t.shape(n.Output[0]); !slices.Equal(got, out) {
		return t.fail(n, "the rewritten target %v gives %v, the graph %v", dims, got, out)
	}
	return nil
}

func (t *translator) flatten(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	r := len(t.shape(x))
	axis := onnxgraph.AttrIntOr(n, "axis", 1)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis > int64(r) {
		return t.fail(n, "axis %d for a rank-%d input", axis, r)
	}
	v := t.vary[x]
	vary := []bool{slices.Contains(v[:axis], true), slices.Contains(v[axis:], true)}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpFlatten, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Axis: int(axis)}, vary)
	return nil
}

// window resolves a conv's or pool's kernel, one stride, pads and one
// dilation for the traced input of h×w.
func (t *translator) window(n *onnxpb.NodeProto, kernel []int64, h, w int) (stride int, pads []int, dilation int, err error) {
	if len(kernel) != 2 {
		return 0, nil, 0, t.fail(n, "kernel %v: only 2-D windows are translated", kernel)
	}
	strides := attrInts(n, "strides", []int64{1, 1})
	dilations := attrInts(n, "dilations", []int64{1, 1})
	if len(strides) != 2 || strides[0] != strides[1] {
		return 0, nil, 0, t.fail(n, "strides %v: the engine takes one stride for both axes", strides)
	}
	if len(dilations) != 2 || dilations[0] != dilations[1] {
		return 0, nil, 0, t.fail(n, "dilations %v: the engine takes one dilation for both axes", dilations)
	}
	stride, dilation = int(strides[0]), int(dilations[0])
	p := attrInts(n, "pads", []int64{0, 0, 0, 0})
	if len(p) != 4 {
		return 0, nil, 0, t.fail(n, "pads %v: want 4 values", p)
	}
	pads = []int{int(p[0]), int(p[1]), int(p[2]), int(p[3])}
	switch auto := onnxgraph.AttrStringOr(n, "auto_pad", "NOTSET"); auto {
	case "NOTSET", "":
	case "VALID":
		pads = []int{0, 0, 0, 0}
	case "SAME_UPPER", "SAME_LOWER":
		for axis, in := range []int{h, w} {
			k := int(kernel[axis])
			total := max(0, ((in+stride-1)/stride-1)*stride+(k-1)*dilation+1-in)
			small, big := total/2, total-total/2
			if auto == "SAME_UPPER" {
				pads[axis], pads[axis+2] = small, big
			} else {
				pads[axis], pads[axis+2] = big, small
			}
		}
	default:
		return 0, nil, 0, t.fail(n, "auto_pad %q", auto)
	}
	if slices.Min(pads) < 0 {
		return 0, nil, 0, t.fail(n, "negative pads %v", pads)
	}
	return stride, pads, dilation, nil
}

func (t *translator) conv(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	w, wdims, err := t.floats(n, 1, "weight")
	if err != nil {
		return err
	}
	if len(wdims) != 4 {
		return t.fail(n, "weight dims %v: only 2-D convolutions are translated", wdims)
	}
	in := t.shape(x)
	if len(in) != 4 {
		return t.fail(n, "input %q has shape %v, want NCHW", x, in)
	}
	groups := int(onnxgraph.AttrIntOr(n, "group", 1))
	cout, kh, kw := int(wdims[0]), int(wdims[2]), int(wdims[3])
	if groups < 1 || int(wdims[1])*groups != in[1] {
		return t.fail(n, "weight %v with group %d does not fit %d input channels", wdims, groups, in[1])
	}
	if ks := attrInts(n, "kernel_shape", nil); ks != nil && (len(ks) != 2 || ks[0] != wdims[2] || ks[1] != wdims[3]) {
		return t.fail(n, "kernel_shape %v disagrees with weight dims %v", ks, wdims)
	}
	stride, pads, dilation, err := t.window(n, wdims[2:], in[2], in[3])
	if err != nil {
		return err
	}
	var bias []float32
	if len(n.Input) > 2 && n.Input[2] != "" {
		if bias, _, err = t.floats(n, 2, "bias"); err != nil {
			return err
		}
		if len(bias) != cout {
			return t.fail(n, "bias has %d values for %d output channels", len(bias), cout)
		}
	}
	if x == t.image && t.bgr {
		if groups != 1 {
			return t.fail(n, "reads the BGR image with group %d: only plain convolutions can have their input channels reordered", groups)
		}
		w = reverseInputChannels(w, cout, in[1], kh*kw)
	}
	y := n.Output[0]
	unfold := t.unfoldBN && !t.feedsBatchNorm(y)
	out := y
	if unfold {
		out = t.fresh(y + "/conv")
	}
	g := models.GraphNode{Name: nodeName(n), Op: models.OpConv, Inputs: []string{x}, Outputs: []string{out},
		In: in[1], Out: cout, Kernel: []int{kh, kw}, Stride: stride, Pad: pads, Dilation: dilation, Groups: groups,
		Bias: bias != nil && !unfold}
	l := t.add(n, g)
	l.Conv.Weight.CopyFromHost(w)
	if g.Bias {
		l.Conv.Bias.CopyFromHost(bias)
	}
	vary := []bool{t.vary[x][0], false, t.vary[x][2], t.vary[x][3]}
	t.finish(out, vary)
	if unfold {
		// A fresh batch norm that gives back conv + bias in inference:
		// running mean 0 and variance 1 − eps, so 1/√(var + eps) = 1.
		const eps = 1e-5
		bn := t.add(n, models.GraphNode{Name: nodeName(n) + "/bn", Op: models.OpBatchNorm, Inputs: []string{out}, Outputs: []string{y},
			Channels: cout, Eps: eps, Momentum: 0.1})
		if bias != nil {
			bn.Norm.Beta.CopyFromHost(bias)
		}
		bn.Norm.State.RunningVar.Fill(1 - eps)
		t.finish(y, vary)
	}
	return nil
}

// feedsBatchNorm reports whether a BatchNormalization reads y.
func (t *translator) feedsBatchNorm(y string) bool {
	for _, c := range t.consumers[y] {
		if c.OpType == "BatchNormalization" {
			return true
		}
	}
	return false
}

// reverseInputChannels reverses the input-channel axis of a weight
// [cout, cin, k] (RGB input for a network trained on BGR).
func reverseInputChannels(w []float32, cout, cin, k int) []float32 {
	out := make([]float32, len(w))
	for o := range cout {
		for c := range cin {
			copy(out[(o*cin+c)*k:(o*cin+c+1)*k], w[(o*cin+cin-1-c)*k:(o*cin+cin-c)*k])
		}
	}
	return out
}

func (t *translator) batchNorm(n *onnxpb.NodeProto) error {
	if onnxgraph.AttrIntOr(n, "training_mode", 0) != 0 {
		return t.fail(n, "training_mode 1: only the inference form is translated")
	}
	if onnxgraph.AttrIntOr(n, "spatial", 1) != 1 {
		return t.fail(n, "spatial 0 (per-position statistics)")
	}
	if err := t.usedOutputs(n, "training statistics"); err != nil {
		return err
	}
	x, c, err := t.nchw(n)
	if err != nil {
		return err
	}
	params := make([][]float32, 4)
	for k, what := range []string{"scale", "B", "mean", "var"} {
		if params[k], _, err = t.floats(n, k+1, what); err != nil {
			return err
		}
		if len(params[k]) != c[1] {
			return t.fail(n, "%s has %d values for %d channels", what, len(params[k]), c[1])
		}
	}
	momentum := 1 - onnxgraph.AttrFloatOr(n, "momentum", 0.9)
	if !(momentum > 0 && momentum <= 1) {
		momentum = 0.1
	}
	l := t.add(n, models.GraphNode{Name: nodeName(n), Op: models.OpBatchNorm, Inputs: []string{x}, Outputs: []string{n.Output[0]},
		Channels: c[1], Eps: onnxgraph.AttrFloatOr(n, "epsilon", 1e-5), Momentum: momentum})
	l.Norm.Gamma.CopyFromHost(params[0])
	l.Norm.Beta.CopyFromHost(params[1])
	l.Norm.State.RunningMean.CopyFromHost(params[2])
	l.Norm.State.RunningVar.CopyFromHost(params[3])
	t.finish(n.Output[0], sameVary(t.vary[x]))
	return nil
}

func poolOp(op string) translateFunc {
	return func(t *translator, n *onnxpb.NodeProto) error {
		if err := t.usedOutputs(n, "max-pool indices"); err != nil {
			return err
		}
		x, in, err := t.nchw(n)
		if err != nil {
			return err
		}
		kernel := attrInts(n, "kernel_shape", nil)
		stride, pads, dilation, err := t.window(n, kernel, in[2], in[3])
		if err != nil {
			return err
		}
		if kernel[0] != kernel[1] {
			return t.fail(n, "kernel %v: pools take square windows", kernel)
		}
		if dilation != 1 {
			return t.fail(n, "dilation %d: pools are not dilated", dilation)
		}
		if pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3] {
			return t.fail(n, "pads %v: pools take the same padding on every side", pads)
		}
		k := int(kernel[0])
		if 2*pads[0] > k {
			return t.fail(n, "padding %d exceeds half the kernel %d", pads[0], k)
		}
		if onnxgraph.AttrIntOr(n, "ceil_mode", 0) != 0 {
			for _, d := range in[2:] {
				if (d+2*pads[0]-k)%stride != 0 {
					return t.fail(n, "ceil_mode 1 changes the output size at the traced input %v", in)
				}
			}
		}
		g := models.GraphNode{Name: nodeName(n), Op: op, Inputs: []string{x}, Outputs: []string{n.Output[0]},
			Kernel: []int{k, k}, Stride: stride, Pad: pads}
		if op == models.OpAvgPool {
			g.CountIncludePad = onnxgraph.AttrIntOr(n, "count_include_pad", 0) != 0
		}
		t.add(n, g)
		t.finish(n.Output[0], []bool{t.vary[x][0], false, t.vary[x][2], t.vary[x][3]})
		return nil
	}
}

func (t *translator) globalPool(n *onnxpb.NodeProto) error {
	x, _, err := t.nchw(n)
	if err != nil {
		return err
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpGlobalAvgPool, Inputs: []string{x}, Outputs: []string{n.Output[0]}}, []bool{t.vary[x][0], false, false, false})
	return nil
}

func (t *translator) reduceMean(n *onnxpb.NodeProto) error {
	x, _, err := t.nchw(n)
	if err != nil {
		return err
	}
	axes := attrInts(n, "axes", nil)
	if t.opset >= 18 {
		if axes, _, err = t.ints(n, 1, "axes"); err != nil {
			return err
		}
	}
	norm := make([]int64, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += 4
		}
		norm[i] = a
	}
	slices.Sort(norm)
	if !slices.Equal(norm, []int64{2, 3}) {
		return t.fail(n, "axes %v: only the mean over both spatial axes (a global average pool) is translated", axes)
	}
	keep := onnxgraph.AttrIntOr(n, "keepdims", 1) != 0
	out := n.Output[0]
	if !keep {
		out = t.fresh(out + "/pool")
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpGlobalAvgPool, Inputs: []string{x}, Outputs: []string{out}}, []bool{t.vary[x][0], false, false, false})
	if !keep {
		t.put(n, models.GraphNode{Name: nodeName(n) + "/flatten", Op: models.OpFlatten, Inputs: []string{out}, Outputs: []string{n.Output[0]}, Axis: 1}, []bool{t.vary[x][0], false})
	}
	return nil
}

func (t *translator) pad(n *onnxpb.NodeProto) error {
	x, _, err := t.nchw(n)
	if err != nil {
		return err
	}
	if mode := onnxgraph.AttrStringOr(n, "mode", "constant"); mode != "constant" {
		return t.fail(n, "mode %q: only zero padding is translated", mode)
	}
	pads, ok, err := t.ints(n, 1, "pads")
	if err != nil {
		return err
	}
	if !ok {
		return t.fail(n, "pads (input 1) missing")
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		v, _, err := t.floats(n, 2, "constant_value")
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0] != 0 {
			return t.fail(n, "constant_value %v: only zero padding is translated", v)
		}
	}
	axes := []int64{0, 1, 2, 3}
	if a, found, err := t.ints(n, 3, "axes"); err != nil {
		return err
	} else if found {
		axes = a
	}
	if len(pads) != 2*len(axes) {
		return t.fail(n, "%d pads for %d axes", len(pads), len(axes))
	}
	var p [4]int64 // top, left, bottom, right
	for k, a := range axes {
		if a < 0 {
			a += 4
		}
		begin, end := pads[k], pads[k+len(axes)]
		switch a {
		case 2:
			p[0], p[2] = begin, end
		case 3:
			p[1], p[3] = begin, end
		default:
			if begin != 0 || end != 0 {
				return t.fail(n, "pads %v pad axis %d: only height and width are translated", pads, a)
			}
		}
	}
	if min(p[0], p[1], p[2], p[3]) < 0 {
		return t.fail(n, "negative pads %v (cropping)", pads)
	}
	t.put(n, models.GraphNode{Name: nodeName(n), Op: models.OpPad, Inputs: []string{x}, Outputs: []string{n.Output[0]},
		Pad: []int{int(p[0]), int(p[1]), int(p[2]), int(p[3])}}, sameVary(t.vary[x]))
	return nil
}

func (t *translator) resize(n *onnxpb.NodeProto) error {
	x, in, err := t.nchw(n)
	if err != nil {
		return err
	}
	mode := onnxgraph.AttrStringOr(n, "mode", "nearest")
	coord := onnxgraph.AttrStringOr(n, "coordinate_transformation_mode", "half_pixel")
	if mode != "nearest" && mode != "linear" {
		return t.fail(n, "mode %q: nearest and linear are translated", mode)
	}
	if onnxgraph.AttrIntOr(n, "antialias", 0) != 0 {
		return t.fail(n, "antialias 1")
	}
	if p := onnxgraph.AttrStringOr(n, "keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return t.fail(n, "keep_aspect_ratio_policy %q", p)
	}
	axes := attrInts(n, "axes", []int64{0, 1, 2, 3})
	var scale [4]float64
	for i := range scale {
		scale[i] = 1
	}
	if len(n.Input) > 2 && n.Input[2] != "" {
		s, _, err := t.floats(n, 2, "scales")
		if err != nil {
			return err
		}
		if len(s) > 0 && len(s) != len(axes) {
			return t.fail(n, "%d scales for %d axes", len(s), len(axes))
		}
		for k, v := range s {
			scale[(axes[k]+4)%4] = float64(v)
		}
	}
	if len(n.Input) > 3 && n.Input[3] != "" {
		sizes, _, err := t.ints(n, 3, "sizes")
		if err != nil {
			return err
		}
		if len(sizes) != len(axes) {
			return t.fail(n, "%d sizes for %d axes", len(sizes), len(axes))
		}
		for k, v := range sizes {
			a := (axes[k] + 4) % 4
			scale[a] = float64(v) / float64(in[a])
		}
	}
	if scale[0] != 1 || scale[1] != 1 {
		return t.fail(n, "scales %v resize the batch or channels: only height and width are translated", scale)
	}
	if !(scale[2] > 0 && scale[3] > 0) {
		return t.fail(n, "scales %v: want positive height and width factors", scale)
	}
	oh, ow := int(float64(in[2])*scale[2]), int(float64(in[3])*scale[3])
	g := models.GraphNode{Name: nodeName(n), Op: models.OpResize, Inputs: []string{x}, Outputs: []string{n.Output[0]}, Scale: []float64{scale[2], scale[3]}}
	if mode == "nearest" {
		nm := onnxgraph.AttrStringOr(n, "nearest_mode", "round_prefer_floor")
		for axis, sz := range [][2]int{{in[2], oh}, {in[3], ow}} {
			if !nearestMatchesFloor(coord, nm, sz[0], sz[1], scale[2+axis]) {
				return t.fail(n, "nearest with coordinate_transformation_mode %q and nearest_mode %q picks other pixels than floor(dst·in/out) at %d → %d", coord, nm, sz[0], sz[1])
			}
		}
		g.Mode = models.ResizeNearest
	} else {
		if _, ok := engine.ParseCoordinateMode(coord); !ok {
			return t.fail(n, "coordinate_transformation_mode %q: half_pixel, pytorch_half_pixel, align_corners and asymmetric are translated", coord)
		}
		g.Mode, g.Coordinates = models.ResizeLinear, coord
	}
	t.add(n, g)
	t.finish(n.Output[0], sameVary(t.vary[x]))
	return nil
}

// nearestMatchesFloor reports whether ONNX's nearest resize from in to out
// positions picks the engine's source ⌊dst·in/out⌋ for every output.
func nearestMatchesFloor(coord, nearestMode string, in, out int, scale float64) bool {
	for dst := range out {
		var src float64
		d := float64(dst)
		switch coord {
		case "asymmetric":
			src = d / scale
		case "half_pixel":
			src = (d+0.5)/scale - 0.5
		case "pytorch_half_pixel":
			if out > 1 {
				src = (d+0.5)/scale - 0.5
			}
		case "align_corners":
			if out > 1 {
				src = d * float64(in-1) / float64(out-1)
			}
		case "tf_half_pixel_for_nn":
			src = (d + 0.5) / scale
		default:
			return false
		}
		var idx int
		switch nearestMode {
		case "floor":
			idx = int(math.Floor(src))
		case "ceil":
			idx = int(math.Ceil(src))
		case "round_prefer_floor":
			idx = int(math.Ceil(src - 0.5))
		case "round_prefer_ceil":
			idx = int(math.Floor(src + 0.5))
		default:
			return false
		}
		idx = max(0, min(idx, in-1))
		if idx != min(in-1, dst*in/out) {
			return false
		}
	}
	return true
}

func (t *translator) gemm(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	in := t.shape(x)
	if len(in) != 2 {
		return t.fail(n, "input %q has shape %v, want [N, K]", x, in)
	}
	if onnxgraph.AttrIntOr(n, "transA", 0) != 0 {
		return t.fail(n, "transA 1: the activation must be the first operand as is")
	}
	b, bdims, err := t.floats(n, 1, "B")
	if err != nil {
		return err
	}
	if len(bdims) != 2 {
		return t.fail(n, "B has dims %v, want 2-D", bdims)
	}
	alpha := onnxgraph.AttrFloatOr(n, "alpha", 1)
	beta := onnxgraph.AttrFloatOr(n, "beta", 1)
	transB := onnxgraph.AttrIntOr(n, "transB", 0) != 0
	k, m := int(bdims[0]), int(bdims[1])
	if transB {
		k, m = m, k
	}
	if k != in[1] {
		return t.fail(n, "B %v (transB %v) does not fit input %v", bdims, transB, in)
	}
	w := make([]float32, k*m) // [K, M]
	for i := range k {
		for j := range m {
			v := b[i*m+j]
			if transB {
				v = b[j*k+i]
			}
			w[i*m+j] = alpha * v
		}
	}
	var bias []float32
	if len(n.Input) > 2 && n.Input[2] != "" {
		c, _, err := t.floats(n, 2, "C")
		if err != nil {
			return err
		}
		bias = make([]float32, m)
		switch len(c) {
		case 1:
			for j := range bias {
				bias[j] = beta * c[0]
			}
		case m:
			for j := range bias {
				bias[j] = beta * c[j]
			}
		default:
			return t.fail(n, "C has %d values; a bias per output (%d) or one value is translated", len(c), m)
		}
	}
	return t.linear(n, x, k, m, w, bias)
}

func (t *translator) matMul(n *onnxpb.NodeProto) error {
	x, err := t.single(n)
	if err != nil {
		return err
	}
	b, bdims, err := t.floats(n, 1, "B")
	if err != nil {
		return err
	}
	in := t.shape(x)
	if len(bdims) != 2 || len(in) < 2 || int(bdims[0]) != in[len(in)-1] {
		return t.fail(n, "B %v does not multiply input %v as a constant 2-D matrix", bdims, in)
	}
	return t.linear(n, x, int(bdims[0]), int(bdims[1]), b, nil)
}

func (t *translator) linear(n *onnxpb.NodeProto, x string, k, m int, w, bias []float32) error {
	l := t.add(n, models.GraphNode{Name: nodeName(n), Op: models.OpLinear, Inputs: []string{x}, Outputs: []string{n.Output[0]},
		In: k, Out: m, Bias: bias != nil})
	l.Weight.CopyFromHost(w)
	if bias != nil {
		l.Bias.CopyFromHost(bias)
	}
	vary := sameVary(t.vary[x])
	vary[len(vary)-1] = false
	t.finish(n.Output[0], vary)
	return nil
}

// describeShapes formats tensors' traced shapes for messages.
func (t *translator) describeShapes(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %v", n, t.shape(n))
	}
	return strings.Join(parts, ", ")
}
