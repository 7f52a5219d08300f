package quantize

import (
	"fmt"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// Build writes the QDQ model of a plan: every planned activation tensor T
// gets QuantizeLinear→DequantizeLinear with the tensor's parameters (the
// producer now writes T_float and the DequantizeLinear writes T, so
// consumers and graph outputs keep their names), and every weighted node
// reads int8 weights (per channel when the plan says so) and an int32 bias
// through DequantizeLinear. ranges holds the calibrated range of every
// tensor in plan.Calibrated().
func Build(plan *Plan, ranges map[string]Range) (*onnxpb.ModelProto, error) {
	act := plan.Activations
	m := onnxgraph.Clone(plan.Model)
	g := m.Graph
	params := make(map[string]QParams, len(plan.Tensors))
	for _, t := range plan.Tensors {
		r, ok := ranges[plan.root(t)]
		if !ok {
			return nil, fmt.Errorf("quantize: no calibrated range for tensor %q", plan.root(t))
		}
		params[t] = ActivationParams(r, act)
	}
	b := &builder{g: g, namer: onnxgraph.NewNamer(g), ix: onnxgraph.NewIndex(g), act: act, weightRange: plan.Weights}
	// Weights first: inserting Q/DQ renames graph-input consumers.
	for _, n := range g.Node {
		if plan.Nodes[n.Name] != classWeighted {
			continue
		}
		in, ok := params[n.Input[0]]
		if !ok {
			return nil, fmt.Errorf("quantize: %s: its input %q is not quantized", onnxgraph.Describe(n), n.Input[0])
		}
		if err := b.weights(n, in.Scale, plan.PerChannel); err != nil {
			return nil, err
		}
	}
	for _, t := range plan.Tensors {
		b.activation(t, params[t])
	}
	g.Node = append(g.Node, b.nodes...)
	g.Initializer = append(g.Initializer, b.inits...)
	if err := onnxgraph.TopoSort(g); err != nil {
		return nil, fmt.Errorf("quantize: build QDQ graph: %w", err)
	}
	onnxgraph.RemoveUnusedInitializers(g)
	onnxgraph.PruneValueInfo(g)
	want := int64(minQDQOpset)
	if plan.PerChannel {
		want = perChannelOpset
	}
	if onnxgraph.Opset(m) < want {
		onnxgraph.SetOpset(m, want)
	}
	return m, nil
}

type builder struct {
	g     *onnxpb.GraphProto
	namer *onnxgraph.Namer
	ix    *onnxgraph.Index
	act   Activations
	// weightRange is the int8 grid of weights.
	weightRange WeightRange
	nodes       []*onnxpb.NodeProto
	inits       []*onnxpb.TensorProto
}

func (b *builder) zeroPoint(name string, zp int32) *onnxpb.TensorProto {
	if b.act == Int8 {
		return onnxgraph.Int8Tensor(name, nil, []int8{int8(zp)})
	}
	return onnxgraph.Uint8Tensor(name, nil, []uint8{uint8(zp)})
}

// activation inserts Q→DQ on tensor t.
func (b *builder) activation(t string, qp QParams) {
	scale := onnxgraph.Float32Tensor(b.namer.Name(t+"_scale"), nil, []float32{qp.Scale})
	zp := b.zeroPoint(b.namer.Name(t+"_zero_point"), qp.ZeroPoint)
	b.inits = append(b.inits, scale, zp)
	quantized := b.namer.Name(t + "_quantized")
	if prod := b.ix.Producer[t]; prod != nil {
		float := b.namer.Name(t + "_float")
		for i, o := range prod.Output {
			if o == t {
				prod.Output[i] = float
			}
		}
		b.nodes = append(b.nodes,
			onnxgraph.NewNode("QuantizeLinear", b.namer.Name(t+"_QuantizeLinear"), []string{float, scale.Name, zp.Name}, []string{quantized}),
			onnxgraph.NewNode("DequantizeLinear", b.namer.Name(t+"_DequantizeLinear"), []string{quantized, scale.Name, zp.Name}, []string{t}))
		return
	}
	// A graph input keeps its name: consumers switch to the dequantized copy.
	deq := b.namer.Name(t + "_dequantized")
	onnxgraph.RenameInputs(b.g, t, deq)
	b.nodes = append(b.nodes,
		onnxgraph.NewNode("QuantizeLinear", b.namer.Name(t+"_QuantizeLinear"), []string{t, scale.Name, zp.Name}, []string{quantized}),
		onnxgraph.NewNode("DequantizeLinear", b.namer.Name(t+"_DequantizeLinear"), []string{quantized, scale.Name, zp.Name}, []string{deq}))
}

// weightAxis is the output-channel axis of a weighted node's weight tensor.
func weightAxis(n *onnxpb.NodeProto) int {
	switch n.OpType {
	case "Gemm":
		if onnxgraph.AttrIntOr(n, "transB", 0) != 0 {
			return 0 // [N, K]
		}
		return 1 // [K, N]
	case "MatMul":
		return 1
	}
	return 0 // Conv [M, C/group, k...]
}

// weights replaces the node's float weight (and bias) with DequantizeLinear
// of int8 (int32) constants.
func (b *builder) weights(n *onnxpb.NodeProto, inScale float32, perChannel bool) error {
	w := b.ix.Init[n.Input[1]]
	wv, err := onnxgraph.Float32s(w)
	if err != nil {
		return fmt.Errorf("quantize: %s: %w", onnxgraph.Describe(n), err)
	}
	axis := weightAxis(n)
	if n.OpType == "MatMul" {
		perChannel = false // QLinearMatMul kernels want one weight scale
	}
	bias, biasValues, err := b.biasOf(n, w, axis)
	if err != nil {
		return err
	}
	var floor []float64
	if bias != nil {
		floor = BiasScaleFloor(biasValues, inScale)
	}
	qw, err := QuantizeWeights(wv, w.Dims, WeightOptions{Axis: axis, PerChannel: perChannel, MinScales: floor, Range: b.weightRange})
	if err != nil {
		return fmt.Errorf("quantize: %s: %w", onnxgraph.Describe(n), err)
	}
	base := n.Name
	deq := b.constDQ(base+"_weight", qw.Scales, qw.Axis, func(name string) *onnxpb.TensorProto {
		return onnxgraph.Int8Tensor(name, w.Dims, qw.Values)
	}, func(name string, k int) *onnxpb.TensorProto {
		return onnxgraph.Int8Tensor(name, scaleDims(k), make([]int8, k))
	})
	n.Input[1] = deq
	if bias != nil {
		qb, scales := QuantizeBias(biasValues, inScale, qw.Scales)
		deqBias := b.constDQ(base+"_bias", scales, 0, func(name string) *onnxpb.TensorProto {
			return onnxgraph.Int32Tensor(name, bias.Dims, qb)
		}, func(name string, k int) *onnxpb.TensorProto {
			return onnxgraph.Int32Tensor(name, scaleDims(k), make([]int32, k))
		})
		n.Input[2] = deqBias
	}
	return nil
}

// biasOf returns the bias initializer a weighted node can fuse as int32: a
// Conv bias, or a Gemm C of shape [N] with alpha = beta = 1.
func (b *builder) biasOf(n *onnxpb.NodeProto, w *onnxpb.TensorProto, axis int) (*onnxpb.TensorProto, []float32, error) {
	if len(n.Input) < 3 || n.Input[2] == "" || n.OpType == "MatMul" {
		return nil, nil, nil
	}
	bias := b.ix.Init[n.Input[2]]
	if bias == nil || bias.DataType != onnxgraph.Float32 || len(bias.Dims) != 1 || bias.Dims[0] != w.Dims[axis] {
		return nil, nil, nil
	}
	if n.OpType == "Gemm" && (onnxgraph.AttrFloatOr(n, "alpha", 1) != 1 || onnxgraph.AttrFloatOr(n, "beta", 1) != 1) {
		return nil, nil, nil
	}
	v, err := onnxgraph.Float32s(bias)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %s: %w", onnxgraph.Describe(n), err)
	}
	return bias, v, nil
}

func scaleDims(k int) []int64 {
	if k == 1 {
		return nil
	}
	return []int64{int64(k)}
}

// constDQ adds a quantized constant, its scale and zero point, and the
// DequantizeLinear reading them; it returns the dequantized tensor's name.
func (b *builder) constDQ(base string, scales []float32, axis int,
	values func(string) *onnxpb.TensorProto, zeros func(string, int) *onnxpb.TensorProto) string {
	q := values(b.namer.Name(base + "_quantized"))
	scale := onnxgraph.Float32Tensor(b.namer.Name(base+"_scale"), scaleDims(len(scales)), scales)
	zp := zeros(b.namer.Name(base+"_zero_point"), len(scales))
	b.inits = append(b.inits, q, scale, zp)
	deq := b.namer.Name(base + "_dequantized")
	node := onnxgraph.NewNode("DequantizeLinear", b.namer.Name(base+"_DequantizeLinear"), []string{q.Name, scale.Name, zp.Name}, []string{deq})
	if len(scales) > 1 {
		node.Attribute = append(node.Attribute, onnxgraph.AttrInt("axis", int64(axis)))
	}
	b.nodes = append(b.nodes, node)
	return deq
}
