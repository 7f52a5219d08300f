package onnximport

import (
	"fmt"
	"sort"

	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// FeatureMap is a 4-D tensor of a graph at a stride of the input: a
// candidate for --outputs.
type FeatureMap struct {
	Name     string `json:"name"`
	Op       string `json:"op"`
	Channels int    `json:"channels"`
	Stride   int    `json:"stride"`
	// Index is the position of its node in the graph.
	Index int `json:"index"`
}

// List runs the model in ONNX Runtime with every float node output exposed
// and returns the feature maps at strides 4 to 64 of its image input, in
// graph order. size is the side used when the input's is not fixed.
func List(path string, size, threads int) ([]FeatureMap, error) {
	m, err := onnxgraph.Load(path)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %w", err)
	}
	onnxgraph.RemoveInitializerInputs(m)
	var image string
	for _, in := range m.Graph.Input {
		image = in.Name
	}
	if len(m.Graph.Input) != 1 {
		return nil, fmt.Errorf("onnximport: %s has %d inputs, want one image input", path, len(m.Graph.Input))
	}
	trace, err := imageShape(m.Graph, image, size)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	var names []string
	index := map[string]int{}
	op := map[string]string{}
	ints := integerTensors(m.Graph)
	for i, n := range m.Graph.Node {
		if n.OpType == "Constant" {
			continue
		}
		for _, o := range n.Output {
			if ints[o] {
				continue
			}
			if o != "" {
				names = append(names, o)
				index[o], op[o] = i, n.OpType
			}
		}
	}
	exposed, err := onnxgraph.ExposeOutputs(m, names, onnxgraph.Float32)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	data, err := onnxgraph.Marshal(exposed)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %w", err)
	}
	shape := int64s(trace)
	shapes, _, err := export.RunONNX(data, image, randomImage(1, trace), shape, names, threads)
	if err != nil {
		return nil, fmt.Errorf("onnximport: %s: %w", path, err)
	}
	var maps []FeatureMap
	for i, s := range shapes {
		if len(s) != 4 || s[2] <= 0 || s[3] <= 0 || int64(trace[2])%s[2] != 0 {
			continue
		}
		stride := int64(trace[2]) / s[2]
		if stride < 4 || stride > 64 || int64(trace[3])/s[3] != stride {
			continue
		}
		maps = append(maps, FeatureMap{Name: names[i], Op: op[names[i]], Channels: int(s[1]), Stride: int(stride), Index: index[names[i]]})
	}
	sort.SliceStable(maps, func(a, b int) bool { return maps[a].Index < maps[b].Index })
	return maps, nil
}

// integerTensors finds the tensors that hold integers (shape arithmetic):
// integer initializers and constants, the outputs of Shape, Size, NonZero,
// ArgMax/ArgMin and integer Casts, and what ops compute from them.
func integerTensors(g *onnxpb.GraphProto) map[string]bool {
	ints := map[string]bool{}
	for _, t := range g.Initializer {
		if t.DataType != onnxgraph.Float32 {
			ints[t.Name] = true
		}
	}
	for _, n := range g.Node {
		isInt := false
		switch n.OpType {
		case "Shape", "Size", "NonZero", "ArgMax", "ArgMin":
			isInt = true
		case "Cast":
			isInt = onnxgraph.AttrIntOr(n, "to", int64(onnxgraph.Float32)) != int64(onnxgraph.Float32)
		case "Constant":
			c, ok := constantNode(n)
			isInt = ok && c.isInt
		default:
			isInt = len(n.Input) > 0 && ints[n.Input[0]]
		}
		if isInt {
			for _, o := range n.Output {
				ints[o] = true
			}
		}
		if n.OpType == "TopK" && len(n.Output) > 1 {
			ints[n.Output[1]] = true
		}
	}
	return ints
}
