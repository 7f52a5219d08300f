package export

import (
	"fmt"
	"math"
	"strconv"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// graph accumulates the nodes and initializers of one ONNX graph. Each
// emitting method returns the name of the tensor it produced; tensor names
// double as node names (they live in separate namespaces in ONNX).
type graph struct {
	opset  int64
	nodes  []*onnxpb.NodeProto
	inits  []*onnxpb.TensorProto
	used   map[string]bool
	consts map[string]string // shared small constants by value
	// folded counts the batch norms merged into convolutions.
	folded int
	// params counts the float weights written as initializers.
	params int
}

func newGraph(opset int64) *graph {
	return &graph{opset: opset, used: map[string]bool{}, consts: map[string]string{}}
}

// fresh returns base if no tensor has that name yet, else base_1, base_2, …
func (g *graph) fresh(base string) string {
	name := base
	for k := 1; g.used[name]; k++ {
		name = base + "_" + strconv.Itoa(k)
	}
	g.used[name] = true
	return name
}

// BuildError is the panic value of a broken invariant of the graph builder,
// such as a contract name emitted twice. It is a programmer error in the
// exporter, never caused by a checkpoint or an option (those are returned
// as errors); the command line's one recover point returns it as an error.
type BuildError struct {
	Step   string // the builder step that found it, e.g. "reserve"
	Detail string
}

func (e *BuildError) Error() string { return "export: graph builder: " + e.Step + ": " + e.Detail }

// reserve claims a contract name (an output such as "boxes") exactly; it is
// a programmer error for it to be taken already.
func (g *graph) reserve(name string) string {
	if g.used[name] {
		panic(&BuildError{Step: "reserve", Detail: fmt.Sprintf("tensor name %q emitted twice", name)})
	}
	g.used[name] = true
	return name
}

// op emits a single-output node writing to out (already reserved) and
// returns out.
func (g *graph) op(opType, out string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	g.nodes = append(g.nodes, onnxgraph.NewNode(opType, out, inputs, []string{out}, attrs...))
	return out
}

// emit is op with a fresh output name derived from base.
func (g *graph) emit(opType, base string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	return g.op(opType, g.fresh(base), inputs, attrs...)
}

// weights adds a float initializer and returns its name.
func (g *graph) weights(base string, dims []int64, values []float32) string {
	name := g.fresh(base)
	g.inits = append(g.inits, onnxgraph.Float32Tensor(name, dims, values))
	g.params += len(values)
	return name
}

// table adds a float constant that is not a learnt weight (priors).
func (g *graph) table(base string, dims []int64, values []float32) string {
	name := g.fresh(base)
	g.inits = append(g.inits, onnxgraph.Float32Tensor(name, dims, values))
	return name
}

// floatConst adds (or reuses) a small float constant.
func (g *graph) floatConst(dims []int64, values ...float32) string {
	key := fmt.Sprintf("f%v%v", dims, values)
	if name, ok := g.consts[key]; ok {
		return name
	}
	name := g.fresh("const.f")
	g.inits = append(g.inits, onnxgraph.Float32Tensor(name, dims, values))
	g.consts[key] = name
	return name
}

// intConst adds (or reuses) a small int64 constant.
func (g *graph) intConst(values ...int64) string {
	key := fmt.Sprintf("i%v", values)
	if name, ok := g.consts[key]; ok {
		return name
	}
	name := g.fresh("const.i")
	g.inits = append(g.inits, onnxgraph.Int64Tensor(name, []int64{int64(len(values))}, values))
	g.consts[key] = name
	return name
}

// conv emits a Conv with weight w [Cout, Cin/groups, K, K] and bias b [Cout]
// (nil for none).
func (g *graph) conv(base, x string, w []float32, wShape []int, b []float32, opts engine.ConvOptions) string {
	if opts.Stride == 0 {
		opts.Stride = 1
	}
	if opts.Dilation == 0 {
		opts.Dilation = 1
	}
	if opts.Groups == 0 {
		opts.Groups = 1
	}
	dims := []int64{int64(wShape[0]), int64(wShape[1]), int64(wShape[2]), int64(wShape[3])}
	inputs := []string{x, g.weights(base+".weight", dims, w)}
	if b != nil {
		inputs = append(inputs, g.weights(base+".bias", []int64{dims[0]}, b))
	}
	p, s, d := int64(opts.Pad), int64(opts.Stride), int64(opts.Dilation)
	return g.emit("Conv", base, inputs,
		onnxgraph.AttrInts("kernel_shape", dims[2], dims[3]),
		onnxgraph.AttrInts("strides", s, s),
		onnxgraph.AttrInts("pads", p, p, p, p),
		onnxgraph.AttrInts("dilations", d, d),
		onnxgraph.AttrInt("group", int64(opts.Groups)))
}

// act emits activation a on x; ActNone returns x unchanged.
func (g *graph) act(base, x string, a nn.Activation) (string, error) {
	switch a {
	case nn.ActNone, "":
		return x, nil
	case nn.ActReLU:
		return g.emit("Relu", base, []string{x}), nil
	case nn.ActReLU6:
		return g.clip(base, x, 0, 6), nil
	case nn.ActLeakyReLU:
		// nn.ActLeakyReLU applies engine.LeakyReLU with slope 0.1.
		return g.emit("LeakyRelu", base, []string{x}, onnxgraph.AttrFloat("alpha", 0.1)), nil
	case nn.ActSiLU:
		s := g.emit("Sigmoid", base+".sigmoid", []string{x})
		return g.emit("Mul", base, []string{x, s}), nil
	case nn.ActHardSwish:
		if g.opset >= 14 {
			return g.emit("HardSwish", base, []string{x}), nil
		}
		// x·relu6(x+3)/6 = x·clip(x/6 + 1/2, 0, 1) = x·HardSigmoid(x).
		h := g.emit("HardSigmoid", base+".hardsigmoid", []string{x},
			onnxgraph.AttrFloat("alpha", 1.0/6), onnxgraph.AttrFloat("beta", 0.5))
		return g.emit("Mul", base, []string{x, h}), nil
	}
	return "", fmt.Errorf("export: activation %q has no ONNX equivalent here (known: relu, relu6, leaky_relu, silu, hardswish, none)", a)
}

// clip emits Clip(x, lo, hi): bounds are inputs from opset 11, attributes before.
func (g *graph) clip(base, x string, lo, hi float32) string {
	if g.opset >= 11 {
		return g.emit("Clip", base, []string{x, g.floatConst(nil, lo), g.floatConst(nil, hi)})
	}
	return g.emit("Clip", base, []string{x}, onnxgraph.AttrFloat("min", lo), onnxgraph.AttrFloat("max", hi))
}

// upsample emits nearest-neighbour upsampling of x by integer factors, with
// the engine's indexing: output row i reads input row ⌊i/factor⌋.
func (g *graph) upsample(base, x string, fy, fx int) string {
	scales := g.floatConst([]int64{4}, 1, 1, float32(fy), float32(fx))
	switch {
	case g.opset < 10:
		// Upsample-9: nearest truncates x_out/scale, which is the floor here.
		return g.emit("Upsample", base, []string{x, scales}, onnxgraph.AttrString("mode", "nearest"))
	case g.opset == 10:
		// Resize-10 uses Upsample's asymmetric, truncating nearest rule.
		return g.emit("Resize", base, []string{x, scales}, onnxgraph.AttrString("mode", "nearest"))
	}
	roi := ""
	if g.opset < 13 {
		roi = g.floatConst([]int64{0}) // roi is a required input before opset 13
	}
	return g.emit("Resize", base, []string{x, roi, scales},
		onnxgraph.AttrString("mode", "nearest"),
		onnxgraph.AttrString("coordinate_transformation_mode", "asymmetric"),
		onnxgraph.AttrString("nearest_mode", "floor"))
}

// slice emits x[..., start:end, ...] along one axis: starts, ends and axes
// are inputs from opset 10, attributes before.
func (g *graph) slice(base, x string, axis, start, end int64) string {
	if g.opset >= 10 {
		return g.emit("Slice", base, []string{x, g.intConst(start), g.intConst(end), g.intConst(axis)})
	}
	return g.emit("Slice", base, []string{x},
		onnxgraph.AttrInts("starts", start), onnxgraph.AttrInts("ends", end), onnxgraph.AttrInts("axes", axis))
}

// stridedSlice emits x[..., starts:ends:steps, ...] over several axes in
// one Slice (steps are inputs from opset 10; older opsets have none).
func (g *graph) stridedSlice(base, x string, axes, starts, ends, steps []int64) (string, error) {
	if g.opset < 10 {
		return "", fmt.Errorf("export: %s: a strided Slice needs opset 10 or newer, have %d", base, g.opset)
	}
	return g.emit("Slice", base, []string{x, g.intConst(starts...), g.intConst(ends...), g.intConst(axes...), g.intConst(steps...)}), nil
}

// maxPool emits a square k×k MaxPool with the given stride and symmetric
// padding.
func (g *graph) maxPool(base, x string, k, stride, pad int64) string {
	return g.emit("MaxPool", base, []string{x},
		onnxgraph.AttrInts("kernel_shape", k, k),
		onnxgraph.AttrInts("strides", stride, stride),
		onnxgraph.AttrInts("pads", pad, pad, pad, pad))
}

// concat emits Concat of xs along axis.
func (g *graph) concat(base string, axis int64, xs ...string) string {
	return g.emit("Concat", base, xs, onnxgraph.AttrInt("axis", axis))
}

// reshape emits Reshape to shape, where 0 copies the input's dimension (how
// a dynamic batch passes through) and -1 is inferred.
func (g *graph) reshape(base, x string, shape ...int64) string {
	return g.emit("Reshape", base, []string{x, g.intConst(shape...)})
}

// graphProto assembles the graph with one input and the given outputs.
func (g *graph) graphProto(name string, input *onnxpb.ValueInfoProto, outputs []*onnxpb.ValueInfoProto) *onnxpb.GraphProto {
	return &onnxpb.GraphProto{
		Name:        name,
		Node:        g.nodes,
		Initializer: g.inits,
		Input:       []*onnxpb.ValueInfoProto{input},
		Output:      outputs,
	}
}

// irVersion is the oldest IR version that can carry an opset, so runtimes
// with older parsers (TensorRT on a Jetson) accept the file.
func irVersion(opset int64) int64 {
	switch {
	case opset <= 9:
		return 4
	case opset == 10:
		return 5
	case opset == 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	default:
		return 10
	}
}

// valueInfo declares a float tensor whose dimension 0 is the batch: the
// symbolic "batch" when batch is 0, else that fixed size.
func valueInfo(name string, batch int, dims ...int) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for i, d := range dims {
		var dim *onnxpb.TensorShapeProto_Dimension
		if i == 0 && batch == 0 {
			dim = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}}
		} else {
			if i == 0 {
				d = batch
			}
			dim = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: onnxgraph.Float32, Shape: shape}}}}
}

// foldBN merges an inference-mode batch norm into the convolution before it:
// with k = γ/√(var+ε) per output channel, W' = W·k and b' = (b − mean)·k + β.
// It is computed in float64 so the folded weights round once.
func foldBN(conv *nn.Conv2d, bn *nn.BatchNorm2d) (w, b []float32, err error) {
	cout := conv.Weight.Dim(0)
	if bn.Gamma.Len() != cout || bn.Beta.Len() != cout || bn.State.RunningMean.Len() != cout || bn.State.RunningVar.Len() != cout {
		return nil, nil, fmt.Errorf("batch norm has %d channels, the convolution before it %d", bn.Gamma.Len(), cout)
	}
	gamma, beta := bn.Gamma.ToHost(), bn.Beta.ToHost()
	mean, variance := bn.State.RunningMean.ToHost(), bn.State.RunningVar.ToHost()
	src := conv.Weight.ToHost()
	var convBias []float32
	if conv.Bias != nil {
		convBias = conv.Bias.ToHost()
	}
	per := len(src) / cout
	w = make([]float32, len(src))
	b = make([]float32, cout)
	for c := 0; c < cout; c++ {
		v := float64(variance[c]) + float64(bn.State.Eps)
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("batch norm channel %d has running variance %v (eps %v), want a finite value above -eps", c, variance[c], bn.State.Eps)
		}
		k := float64(gamma[c]) / math.Sqrt(v)
		for i := c * per; i < (c+1)*per; i++ {
			w[i] = float32(float64(src[i]) * k)
		}
		var bias float64
		if convBias != nil {
			bias = float64(convBias[c])
		}
		b[c] = float32((bias-float64(mean[c]))*k + float64(beta[c]))
	}
	return w, b, nil
}
