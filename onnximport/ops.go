package onnximport

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrUnsupported is wrapped by every *UnsupportedError.
var ErrUnsupported = errors.New("onnximport: unsupported")

// UnsupportedError is a node the importer cannot translate: an op type
// outside OpTable, or an attribute or input form the engine has no
// equivalent for.
type UnsupportedError struct {
	Node   string // the node's name (or "producing <tensor>" when unnamed)
	OpType string
	Domain string // "" for the default domain
	Opset  int64  // the model's default-domain opset
	Reason string
}

func (e *UnsupportedError) Error() string {
	op := e.OpType
	if e.Domain != "" && e.Domain != "ai.onnx" {
		op = e.Domain + "." + op
	}
	return fmt.Sprintf("onnximport: node %s (%s, opset %d): %s", e.Node, op, e.Opset, e.Reason)
}

// Unwrap lets errors.Is find ErrUnsupported.
func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// OpInfo documents one ONNX op of OpTable.
type OpInfo struct {
	// Since is the oldest opset whose form of the op is translated.
	Since int64
	// Engine says what the op becomes.
	Engine string
	// Limits lists what is refused.
	Limits string
}

// MaxOpset is the newest default-domain opset the importer reads.
const MaxOpset = 21

// OpTable is every ONNX op the importer translates (default domain).
var OpTable = map[string]OpInfo{
	"Conv": {1, "conv (Conv2d; groups, dilation, bias)",
		"2-D only; one stride and one dilation for both axes; uneven pads become a zero Pad before it; auto_pad resolved at the traced size"},
	"BatchNormalization": {1, "batchnorm (trainable, running statistics kept)", "inference form only (one output, training_mode 0)"},
	"Relu":               {1, "relu", ""},
	"LeakyRelu":          {1, "leaky_relu", ""},
	"Sigmoid":            {1, "sigmoid; x·Sigmoid(x) becomes silu", ""},
	"HardSigmoid":        {1, "hardsigmoid; x·HardSigmoid(x) with α = 1/6, β = ½ becomes hardswish", ""},
	"HardSwish":          {14, "hardswish", ""},
	"Clip":               {1, "clip (relu for [0, ∞), relu6 for [0, 6])", "bounds must be constants"},
	"Tanh":               {1, "tanh", ""},
	"Add":                {7, "add (NumPy broadcasting)", "a constant operand becomes a fixed constant, not a trained one"},
	"Sub":                {7, "sub", "as Add"},
	"Mul":                {7, "mul", "as Add"},
	"Div":                {7, "div", "as Add"},
	"Concat":             {4, "concat", ""},
	"Split":              {2, "split", "split sizes must be constants"},
	"Slice":              {1, "slice, one node per axis", "constant starts, ends, axes and steps; steps ≥ 1"},
	"Transpose":          {1, "transpose", ""},
	"Reshape":            {5, "reshape whose target follows the input's batch and spatial size", "constant target shape; allowzero 0"},
	"Flatten":            {1, "flatten", ""},
	"MaxPool":            {1, "maxpool", "square kernel, one stride, the same padding on every side, no dilation, no Indices output; ceil_mode only where it does not change the traced size"},
	"AveragePool":        {1, "avgpool (count_include_pad either way)", "as MaxPool"},
	"GlobalAveragePool":  {1, "global_avgpool", ""},
	"ReduceMean":         {1, "global_avgpool (+ flatten without keepdims)", "only over the two spatial axes"},
	"Pad":                {2, "pad (zeros)", "constant mode, value 0, height and width only"},
	"Resize":             {10, "resize: nearest (UpsampleNearest) or linear (ResizeBilinear) with a fixed scale factor", "height and width only; nearest only where its pixel choice equals floor(dst·in/out); linear with half_pixel, pytorch_half_pixel, align_corners or asymmetric; no cubic, no antialias, no tf_crop_and_resize"},
	"Upsample":           {7, "resize (nearest or linear, asymmetric)", "as Resize"},
	"Gemm":               {7, "linear", "A is the activation [N, K], B a constant, transA 0; alpha and beta are folded into the weights"},
	"MatMul":             {1, "linear without bias", "the second operand a constant 2-D matrix"},
	"Identity":           {1, "identity", ""},
	"Dropout":            {1, "identity (inference)", "only the first output may be used"},
	"Constant":           {1, "a constant", "read where an op needs a constant input"},
}

// OpTypes lists OpTable's op types, sorted.
func OpTypes() []string {
	names := make([]string, 0, len(OpTable))
	for k := range OpTable {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// supportedList is the op types for an error message.
func supportedList() string { return strings.Join(OpTypes(), ", ") }
