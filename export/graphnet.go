package export

import (
	"fmt"
	"math"
	"slices"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// graphShapes are the shapes of every tensor of an imported graph at batch
// 1 and at batch 2 (the input size fixed): a dimension that differs
// follows the batch, which the exported graph keeps dynamic.
type graphShapes [2]map[string][]int

// traceGraph runs m on zero inputs of its ports' shapes for an image of
// size×size, at batch 1 and 2.
func traceGraph(m *models.GraphModule, size int) graphShapes {
	var s graphShapes
	engine.NoGrad(func() {
		for b := range 2 {
			inputs := make([]*engine.Tensor, len(m.Config.Inputs))
			for i, p := range m.Config.Inputs {
				side := (size + p.Stride - 1) / p.Stride
				inputs[i] = engine.Zeros(b+1, p.Channels, side, side)
			}
			env := m.ForwardTensors(inputs...)
			s[b] = make(map[string][]int, len(env))
			for name, t := range env {
				s[b][name] = t.Shape()
			}
		}
	})
	return s
}

// graph emits an imported graph (a backbone or a neck) reading the ONNX
// tensors inputs, one per input port, and returns its output ports'
// tensors; outNames, when set, gives each output port its contract name
// (the neck's feature_<i>), written by the node that computes it. A
// convolution whose output only a batch norm reads is emitted with the
// batch norm folded in, as everywhere else in an export.
func (w *walker) graph(prefix string, m *models.GraphModule, inputs []string, size int, outNames []string) ([]string, error) {
	g := m.Config
	if len(inputs) != len(g.Inputs) {
		return nil, fmt.Errorf("export: %s: %d inputs for a graph that reads %d", prefix, len(inputs), len(g.Inputs))
	}
	shapes := traceGraph(m, size)
	names := map[string]string{}
	for i, p := range g.Inputs {
		names[p.Name] = inputs[i]
	}
	readers := map[string]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			readers[in]++
		}
	}
	ports := map[string]bool{}
	contract := map[string]string{}
	for i, p := range g.Outputs {
		ports[p.Name] = true
		if i < len(outNames) {
			contract[p.Name] = outNames[i]
		}
	}
	folded := map[int]bool{}
	for i, n := range g.Nodes {
		if folded[i] {
			continue
		}
		base := prefix + "." + n.Name
		in := make([]string, len(n.Inputs))
		for k, name := range n.Inputs {
			in[k] = names[name]
		}
		l := m.Layers[i]
		var out string
		var err error
		switch n.Op {
		case models.OpConv:
			bn := -1
			if y := n.Outputs[0]; readers[y] == 1 && !ports[y] {
				for j := i + 1; j < len(g.Nodes); j++ {
					if slices.Contains(g.Nodes[j].Inputs, y) {
						if g.Nodes[j].Op == models.OpBatchNorm {
							bn = j
						}
						break
					}
				}
			}
			var weight, bias []float32
			if bn >= 0 {
				if weight, bias, err = foldBN(l.Conv, m.Layers[bn].Norm); err != nil {
					return nil, fmt.Errorf("export: %s: %w", base, err)
				}
				w.g.folded++
				folded[bn] = true
				n.Outputs = g.Nodes[bn].Outputs
			} else {
				weight = l.Conv.Weight.ToHost()
				if l.Conv.Bias != nil {
					bias = l.Conv.Bias.ToHost()
				}
			}
			out = w.graphConv(base, in[0], weight, l.Conv.Weight.Shape(), bias, n)
		case models.OpBatchNorm:
			out = w.g.emit("BatchNormalization", base, []string{in[0],
				w.g.weights(base+".weight", []int64{int64(n.Channels)}, l.Norm.Gamma.ToHost()),
				w.g.weights(base+".bias", []int64{int64(n.Channels)}, l.Norm.Beta.ToHost()),
				w.g.table(base+".running_mean", []int64{int64(n.Channels)}, l.Norm.State.RunningMean.ToHost()),
				w.g.table(base+".running_var", []int64{int64(n.Channels)}, l.Norm.State.RunningVar.ToHost())},
				onnxgraph.AttrFloat("epsilon", n.Eps))
		case models.OpReLU:
			out = w.g.emit("Relu", base, in)
		case models.OpLeakyReLU:
			out = w.g.emit("LeakyRelu", base, in, onnxgraph.AttrFloat("alpha", n.Alpha))
		case models.OpSigmoid:
			out = w.g.emit("Sigmoid", base, in)
		case models.OpTanh:
			out = w.g.emit("Tanh", base, in)
		case models.OpSiLU:
			out, err = w.g.act(base, in[0], nn.ActSiLU)
		case models.OpHardSwish:
			out, err = w.g.act(base, in[0], nn.ActHardSwish)
		case models.OpHardSigmoid:
			out = w.g.emit("HardSigmoid", base, in, onnxgraph.AttrFloat("alpha", n.Alpha), onnxgraph.AttrFloat("beta", n.Beta))
		case models.OpClip:
			lo, hi := float32(-math.MaxFloat32), float32(math.MaxFloat32)
			if n.Min != nil {
				lo = *n.Min
			}
			if n.Max != nil {
				hi = *n.Max
			}
			out = w.g.clip(base, in[0], lo, hi)
		case models.OpAdd, models.OpSub, models.OpMul, models.OpDiv:
			op := map[string]string{models.OpAdd: "Add", models.OpSub: "Sub", models.OpMul: "Mul", models.OpDiv: "Div"}[n.Op]
			out = w.g.emit(op, base, in)
		case models.OpConstant:
			dims := make([]int64, len(n.Dims))
			for k, d := range n.Dims {
				dims[k] = int64(d)
			}
			out = w.g.table(base, dims, l.Constant.ToHost())
		case models.OpConcat:
			out = w.g.emit("Concat", base, in, onnxgraph.AttrInt("axis", int64(n.Axis)))
		case models.OpSplit:
			outs := make([]string, len(n.Outputs))
			for k := range outs {
				outs[k] = w.g.fresh(fmt.Sprintf("%s.%d", base, k))
			}
			sizes := make([]int64, len(n.Sizes))
			for k, s := range n.Sizes {
				sizes[k] = int64(s)
			}
			node := onnxgraph.NewNode("Split", outs[0], in, outs, onnxgraph.AttrInt("axis", int64(n.Axis)))
			if w.g.opset >= 13 {
				node.Input = append(node.Input, w.g.intConst(sizes...))
			} else {
				node.Attribute = append(node.Attribute, onnxgraph.AttrInts("split", sizes...))
			}
			w.g.nodes = append(w.g.nodes, node)
			for k, o := range n.Outputs {
				names[o] = outs[k]
			}
			continue
		case models.OpSlice:
			out, err = w.graphSlice(base, in[0], n)
		case models.OpTranspose:
			perm := make([]int64, len(n.Perm))
			for k, p := range n.Perm {
				perm[k] = int64(p)
			}
			out = w.g.emit("Transpose", base, in, onnxgraph.AttrInts("perm", perm...))
		case models.OpReshape:
			var target []int64
			if target, err = reshapeTarget(shapes, n); err == nil {
				out = w.g.reshape(base, in[0], target...)
			}
		case models.OpFlatten:
			out = w.g.emit("Flatten", base, in, onnxgraph.AttrInt("axis", int64(n.Axis)))
		case models.OpMaxPool, models.OpAvgPool:
			k, p, s := int64(n.Kernel[0]), int64(n.Pad[0]), int64(n.Stride)
			attrs := []*onnxpb.AttributeProto{onnxgraph.AttrInts("kernel_shape", k, k), onnxgraph.AttrInts("strides", s, s), onnxgraph.AttrInts("pads", p, p, p, p)}
			op := "MaxPool"
			if n.Op == models.OpAvgPool {
				op = "AveragePool"
				include := int64(0)
				if n.CountIncludePad {
					include = 1
				}
				attrs = append(attrs, onnxgraph.AttrInt("count_include_pad", include))
			}
			out = w.g.emit(op, base, in, attrs...)
		case models.OpGlobalAvgPool:
			out = w.g.emit("GlobalAveragePool", base, in)
		case models.OpPad:
			out, err = w.graphPad(base, in[0], n.Pad)
		case models.OpResize:
			out, err = w.graphResize(base, in[0], n)
		case models.OpLinear:
			out = w.graphLinear(base, in[0], l, shapes[0][n.Inputs[0]])
		case models.OpIdentity:
			out = w.g.emit("Identity", base, in)
		default:
			return nil, fmt.Errorf("export: %s: graph op %q has no ONNX form here", base, n.Op)
		}
		if err != nil {
			return nil, fmt.Errorf("export: %s: %w", base, err)
		}
		if c, ok := contract[n.Outputs[0]]; ok && n.Op != models.OpConstant {
			out = w.rename(out, c)
		}
		names[n.Outputs[0]] = out
	}
	outs := make([]string, len(g.Outputs))
	for i, p := range g.Outputs {
		name, ok := names[p.Name]
		if !ok {
			return nil, fmt.Errorf("export: %s: output %q is not computed by the graph", prefix, p.Name)
		}
		if c, ok := contract[p.Name]; ok && name != c {
			// An output that is an input or a constant: copy it to its name.
			name = w.g.op("Identity", w.g.reserve(c), []string{name})
		}
		outs[i] = name
	}
	return outs, nil
}

// graphConv emits a convolution with per-side pads and a kernel of any
// shape.
func (w *walker) graphConv(base, x string, weight []float32, shape []int, bias []float32, n models.GraphNode) string {
	dims := []int64{int64(shape[0]), int64(shape[1]), int64(shape[2]), int64(shape[3])}
	inputs := []string{x, w.g.weights(base+".weight", dims, weight)}
	if bias != nil {
		inputs = append(inputs, w.g.weights(base+".bias", []int64{dims[0]}, bias))
	}
	s, d := int64(n.Stride), int64(n.Dilation)
	return w.g.emit("Conv", base, inputs,
		onnxgraph.AttrInts("kernel_shape", dims[2], dims[3]),
		onnxgraph.AttrInts("strides", s, s),
		onnxgraph.AttrInts("pads", int64(n.Pad[0]), int64(n.Pad[1]), int64(n.Pad[2]), int64(n.Pad[3])),
		onnxgraph.AttrInts("dilations", d, d),
		onnxgraph.AttrInt("group", int64(n.Groups)))
}

// graphSlice emits one slice node; an open end is INT64_MAX, as exporters
// write it.
func (w *walker) graphSlice(base, x string, n models.GraphNode) (string, error) {
	end := int64(math.MaxInt64)
	if n.End != nil {
		end = int64(*n.End)
	}
	if n.Step == 1 {
		return w.g.slice(base, x, int64(n.Axis), int64(n.Start), end), nil
	}
	if w.g.opset < 10 {
		return "", fmt.Errorf("a slice with step %d needs opset ≥ 10", n.Step)
	}
	return w.g.emit("Slice", base, []string{x, w.g.intConst(int64(n.Start)), w.g.intConst(end), w.g.intConst(int64(n.Axis)), w.g.intConst(int64(n.Step))}), nil
}

// reshapeTarget writes a reshape's target for the exported input size: a
// dimension that follows the batch is 0 when it stays in place (Reshape
// copies it), else −1; every other dimension is its traced value.
func reshapeTarget(s graphShapes, n models.GraphNode) ([]int64, error) {
	one, two := s[0][n.Outputs[0]], s[1][n.Outputs[0]]
	in1, in2 := s[0][n.Inputs[0]], s[1][n.Inputs[0]]
	target := make([]int64, len(one))
	batchDims := 0
	for i := range one {
		target[i] = int64(one[i])
		if one[i] == two[i] {
			continue
		}
		batchDims++
		if i < len(in1) && in1[i] == one[i] && in2[i] == two[i] && len(n.Shape[i].From) == 1 && n.Shape[i].From[0] == i && n.Shape[i].Div <= 1 {
			target[i] = 0
		} else {
			target[i] = -1
		}
	}
	if slices.Contains(target, -1) && batchDims > 1 {
		return nil, fmt.Errorf("reshape %v moves the batch into %d dimensions; ONNX can infer only one", n.Shape, batchDims)
	}
	return target, nil
}

// graphPad emits zero padding of height and width.
func (w *walker) graphPad(base, x string, p []int) (string, error) {
	pads := []int64{0, 0, int64(p[0]), int64(p[1]), 0, 0, int64(p[2]), int64(p[3])}
	if w.g.opset >= 11 {
		return w.g.emit("Pad", base, []string{x, w.g.intConst(pads...)}), nil
	}
	return w.g.emit("Pad", base, []string{x}, onnxgraph.AttrInts("pads", pads...)), nil
}

// graphResize emits a resize with the node's scale factors: nearest with
// the engine's floor rule, or linear with its coordinate mode.
func (w *walker) graphResize(base, x string, n models.GraphNode) (string, error) {
	scales := w.g.floatConst([]int64{4}, 1, 1, float32(n.Scale[0]), float32(n.Scale[1]))
	if n.Mode == models.ResizeNearest && w.g.opset < 11 {
		fy, fx := n.Scale[0], n.Scale[1]
		if fy != math.Trunc(fy) || fx != math.Trunc(fx) {
			return "", fmt.Errorf("nearest resize by %v needs opset ≥ 11 (integer factors below)", n.Scale)
		}
		return w.g.upsample(base, x, int(fy), int(fx)), nil
	}
	if n.Mode == models.ResizeLinear && w.g.opset < 11 {
		if n.Coordinates != "asymmetric" {
			return "", fmt.Errorf("linear resize with %s coordinates needs opset ≥ 11", n.Coordinates)
		}
		if w.g.opset == 10 {
			return w.g.emit("Resize", base, []string{x, scales}, onnxgraph.AttrString("mode", "linear")), nil
		}
		return w.g.emit("Upsample", base, []string{x, scales}, onnxgraph.AttrString("mode", "linear")), nil
	}
	roi := ""
	if w.g.opset < 13 {
		roi = w.g.floatConst([]int64{0})
	}
	attrs := []*onnxpb.AttributeProto{onnxgraph.AttrString("mode", n.Mode)}
	if n.Mode == models.ResizeNearest {
		attrs = append(attrs, onnxgraph.AttrString("coordinate_transformation_mode", "asymmetric"), onnxgraph.AttrString("nearest_mode", "floor"))
	} else {
		attrs = append(attrs, onnxgraph.AttrString("coordinate_transformation_mode", n.Coordinates))
	}
	return w.g.emit("Resize", base, []string{x, roi, scales}, attrs...), nil
}

// graphLinear emits y = x·W + b: Gemm on a 2-D input, MatMul (+ Add)
// otherwise.
func (w *walker) graphLinear(base, x string, l models.GraphLayer, inShape []int) string {
	s := l.Weight.Shape()
	weight := w.g.weights(base+".weight", []int64{int64(s[0]), int64(s[1])}, l.Weight.ToHost())
	var bias string
	if l.Bias != nil {
		bias = w.g.weights(base+".bias", []int64{int64(s[1])}, l.Bias.ToHost())
	}
	if len(inShape) == 2 {
		in := []string{x, weight}
		if bias != "" {
			in = append(in, bias)
		}
		return w.g.emit("Gemm", base, in)
	}
	y := w.g.emit("MatMul", base+".matmul", []string{x, weight})
	if bias == "" {
		return y
	}
	return w.g.emit("Add", base, []string{y, bias})
}
