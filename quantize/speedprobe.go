package quantize

import (
	"context"
	"fmt"
	"sort"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// Whether an 8-bit kernel beats its float twin depends on the layer and
// the CPU: ONNX Runtime's float kernels are strong on small-channel layers
// (a 3-channel stem reads 27 values per output, too few for the 8-bit dot
// products) and the balance moves with AVX-512 VNNI. So, per weighted layer
// with its activation, the probe times the two ways it can sit in the
// quantized graph — the fused 8-bit kernel, or the float layer between a
// DequantizeLinear and a QuantizeLinear — each as a one-layer model fed the
// layer's real 8-bit input shape, and layers whose 8-bit form is slower
// stay float.

// probeRuns is how many timed runs each one-layer model gets.
const probeRuns = 30

// LayerSpeed is one weighted layer's measured cost both ways.
type LayerSpeed struct {
	Node string `json:"node"`
	Op   string `json:"op_type"`
	// Int8Ms and FloatMs are process CPU ms per run of the layer as an
	// 8-bit kernel and as a float layer between Dequantize and Quantize.
	Int8Ms  float64 `json:"int8_ms"`
	FloatMs float64 `json:"float_ms"`
}

// probeLayers times every weighted layer of the plan both ways and returns
// them, slowest-in-int8 first.
func probeLayers(ctx context.Context, plan *Plan, q *onnxpb.ModelProto, inputShapes map[string][]int64, threads int) ([]LayerSpeed, error) {
	qix := onnxgraph.NewIndex(q.Graph)
	fix := onnxgraph.NewIndex(plan.Model.Graph)
	var out []LayerSpeed
	for _, name := range plan.Weighted {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quantize: speed probe: %w", err)
		}
		var w *onnxpb.NodeProto
		for _, n := range q.Graph.Node {
			if n.Name == name {
				w = n
				break
			}
		}
		if w == nil {
			continue
		}
		shape := inputShapes[name]
		int8Model, floatModel, ok := oneLayerModels(q, qix, plan.Model, fix, w, shape)
		if !ok {
			continue
		}
		times, err := timeUint8Models([]*onnxpb.ModelProto{int8Model, floatModel}, shape, threads)
		if err != nil {
			return nil, err
		}
		ti, tf := times[0], times[1]
		out = append(out, LayerSpeed{Node: name, Op: w.OpType, Int8Ms: ti, FloatMs: tf})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Int8Ms-out[a].FloatMs > out[b].Int8Ms-out[b].FloatMs })
	return out, nil
}

// oneLayerModels cuts layer w, with the activation ops that follow it,
// out of the QDQ model q twice: as q has it (8-bit input, Q/DQ, 8-bit
// output) and with the float layer of the plan's model between the same
// DequantizeLinear and QuantizeLinear.
func oneLayerModels(q *onnxpb.ModelProto, qix *onnxgraph.Index, float *onnxpb.ModelProto, fix *onnxgraph.Index, w *onnxpb.NodeProto, shape []int64) (*onnxpb.ModelProto, *onnxpb.ModelProto, bool) {
	if len(shape) != 4 {
		return nil, nil, false
	}
	dqIn := qix.Producer[w.Input[0]]
	if dqIn == nil || dqIn.OpType != "DequantizeLinear" {
		return nil, nil, false
	}
	qIn := qix.Producer[dqIn.Input[0]]
	if qIn == nil || qIn.OpType != "QuantizeLinear" {
		return nil, nil, false
	}
	// The 8-bit way: follow w's output through Q/DQ pairs and the unit's
	// activation ops to the last QuantizeLinear.
	nodes := []*onnxpb.NodeProto{dqIn, w}
	for _, in := range w.Input[1:] {
		if p := qix.Producer[in]; p != nil && p.OpType == "DequantizeLinear" {
			nodes = append(nodes, p)
		}
	}
	last := ""
	t := w.Output[0]
	for step := 0; step < 8; step++ {
		cons := qix.Consumers[t]
		if len(cons) != 1 || cons[0].OpType != "QuantizeLinear" {
			break
		}
		qn := cons[0]
		nodes = append(nodes, qn)
		last = qn.Output[0]
		dq := qix.Consumers[qn.Output[0]]
		if len(dq) != 1 || dq[0].OpType != "DequantizeLinear" {
			break
		}
		act := qix.Consumers[dq[0].Output[0]]
		if len(act) != 1 || !activationOps[act[0].OpType] || act[0].OpType == "Sigmoid" {
			break // the unit ends: what follows is another layer
		}
		nodes = append(nodes, dq[0], act[0])
		t = act[0].Output[0]
	}
	if last == "" {
		return nil, nil, false
	}
	int8Model := cutModel(q, qix, nodes, qIn.Output[0], last, shape)

	// The float way: the plan's layer and activations, same DQ in, Q out.
	var fw *onnxpb.NodeProto
	for _, n := range float.Graph.Node {
		if n.Name == w.Name {
			fw = n
		}
	}
	if fw == nil {
		return nil, nil, false
	}
	fnodes := []*onnxpb.NodeProto{dqIn, fw}
	ft := fw.Output[0]
	for _, n := range nodes {
		if activationOps[n.OpType] {
			for _, fn := range fix.Consumers[ft] {
				if fn.OpType == n.OpType {
					fnodes = append(fnodes, fn)
					ft = fn.Output[0]
				}
			}
		}
	}
	// The last QuantizeLinear reads the float unit's output.
	lastQ := qix.Producer[last]
	fq := onnxgraph.NewNode("QuantizeLinear", lastQ.Name, append([]string{ft}, lastQ.Input[1:]...), []string{last})
	fnodes = append(fnodes, fq)
	dqCopy := onnxgraph.NewNode("DequantizeLinear", dqIn.Name, dqIn.Input, []string{fw.Input[0]})
	fnodes[0] = dqCopy
	merged := onnxgraph.Clone(float)
	merged.Graph.Initializer = append(merged.Graph.Initializer, q.Graph.Initializer...)
	floatModel := cutModel(merged, onnxgraph.NewIndex(merged.Graph), fnodes, qIn.Output[0], last, shape)
	return int8Model, floatModel, true
}

// cutModel makes a model of the given nodes, fed at input (uint8, shape)
// and returning output (uint8), with the initializers they read.
func cutModel(m *onnxpb.ModelProto, ix *onnxgraph.Index, nodes []*onnxpb.NodeProto, input, output string, shape []int64) *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: "probe"}
	seen := map[string]bool{}
	for _, n := range nodes {
		c := onnxgraph.NewNode(n.OpType, n.Name, n.Input, n.Output, n.Attribute...)
		c.Domain = n.Domain
		g.Node = append(g.Node, c)
		for _, in := range n.Input {
			if t := ix.Init[in]; t != nil && !seen[in] {
				seen[in] = true
				g.Initializer = append(g.Initializer, t)
			}
		}
	}
	g.Input = []*onnxpb.ValueInfoProto{onnxgraph.TensorValueInfo(input, onnxgraph.Uint8, shape)}
	g.Output = []*onnxpb.ValueInfoProto{onnxgraph.TensorValueInfo(output, onnxgraph.Uint8, nil)}
	out := &onnxpb.ModelProto{IrVersion: m.IrVersion, OpsetImport: m.OpsetImport, Graph: g}
	onnxgraph.TopoSort(g)
	return out
}

// timeUint8Models returns the process CPU ms per run of models with one
// uint8 input of the given shape and one output, run interleaved in blocks
// so load drifts hit them alike.
func timeUint8Models(models []*onnxpb.ModelProto, shape []int64, threads int) ([]float64, error) {
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("quantize: speed probe: %w", err)
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			return nil, fmt.Errorf("quantize: speed probe: %w", err)
		}
	}
	x := make([]uint8, onnxgraph.NumElements(shape))
	for i := range x {
		x[i] = uint8(i * 7)
	}
	in, err := onnxruntime.NewTensor(onnxruntime.NewShape(shape...), x)
	if err != nil {
		return nil, fmt.Errorf("quantize: speed probe: %w", err)
	}
	defer in.Destroy()
	sessions := make([]*onnxruntime.DynamicAdvancedSession, len(models))
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.Destroy()
			}
		}
	}()
	for i, m := range models {
		data, err := onnxgraph.Marshal(m)
		if err != nil {
			return nil, err
		}
		if sessions[i], err = onnxruntime.NewDynamicAdvancedSessionWithONNXData(data, []string{m.Graph.Input[0].Name}, []string{m.Graph.Output[0].Name}, so); err != nil {
			return nil, fmt.Errorf("quantize: speed probe: layer model: %w", err)
		}
	}
	run := func(s *onnxruntime.DynamicAdvancedSession, n int) error {
		for range n {
			outs := []onnxruntime.Value{nil}
			if err := s.Run([]onnxruntime.Value{in}, outs); err != nil {
				return fmt.Errorf("quantize: speed probe: %w", err)
			}
			outs[0].Destroy()
		}
		return nil
	}
	cpu := make([]float64, len(models))
	for _, s := range sessions {
		if err := run(s, 3); err != nil {
			return nil, err
		}
	}
	const block = 5
	for done := 0; done < probeRuns; done += block {
		for i, s := range sessions {
			start := processCPU()
			if err := run(s, block); err != nil {
				return nil, err
			}
			cpu[i] += processCPU() - start
		}
	}
	for i := range cpu {
		cpu[i] /= probeRuns
	}
	return cpu, nil
}
