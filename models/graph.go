package models

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
)

// GraphConfig is a network given as engine ops over named tensors, in
// execution order: what `gidedge import` makes of an ONNX graph, so that a
// pretrained backbone or neck trains like any other part of a detector. A
// checkpoint holds its weights like every other parameter; the config
// holds its structure.
//
// A backbone graph reads one input, the image [N, 3, H, W], and gives
// three outputs C3, C4, C5 at strides 8, 16 and 32. A neck graph reads the
// backbone's three outputs, in order, and gives P3, P4, P5 at strides 8,
// 16 and 32 with fpn.channels channels each.
type GraphConfig struct {
	// Source says where the graph came from (file, opset, producer).
	Source  string      `json:"source,omitempty"`
	Inputs  []GraphPort `json:"inputs"`
	Outputs []GraphPort `json:"outputs"`
	Nodes   []GraphNode `json:"nodes"`
}

// GraphPort is a named tensor at the edge of a graph, with the channels
// and stride (input pixels per position) it has.
type GraphPort struct {
	Name     string `json:"name"`
	Channels int    `json:"channels"`
	Stride   int    `json:"stride"`
}

// Graph ops. Each node reads Inputs and writes Outputs (one output except
// split); the fields a node uses depend on its op (GraphNode).
const (
	OpConv          = "conv"
	OpBatchNorm     = "batchnorm"
	OpReLU          = "relu"
	OpLeakyReLU     = "leaky_relu"
	OpSigmoid       = "sigmoid"
	OpSiLU          = "silu"
	OpHardSwish     = "hardswish"
	OpHardSigmoid   = "hardsigmoid"
	OpClip          = "clip"
	OpTanh          = "tanh"
	OpAdd           = "add"
	OpSub           = "sub"
	OpMul           = "mul"
	OpDiv           = "div"
	OpConstant      = "constant"
	OpConcat        = "concat"
	OpSplit         = "split"
	OpSlice         = "slice"
	OpTranspose     = "transpose"
	OpReshape       = "reshape"
	OpFlatten       = "flatten"
	OpMaxPool       = "maxpool"
	OpAvgPool       = "avgpool"
	OpGlobalAvgPool = "global_avgpool"
	OpPad           = "pad"
	OpResize        = "resize"
	OpLinear        = "linear"
	OpIdentity      = "identity"
)

// GraphOps lists every op a graph may use, in the order docs/import.md
// tables them.
var GraphOps = []string{
	OpConv, OpBatchNorm, OpReLU, OpLeakyReLU, OpSigmoid, OpSiLU, OpHardSwish, OpHardSigmoid, OpClip, OpTanh,
	OpAdd, OpSub, OpMul, OpDiv, OpConstant, OpConcat, OpSplit, OpSlice, OpTranspose, OpReshape, OpFlatten,
	OpMaxPool, OpAvgPool, OpGlobalAvgPool, OpPad, OpResize, OpLinear, OpIdentity,
}

// Resize modes of a resize node.
const (
	ResizeNearest = "nearest"
	ResizeLinear  = "linear"
)

// GraphNode is one op. Name is unique in the graph and names the node's
// tensors in checkpoints ("<name>.weight"). Fields by op:
//
//	conv         In, Out, Kernel [kh, kw], Stride, Pad [top, left, bottom, right],
//	             Dilation, Groups, Bias; tensors weight [Out, In/Groups, kh, kw], bias [Out]
//	batchnorm    Channels, Eps, Momentum; tensors weight, bias, running_mean, running_var
//	leaky_relu   Alpha (negative slope)
//	hardsigmoid  Alpha, Beta: clamp(Alpha·x + Beta, 0, 1)
//	clip         Min, Max (nil: unbounded on that side)
//	add sub mul div  two inputs, NumPy broadcasting
//	constant     Dims; no inputs, tensor value (not trained)
//	concat       Axis
//	split        Axis, Sizes (one output each)
//	slice        Axis, Start, End (nil: to the end), Step; negative Start/End count from the end
//	transpose    Perm
//	reshape      Shape: ReshapeDims that follow the input's size
//	flatten      Axis: [d0·…·d(Axis−1), rest]
//	maxpool avgpool  Kernel (square), Stride, Pad [t, l, b, r] (equal), CountIncludePad (avgpool)
//	pad          Pad [top, left, bottom, right] zeros
//	resize       Mode "nearest" or "linear", Coordinates (linear: an ONNX
//	             coordinate mode), Scale [sh, sw]: output = ⌊input·scale⌋
//	linear       In, Out, Bias: y = x·weightᵀ + bias on [N, In]; tensors weight [Out, In], bias [Out]
type GraphNode struct {
	Name    string   `json:"name"`
	Op      string   `json:"op"`
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`

	In       int          `json:"in,omitempty"`
	Out      int          `json:"out,omitempty"`
	Kernel   []int        `json:"kernel,omitempty"`
	Stride   int          `json:"stride,omitempty"`
	Pad      []int        `json:"pad,omitempty"`
	Dilation int          `json:"dilation,omitempty"`
	Groups   int          `json:"groups,omitempty"`
	Bias     bool         `json:"bias,omitempty"`
	Channels int          `json:"channels,omitempty"`
	Eps      float32      `json:"eps,omitempty"`
	Momentum float32      `json:"momentum,omitempty"`
	Alpha    float32      `json:"alpha,omitempty"`
	Beta     float32      `json:"beta,omitempty"`
	Min      *float32     `json:"min,omitempty"`
	Max      *float32     `json:"max,omitempty"`
	Axis     int          `json:"axis,omitempty"`
	Sizes    []int        `json:"sizes,omitempty"`
	Start    int          `json:"start,omitempty"`
	End      *int         `json:"end,omitempty"`
	Step     int          `json:"step,omitempty"`
	Perm     []int        `json:"perm,omitempty"`
	Dims     []int        `json:"dims,omitempty"`
	Shape    []ReshapeDim `json:"shape,omitempty"`
	// CountIncludePad makes an average pool divide by the whole window,
	// padding included (PyTorch's default); without it padded positions
	// do not count (ONNX's default).
	CountIncludePad bool      `json:"count_include_pad,omitempty"`
	Mode            string    `json:"mode,omitempty"`
	Coordinates     string    `json:"coordinates,omitempty"`
	Scale           []float64 `json:"scale,omitempty"`
}

// ReshapeDim is one dimension of a reshape's target, written so that it
// follows the input's size: a literal (−1: inferred from the rest), or the
// product of input dimensions From divided by Div. Its JSON form is a
// number (literal) or a string such as "in0" (the input's dimension 0),
// "in2*in3" or "in2/2".
type ReshapeDim struct {
	Value int
	From  []int
	Div   int
}

// Literal returns a dimension of fixed size v (−1: inferred).
func Literal(v int) ReshapeDim { return ReshapeDim{Value: v} }

// String is the JSON form.
func (d ReshapeDim) String() string {
	if len(d.From) == 0 {
		return strconv.Itoa(d.Value)
	}
	parts := make([]string, len(d.From))
	for i, f := range d.From {
		parts[i] = "in" + strconv.Itoa(f)
	}
	s := strings.Join(parts, "*")
	if d.Div > 1 {
		s += "/" + strconv.Itoa(d.Div)
	}
	return s
}

// MarshalJSON writes a literal as a number, anything else as its string.
func (d ReshapeDim) MarshalJSON() ([]byte, error) {
	if len(d.From) == 0 {
		return []byte(strconv.Itoa(d.Value)), nil
	}
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a number or an "inK*inL/D" string.
func (d *ReshapeDim) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*d = ReshapeDim{Value: n}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("reshape dimension %s: want a number or a string like \"in2\", \"in2*in3\" or \"in2/2\"", b)
	}
	v, err := ParseReshapeDim(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseReshapeDim reads the string form of a ReshapeDim.
func ParseReshapeDim(s string) (ReshapeDim, error) {
	bad := fmt.Errorf("reshape dimension %q: want a number or a string like \"in2\", \"in2*in3\" or \"in2/2\"", s)
	if n, err := strconv.Atoi(s); err == nil {
		return ReshapeDim{Value: n}, nil
	}
	var d ReshapeDim
	prod, div, hasDiv := strings.Cut(s, "/")
	if hasDiv {
		k, err := strconv.Atoi(div)
		if err != nil || k < 1 {
			return d, bad
		}
		d.Div = k
	}
	for _, p := range strings.Split(prod, "*") {
		rest, ok := strings.CutPrefix(p, "in")
		k, err := strconv.Atoi(rest)
		if !ok || err != nil || k < 0 || k >= backend.MaxRank {
			return d, bad
		}
		d.From = append(d.From, k)
	}
	return d, nil
}

// resolve computes the dimension for an input of shape in.
func (d ReshapeDim) resolve(in []int) int {
	if len(d.From) == 0 {
		return d.Value
	}
	v := 1
	for _, f := range d.From {
		v *= in[f]
	}
	if d.Div > 1 {
		v /= d.Div
	}
	return v
}

// validateGraph appends a FieldError for every problem of g under path
// (e.g. "backbone.graph"): unknown ops, missing or stray fields, tensors
// read before they are written, duplicate names, ports that no node gives.
func validateGraph(g *GraphConfig, path string, bad func(field string, value any, want string, args ...any)) {
	if len(g.Inputs) == 0 {
		bad(path+".inputs", g.Inputs, "at least one input")
	}
	if len(g.Outputs) == 0 {
		bad(path+".outputs", g.Outputs, "at least one output")
	}
	known := map[string]bool{}
	for i, p := range g.Inputs {
		if p.Name == "" || known[p.Name] {
			bad(fmt.Sprintf("%s.inputs[%d].name", path, i), p.Name, "a unique tensor name")
		}
		known[p.Name] = true
	}
	names := map[string]bool{}
	for i, n := range g.Nodes {
		at := fmt.Sprintf("%s.nodes[%d]", path, i)
		if n.Name == "" || names[n.Name] {
			bad(at+".name", n.Name, "a unique node name")
		}
		names[n.Name] = true
		for _, in := range n.Inputs {
			if !known[in] {
				bad(at+".inputs", n.Inputs, "tensors written by an earlier node or a graph input (%q is not)", in)
			}
		}
		validateNode(n, at, bad)
		for _, out := range n.Outputs {
			if out == "" || known[out] {
				bad(at+".outputs", n.Outputs, "tensor names not written before (%q)", out)
			}
			known[out] = true
		}
	}
	for i, p := range g.Outputs {
		at := fmt.Sprintf("%s.outputs[%d]", path, i)
		if !known[p.Name] {
			bad(at+".name", p.Name, "a tensor the graph writes")
		}
		if p.Channels <= 0 || p.Stride <= 0 {
			bad(at, p, "positive channels and stride")
		}
	}
}

// validateNode checks the fields one node's op needs.
func validateNode(n GraphNode, at string, bad func(field string, value any, want string, args ...any)) {
	ins, outs := 1, 1
	switch n.Op {
	case OpConv:
		if n.In <= 0 || n.Out <= 0 || n.Groups <= 0 || n.In%n.Groups != 0 || n.Out%n.Groups != 0 {
			bad(at, fmt.Sprintf("in %d, out %d, groups %d", n.In, n.Out, n.Groups), "positive in and out divisible by positive groups")
		}
		checkWindow(n, at, false, bad)
		if n.Dilation <= 0 {
			bad(at+".dilation", n.Dilation, "> 0")
		}
	case OpBatchNorm:
		if n.Channels <= 0 || !(n.Eps > 0) || !(n.Momentum > 0 && n.Momentum <= 1) {
			bad(at, fmt.Sprintf("channels %d, eps %v, momentum %v", n.Channels, n.Eps, n.Momentum), "positive channels and eps, momentum in (0, 1]")
		}
	case OpReLU, OpSigmoid, OpSiLU, OpHardSwish, OpTanh, OpIdentity, OpGlobalAvgPool:
	case OpLeakyReLU, OpHardSigmoid:
	case OpClip:
		if n.Min != nil && n.Max != nil && *n.Min > *n.Max {
			bad(at+".min", *n.Min, "≤ max (%v)", *n.Max)
		}
	case OpAdd, OpSub, OpMul, OpDiv:
		ins = 2
	case OpConstant:
		ins = 0
		for _, s := range n.Dims {
			if s <= 0 {
				bad(at+".dims", n.Dims, "positive dimensions")
			}
		}
	case OpConcat:
		ins = -1
	case OpSplit:
		outs = len(n.Sizes)
		if len(n.Sizes) == 0 {
			bad(at+".sizes", n.Sizes, "one positive size per output")
		}
		for _, s := range n.Sizes {
			if s <= 0 {
				bad(at+".sizes", n.Sizes, "positive sizes")
			}
		}
	case OpSlice:
		if n.Step <= 0 {
			bad(at+".step", n.Step, "≥ 1")
		}
	case OpTranspose:
		p := slices.Clone(n.Perm)
		slices.Sort(p)
		for i, v := range p {
			if v != i {
				bad(at+".perm", n.Perm, "a permutation of 0…%d", len(n.Perm)-1)
				break
			}
		}
	case OpReshape:
		if len(n.Shape) == 0 {
			bad(at+".shape", n.Shape, "the target dimensions")
		}
		inferred := 0
		for _, d := range n.Shape {
			if len(d.From) == 0 && (d.Value == 0 || d.Value < -1) {
				bad(at+".shape", n.Shape, "dimensions that are positive, -1 or follow the input")
			}
			if len(d.From) == 0 && d.Value == -1 {
				inferred++
			}
		}
		if inferred > 1 {
			bad(at+".shape", n.Shape, "at most one -1")
		}
	case OpFlatten:
		if n.Axis < 0 {
			bad(at+".axis", n.Axis, "≥ 0")
		}
	case OpMaxPool, OpAvgPool:
		checkWindow(n, at, true, bad)
	case OpPad:
		if len(n.Pad) != 4 || slices.Min(n.Pad) < 0 {
			bad(at+".pad", n.Pad, "[top, left, bottom, right], each ≥ 0")
		}
	case OpResize:
		if n.Mode != ResizeNearest && n.Mode != ResizeLinear {
			bad(at+".mode", n.Mode, "%q or %q", ResizeNearest, ResizeLinear)
		}
		if _, ok := engine.ParseCoordinateMode(n.Coordinates); n.Mode == ResizeLinear && !ok {
			bad(at+".coordinates", n.Coordinates, "half_pixel, pytorch_half_pixel, align_corners or asymmetric")
		}
		if len(n.Scale) != 2 || !(n.Scale[0] > 0) || !(n.Scale[1] > 0) {
			bad(at+".scale", n.Scale, "[height factor, width factor], both > 0")
		}
	case OpLinear:
		if n.In <= 0 || n.Out <= 0 {
			bad(at, fmt.Sprintf("in %d, out %d", n.In, n.Out), "positive in and out")
		}
	default:
		bad(at+".op", n.Op, "one of %s", strings.Join(GraphOps, ", "))
		return
	}
	if ins >= 0 && len(n.Inputs) != ins {
		bad(at+".inputs", n.Inputs, "%d inputs for %s", ins, n.Op)
	}
	if ins < 0 && len(n.Inputs) == 0 {
		bad(at+".inputs", n.Inputs, "at least one input for %s", n.Op)
	}
	if len(n.Outputs) != outs {
		bad(at+".outputs", n.Outputs, "%d outputs for %s", outs, n.Op)
	}
}

// checkWindow checks the kernel, stride and padding of a conv or pool;
// pools need a square kernel and the same padding on every side.
func checkWindow(n GraphNode, at string, pool bool, bad func(field string, value any, want string, args ...any)) {
	if len(n.Kernel) != 2 || n.Kernel[0] <= 0 || n.Kernel[1] <= 0 || (pool && n.Kernel[0] != n.Kernel[1]) {
		want := "[kh, kw], both > 0"
		if pool {
			want = "[k, k], a square window"
		}
		bad(at+".kernel", n.Kernel, want)
	}
	if n.Stride <= 0 {
		bad(at+".stride", n.Stride, "> 0")
	}
	if len(n.Pad) != 4 || slices.Min(n.Pad) < 0 {
		bad(at+".pad", n.Pad, "[top, left, bottom, right], each ≥ 0")
		return
	}
	if pool && (n.Pad[0] != n.Pad[1] || n.Pad[0] != n.Pad[2] || n.Pad[0] != n.Pad[3]) {
		bad(at+".pad", n.Pad, "the same padding on every side")
	}
}
