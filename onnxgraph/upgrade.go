package onnxgraph

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/onnxpb"
)

// ErrUpgrade reports a model that UpgradeOpset cannot convert; the message
// lists every node it could not convert and why.
var ErrUpgrade = errors.New("onnxgraph: cannot upgrade opset")

// MaxUpgradeOpset is the newest default-domain opset UpgradeOpset targets.
const MaxUpgradeOpset = 13

// compatibleSince gives, per default-domain op, the oldest opset from which
// the op's meaning and inputs are unchanged up to opset 13 (later versions
// only widened types or added attributes with backward-compatible defaults).
var compatibleSince = map[string]int64{
	"Abs": 1, "Acos": 7, "Acosh": 9, "Asin": 7, "Asinh": 9, "Atan": 7, "Atanh": 9,
	"ArgMax": 1, "ArgMin": 1, "AveragePool": 1, "BatchNormalization": 9,
	"Cast": 6, "Ceil": 1, "Celu": 12, "Clip": 11, "Compress": 9, "Concat": 4,
	"Constant": 1, "ConstantOfShape": 9, "Conv": 1, "ConvInteger": 10, "ConvTranspose": 1,
	"Cos": 7, "Cosh": 9, "CumSum": 11, "DepthToSpace": 1, "DequantizeLinear": 10,
	"Dropout": 12, "Einsum": 12, "Elu": 1, "Erf": 9, "Exp": 1, "Expand": 8,
	"EyeLike": 9, "Flatten": 1, "Floor": 1, "Gather": 1, "GatherElements": 11,
	"GatherND": 11, "Gemm": 7, "GlobalAveragePool": 1, "GlobalLpPool": 2,
	"GlobalMaxPool": 1, "HardSigmoid": 1, "Identity": 1, "InstanceNormalization": 1,
	"IsInf": 10, "IsNaN": 9, "LeakyRelu": 1, "Log": 1, "LpNormalization": 1,
	"LpPool": 2, "LRN": 1, "MatMul": 1, "MatMulInteger": 10, "MaxPool": 1,
	"MaxRoiPool": 1, "Mod": 10, "Neg": 1, "NonMaxSuppression": 10, "NonZero": 9,
	"Not": 1, "OneHot": 9, "Pad": 11, "PRelu": 1, "QLinearConv": 10,
	"QLinearMatMul": 10, "QuantizeLinear": 10, "Range": 11, "Reciprocal": 1,
	"ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1, "ReduceLogSumExp": 1,
	"ReduceMax": 1, "ReduceMean": 1, "ReduceMin": 1, "ReduceProd": 1,
	"ReduceSumSquare": 1, "Relu": 1, "Reshape": 5, "Resize": 11, "RoiAlign": 10,
	"Round": 11, "ScatterElements": 11, "ScatterND": 11, "Selu": 1, "Shape": 1,
	"Shrink": 9, "Sigmoid": 1, "Sign": 9, "Sin": 7, "Sinh": 9, "Size": 1,
	"Slice": 10, "Softplus": 1, "Softsign": 1, "SpaceToDepth": 1, "Sqrt": 1,
	"Tan": 7, "Tanh": 1, "ThresholdedRelu": 10, "Tile": 6, "TopK": 10,
	"Transpose": 1, "Where": 9,
	// Element-wise ops with numpy broadcasting from opset 7 (8 for the variadic ones).
	"Add": 7, "Sub": 7, "Mul": 7, "Div": 7, "Pow": 7, "And": 7, "Or": 7, "Xor": 7,
	"Equal": 7, "Greater": 7, "Less": 7, "Max": 8, "Min": 8, "Sum": 8, "Mean": 8,
	// Already in their opset-13 form.
	"Split": 13, "Squeeze": 13, "Unsqueeze": 13, "Softmax": 13, "LogSoftmax": 13,
	"Hardmax": 13, "ReduceSum": 13,
}

// legacyBroadcastOps had a "broadcast" attribute before opset 7.
var legacyBroadcastOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "And": true,
	"Or": true, "Xor": true, "Equal": true, "Greater": true, "Less": true,
}

type upgrader struct {
	m     *onnxpb.ModelProto
	g     *onnxpb.GraphProto
	from  int64
	namer *Namer
	ix    *Index
	added []*onnxpb.TensorProto
}

type converter func(u *upgrader, n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error)

var converters = map[string]converter{
	"Split":              (*upgrader).split,
	"Squeeze":            (*upgrader).axesToInput,
	"Unsqueeze":          (*upgrader).axesToInput,
	"ReduceSum":          (*upgrader).axesToInput,
	"Softmax":            (*upgrader).softmax,
	"LogSoftmax":         (*upgrader).softmax,
	"Hardmax":            (*upgrader).softmax,
	"Slice":              (*upgrader).slice,
	"Clip":               (*upgrader).clip,
	"Pad":                (*upgrader).pad,
	"Dropout":            (*upgrader).dropout,
	"Upsample":           (*upgrader).upsample,
	"Resize":             (*upgrader).resize10,
	"BatchNormalization": (*upgrader).batchNorm,
	"TopK":               (*upgrader).topK,
	"Reshape":            (*upgrader).reshape,
	"Gemm":               (*upgrader).dropBroadcast,
	"Cast":               (*upgrader).cast,
	"Concat":             (*upgrader).concat,
}

// UpgradeOpset returns a copy of m converted to default-domain opset target
// (at most MaxUpgradeOpset). Nodes whose definition changed on the way, such
// as Split, Squeeze/Unsqueeze and ReduceSum (attribute to input), Softmax
// (2-D coercion), Slice/Pad/Clip (attributes to inputs), Upsample and
// Resize-10, are rewritten to the target's form with the same results. When
// a node cannot be converted, m is left alone and the error, wrapping
// ErrUpgrade, names every such node.
func UpgradeOpset(m *onnxpb.ModelProto, target int64) (*onnxpb.ModelProto, error) {
	from := Opset(m)
	if target > MaxUpgradeOpset {
		return nil, fmt.Errorf("%w from %d to %d: conversions are defined up to opset %d", ErrUpgrade, from, target, MaxUpgradeOpset)
	}
	if from >= target {
		return Clone(m), nil
	}
	if from == 0 {
		return nil, fmt.Errorf("%w: the model imports no default-domain opset", ErrUpgrade)
	}
	c := Clone(m)
	u := &upgrader{m: c, g: c.Graph, from: from, namer: NewNamer(c.Graph), ix: NewIndex(c.Graph)}
	var problems []string
	out := make([]*onnxpb.NodeProto, 0, len(c.Graph.Node))
	for _, n := range c.Graph.Node {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			out = append(out, n)
			continue
		}
		if from < 6 {
			RemoveAttr(n, "consumed_inputs")
		}
		if from < 7 {
			RemoveAttr(n, "is_test")
			if legacyBroadcastOps[n.OpType] {
				if AttrIntOr(n, "broadcast", 0) != 0 {
					problems = append(problems, fmt.Sprintf("%s uses the pre-opset-7 broadcast attribute", Describe(n)))
					continue
				}
				RemoveAttr(n, "broadcast")
				RemoveAttr(n, "axis")
			}
		}
		since, known := compatibleSince[n.OpType]
		if known && from >= since {
			out = append(out, n)
			continue
		}
		conv := converters[n.OpType]
		if conv == nil {
			if known {
				problems = append(problems, fmt.Sprintf("%s: opset %d version has no conversion (compatible from opset %d)", Describe(n), from, since))
			} else {
				problems = append(problems, fmt.Sprintf("%s: op type not known to the upgrader", Describe(n)))
			}
			continue
		}
		nodes, err := conv(u, n)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out = append(out, nodes...)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("%w from %d to %d: %s", ErrUpgrade, from, target, strings.Join(problems, "; "))
	}
	c.Graph.Node = out
	c.Graph.Initializer = append(c.Graph.Initializer, u.added...)
	SetOpset(c, target)
	if c.IrVersion < 7 {
		c.IrVersion = 7 // opset 13 needs IR 7
	}
	return c, nil
}

func (u *upgrader) constInt64(base string, dims []int64, v []int64) string {
	t := Int64Tensor(u.namer.Name(base), dims, v)
	u.added = append(u.added, t)
	return t.Name
}

func (u *upgrader) constFloat(base string, v float32) string {
	t := Float32Tensor(u.namer.Name(base), nil, []float32{v})
	u.added = append(u.added, t)
	return t.Name
}

func baseName(n *onnxpb.NodeProto, suffix string) string {
	if n.Name != "" {
		return n.Name + "_" + suffix
	}
	return n.Output[0] + "_" + suffix
}

// attrToInput moves an INTS attribute to an int64 input at position pos,
// padding skipped optional inputs with "".
func (u *upgrader) attrToInput(n *onnxpb.NodeProto, attr string, pos int) {
	a := Attr(n, attr)
	if a == nil {
		return
	}
	name := u.constInt64(baseName(n, attr), []int64{int64(len(a.Ints))}, a.Ints)
	RemoveAttr(n, attr)
	for len(n.Input) < pos {
		n.Input = append(n.Input, "")
	}
	if len(n.Input) == pos {
		n.Input = append(n.Input, name)
	} else {
		n.Input[pos] = name
	}
}

func (u *upgrader) split(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if u.from < 2 {
		return nil, fmt.Errorf("%s: opset-1 Split is not supported", Describe(n))
	}
	u.attrToInput(n, "split", 1)
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) axesToInput(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	u.attrToInput(n, "axes", 1)
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) slice(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if Attr(n, "starts") == nil || Attr(n, "ends") == nil {
		return nil, fmt.Errorf("%s: starts and ends attributes missing", Describe(n))
	}
	axes := Attr(n, "axes")
	u.attrToInput(n, "starts", 1)
	u.attrToInput(n, "ends", 2)
	if axes != nil {
		u.attrToInput(n, "axes", 3)
	}
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) clip(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	lo := AttrFloatOr(n, "min", -math.MaxFloat32)
	hi := AttrFloatOr(n, "max", math.MaxFloat32)
	RemoveAttr(n, "min")
	RemoveAttr(n, "max")
	n.Input = []string{n.Input[0], u.constFloat(baseName(n, "min"), lo), u.constFloat(baseName(n, "max"), hi)}
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) pad(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	pads := Attr(n, "pads")
	if pads == nil {
		pads = Attr(n, "paddings") // opset 1 name
	}
	if pads == nil {
		return nil, fmt.Errorf("%s: pads attribute missing", Describe(n))
	}
	value := AttrFloatOr(n, "value", 0)
	padsName := u.constInt64(baseName(n, "pads"), []int64{int64(len(pads.Ints))}, pads.Ints)
	RemoveAttr(n, "pads")
	RemoveAttr(n, "paddings")
	RemoveAttr(n, "value")
	n.Input = []string{n.Input[0], padsName, u.constFloat(baseName(n, "value"), value)}
	return []*onnxpb.NodeProto{n}, nil
}

// dropout is the identity at inference; its mask output must be unused.
func (u *upgrader) dropout(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.Output) > 1 && n.Output[1] != "" && (len(u.ix.Consumers[n.Output[1]]) > 0 || u.ix.IsGraphOutput(n.Output[1])) {
		return nil, fmt.Errorf("%s: its mask output %q is used", Describe(n), n.Output[1])
	}
	return []*onnxpb.NodeProto{NewNode("Identity", n.Name, n.Input[:1], n.Output[:1])}, nil
}

func (u *upgrader) batchNorm(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if AttrIntOr(n, "spatial", 1) != 1 {
		return nil, fmt.Errorf("%s: spatial=0 has no opset-13 equivalent", Describe(n))
	}
	RemoveAttr(n, "spatial")
	for _, o := range n.Output[1:] {
		if o != "" && (len(u.ix.Consumers[o]) > 0 || u.ix.IsGraphOutput(o)) {
			return nil, fmt.Errorf("%s: training output %q is used", Describe(n), o)
		}
	}
	n.Output = n.Output[:1]
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) topK(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	k := Attr(n, "k")
	if k == nil {
		return nil, fmt.Errorf("%s: k attribute missing", Describe(n))
	}
	name := u.constInt64(baseName(n, "k"), []int64{1}, []int64{k.I})
	RemoveAttr(n, "k")
	n.Input = []string{n.Input[0], name}
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) reshape(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	u.attrToInput(n, "shape", 1)
	if len(n.Input) < 2 {
		return nil, fmt.Errorf("%s: shape attribute missing", Describe(n))
	}
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) dropBroadcast(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	RemoveAttr(n, "broadcast")
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) concat(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if Attr(n, "axis") == nil {
		SetAttr(n, AttrInt("axis", 1)) // opset-1 default
	}
	return []*onnxpb.NodeProto{n}, nil
}

func (u *upgrader) cast(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	a := Attr(n, "to")
	if a == nil {
		return nil, fmt.Errorf("%s: to attribute missing", Describe(n))
	}
	if a.Type == onnxpb.AttributeProto_STRING {
		v, ok := onnxpb.TensorProto_DataType_value[strings.ToUpper(string(a.S))]
		if !ok {
			return nil, fmt.Errorf("%s: unknown type name %q", Describe(n), a.S)
		}
		SetAttr(n, AttrInt("to", int64(v)))
	}
	return []*onnxpb.NodeProto{n}, nil
}

// softmax rewrites the opset<13 form, which flattens the input to 2-D at
// axis and normalises over everything after it, as Flatten → op(axis=1) →
// Reshape back to the input's shape. When axis is provably the last one a
// plain attribute update is enough.
func (u *upgrader) softmax(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	axis := AttrIntOr(n, "axis", 1)
	dims, ok := Shape(u.g, n.Input[0])
	if !ok {
		dims, ok = Shape(u.g, n.Output[0]) // same rank as the input
	}
	if ok && len(dims) > 0 {
		if axis < 0 {
			axis += int64(len(dims))
		}
		if axis == int64(len(dims))-1 {
			SetAttr(n, AttrInt("axis", -1))
			return []*onnxpb.NodeProto{n}, nil
		}
	} else if axis == -1 {
		return []*onnxpb.NodeProto{n}, nil
	}
	in, out := n.Input[0], n.Output[0]
	flat := u.namer.Name(baseName(n, "flat"))
	soft := u.namer.Name(baseName(n, "flat_out"))
	shape := u.namer.Name(baseName(n, "shape"))
	nodes := []*onnxpb.NodeProto{
		NewNode("Flatten", u.namer.Name(baseName(n, "flatten")), []string{in}, []string{flat}, AttrInt("axis", axis)),
		NewNode(n.OpType, n.Name, []string{flat}, []string{soft}, AttrInt("axis", 1)),
		NewNode("Shape", u.namer.Name(baseName(n, "shape")), []string{in}, []string{shape}),
		NewNode("Reshape", u.namer.Name(baseName(n, "reshape")), []string{soft, shape}, []string{out}),
	}
	return nodes, nil
}

// upsample turns Upsample (opset 7–9) into Resize-13 with the same sampling:
// asymmetric coordinates, nearest rounding down.
func (u *upgrader) upsample(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	mode := AttrStringOr(n, "mode", "nearest")
	var scales string
	switch {
	case len(n.Input) >= 2 && n.Input[1] != "":
		scales = n.Input[1]
	case Attr(n, "scales") != nil:
		s := Attr(n, "scales").Floats
		t := Float32Tensor(u.namer.Name(baseName(n, "scales")), []int64{int64(len(s))}, s)
		u.added = append(u.added, t)
		scales = t.Name
	default:
		height, width := AttrFloatOr(n, "height_scale", 0), AttrFloatOr(n, "width_scale", 0)
		if height == 0 || width == 0 {
			return nil, fmt.Errorf("%s: no scales", Describe(n))
		}
		t := Float32Tensor(u.namer.Name(baseName(n, "scales")), []int64{4}, []float32{1, 1, height, width})
		u.added = append(u.added, t)
		scales = t.Name
	}
	return []*onnxpb.NodeProto{u.resizeNode(n, mode, scales)}, nil
}

func (u *upgrader) resize10(n *onnxpb.NodeProto) ([]*onnxpb.NodeProto, error) {
	if len(n.Input) != 2 {
		return nil, fmt.Errorf("%s: opset-10 Resize has %d inputs, want 2 (X, scales)", Describe(n), len(n.Input))
	}
	return []*onnxpb.NodeProto{u.resizeNode(n, AttrStringOr(n, "mode", "nearest"), n.Input[1])}, nil
}

func (u *upgrader) resizeNode(n *onnxpb.NodeProto, mode, scales string) *onnxpb.NodeProto {
	if mode == "bilinear" {
		mode = "linear"
	}
	attrs := []*onnxpb.AttributeProto{
		AttrString("mode", mode),
		AttrString("coordinate_transformation_mode", "asymmetric"),
	}
	if mode == "nearest" {
		attrs = append(attrs, AttrString("nearest_mode", "floor"))
	}
	return NewNode("Resize", n.Name, []string{n.Input[0], "", scales}, n.Output, attrs...)
}
