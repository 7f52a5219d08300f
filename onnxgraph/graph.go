package onnxgraph

import (
	"fmt"
	"strconv"

	"github.com/gidedge/gidedge/onnxpb"
)

// Index maps tensor names to the nodes that produce and consume them. It is a
// snapshot: rebuild it after editing the graph.
type Index struct {
	Producer  map[string]*onnxpb.NodeProto
	Consumers map[string][]*onnxpb.NodeProto
	Init      map[string]*onnxpb.TensorProto
	inputs    map[string]bool
	outputs   map[string]bool
}

// NewIndex indexes a graph's nodes, initializers, inputs and outputs.
func NewIndex(g *onnxpb.GraphProto) *Index {
	ix := &Index{
		Producer:  make(map[string]*onnxpb.NodeProto),
		Consumers: make(map[string][]*onnxpb.NodeProto),
		Init:      make(map[string]*onnxpb.TensorProto, len(g.Initializer)),
		inputs:    make(map[string]bool, len(g.Input)),
		outputs:   make(map[string]bool, len(g.Output)),
	}
	for _, t := range g.Initializer {
		ix.Init[t.Name] = t
	}
	for _, v := range g.Input {
		ix.inputs[v.Name] = true
	}
	for _, v := range g.Output {
		ix.outputs[v.Name] = true
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			if o != "" {
				ix.Producer[o] = n
			}
		}
		for _, in := range n.Input {
			if in != "" {
				ix.Consumers[in] = append(ix.Consumers[in], n)
			}
		}
	}
	return ix
}

// IsGraphOutput reports whether name is one of the graph's outputs.
func (ix *Index) IsGraphOutput(name string) bool { return ix.outputs[name] }

// IsGraphInput reports whether name is a graph input that is not an initializer.
func (ix *Index) IsGraphInput(name string) bool { return ix.inputs[name] && ix.Init[name] == nil }

// IsConstant reports whether name is an initializer or the output of a Constant node.
func (ix *Index) IsConstant(name string) bool {
	if ix.Init[name] != nil {
		return true
	}
	p := ix.Producer[name]
	return p != nil && p.OpType == "Constant"
}

// TopoSort orders g.Node so every node comes after the producers of its
// inputs; nodes already in order keep their relative order. It fails on a
// cycle or on an input that nothing provides.
func TopoSort(g *onnxpb.GraphProto) error {
	available := make(map[string]bool)
	available[""] = true
	for _, t := range g.Initializer {
		available[t.Name] = true
	}
	for _, v := range g.Input {
		available[v.Name] = true
	}
	producedBy := make(map[string]int)
	for i, n := range g.Node {
		for _, o := range n.Output {
			producedBy[o] = i
		}
	}
	waiting := make([]int, len(g.Node)) // unresolved inputs per node
	dependents := make(map[string][]int)
	for i, n := range g.Node {
		seen := map[string]bool{}
		for _, in := range subgraphAwareInputs(n) {
			if available[in] || seen[in] {
				continue
			}
			seen[in] = true
			if _, ok := producedBy[in]; !ok {
				return fmt.Errorf("onnxgraph: %s reads %q, which no node, input or initializer provides", Describe(n), in)
			}
			waiting[i]++
			dependents[in] = append(dependents[in], i)
		}
	}
	// A queue kept sorted by original position preserves existing order.
	ready := make([]int, 0, len(g.Node))
	for i := range g.Node {
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	order := make([]*onnxpb.NodeProto, 0, len(g.Node))
	for len(ready) > 0 {
		best := 0
		for k := range ready {
			if ready[k] < ready[best] {
				best = k
			}
		}
		i := ready[best]
		ready = append(ready[:best], ready[best+1:]...)
		order = append(order, g.Node[i])
		for _, o := range g.Node[i].Output {
			for _, d := range dependents[o] {
				waiting[d]--
				if waiting[d] == 0 {
					ready = append(ready, d)
				}
			}
			delete(dependents, o)
		}
	}
	if len(order) != len(g.Node) {
		for i, w := range waiting {
			if w > 0 {
				return fmt.Errorf("onnxgraph: graph has a cycle through %s", Describe(g.Node[i]))
			}
		}
	}
	copy(g.Node, order)
	return nil
}

// subgraphAwareInputs lists a node's inputs plus the outer-scope names its
// subgraphs (If, Loop, Scan bodies) read, so those nodes sort after them.
func subgraphAwareInputs(n *onnxpb.NodeProto) []string {
	ins := n.Input
	for _, a := range n.Attribute {
		graphs := a.Graphs
		if a.G != nil {
			graphs = append(graphs[:len(graphs):len(graphs)], a.G)
		}
		for _, sg := range graphs {
			ins = ins[:len(ins):len(ins)] // never append into the node's own slice
			ins = append(ins, outerNames(sg)...)
		}
	}
	return ins
}

func outerNames(g *onnxpb.GraphProto) []string {
	local := map[string]bool{"": true}
	for _, t := range g.Initializer {
		local[t.Name] = true
	}
	for _, v := range g.Input {
		local[v.Name] = true
	}
	var out []string
	for _, n := range g.Node {
		for _, in := range subgraphAwareInputs(n) {
			if !local[in] {
				out = append(out, in)
			}
		}
		for _, o := range n.Output {
			local[o] = true
		}
	}
	return out
}

// FindValueInfo returns the ValueInfoProto describing name from the graph's
// inputs, outputs or value_info, or nil.
func FindValueInfo(g *onnxpb.GraphProto, name string) *onnxpb.ValueInfoProto {
	for _, list := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, v := range list {
			if v.Name == name {
				return v
			}
		}
	}
	return nil
}

// TensorType returns the element type and shape a ValueInfoProto declares.
// Unknown or symbolic dimensions are -1; ok is false when v is not a tensor
// or declares no shape.
func TensorType(v *onnxpb.ValueInfoProto) (elem int32, dims []int64, ok bool) {
	if v == nil || v.Type == nil {
		return 0, nil, false
	}
	tt := v.Type.GetTensorType()
	if tt == nil {
		return 0, nil, false
	}
	if tt.Shape == nil {
		return tt.ElemType, nil, false
	}
	dims = make([]int64, len(tt.Shape.Dim))
	for i, d := range tt.Shape.Dim {
		dims[i] = -1
		if v, isValue := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimValue); isValue && v.DimValue > 0 {
			dims[i] = v.DimValue
		}
	}
	return tt.ElemType, dims, true
}

// Shape returns the shape of a named tensor from the initializers or the
// graph's value infos; ok is false when the graph does not record it.
func Shape(g *onnxpb.GraphProto, name string) ([]int64, bool) {
	for _, t := range g.Initializer {
		if t.Name == name {
			return append([]int64(nil), t.Dims...), true
		}
	}
	_, dims, ok := TensorType(FindValueInfo(g, name))
	return dims, ok
}

// TensorValueInfo builds a ValueInfoProto of a tensor; a negative dim is
// written as the symbolic dimension "d<i>", a nil dims leaves the shape unknown.
func TensorValueInfo(name string, elem int32, dims []int64) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: elem}
	if dims != nil {
		shape := &onnxpb.TensorShapeProto{}
		for i, d := range dims {
			if d < 0 {
				shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "d" + strconv.Itoa(i)}})
			} else {
				shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
			}
		}
		tt.Shape = shape
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

// ExposeOutputs returns a copy of m whose graph also outputs the named
// intermediate tensors (declared with element type elem and no fixed shape),
// so one ONNX Runtime run yields them. Names already outputs are skipped;
// a name that no node produces is an error.
func ExposeOutputs(m *onnxpb.ModelProto, names []string, elem int32) (*onnxpb.ModelProto, error) {
	c := Clone(m)
	ix := NewIndex(c.Graph)
	for _, name := range names {
		if ix.IsGraphOutput(name) {
			continue
		}
		if ix.Producer[name] == nil && !ix.IsGraphInput(name) {
			return nil, fmt.Errorf("onnxgraph: cannot expose %q as an output: no node produces it", name)
		}
		c.Graph.Output = append(c.Graph.Output, TensorValueInfo(name, elem, nil))
		ix.outputs[name] = true
	}
	return c, nil
}

// RemoveInitializerInputs drops graph inputs that merely repeat an
// initializer (exporters for IR < 4 list weights as inputs). ONNX Runtime
// treats such inputs as overridable and will not constant-fold or fuse them.
// The IR version is raised to 4 when needed. It returns how many were dropped.
func RemoveInitializerInputs(m *onnxpb.ModelProto) int {
	g := m.Graph
	init := make(map[string]bool, len(g.Initializer))
	for _, t := range g.Initializer {
		init[t.Name] = true
	}
	kept := g.Input[:0]
	dropped := 0
	for _, v := range g.Input {
		if init[v.Name] {
			dropped++
			continue
		}
		kept = append(kept, v)
	}
	g.Input = kept
	if dropped > 0 && m.IrVersion < 4 {
		m.IrVersion = 4
	}
	return dropped
}

// ConstantsToInitializers turns Constant nodes holding a plain tensor (the
// "value" attribute) into initializers and returns how many it moved.
func ConstantsToInitializers(g *onnxpb.GraphProto) int {
	kept := g.Node[:0]
	moved := 0
	for _, n := range g.Node {
		if n.OpType == "Constant" && n.Domain == "" && len(n.Output) == 1 && len(n.Attribute) == 1 && n.Attribute[0].Name == "value" && n.Attribute[0].T != nil {
			t := n.Attribute[0].T
			t.Name = n.Output[0]
			g.Initializer = append(g.Initializer, t)
			moved++
			continue
		}
		kept = append(kept, n)
	}
	for i := len(kept); i < len(g.Node); i++ {
		g.Node[i] = nil
	}
	g.Node = kept
	return moved
}

// NameNodes gives every unnamed node a unique name "<OpType>_<position>" and
// renames duplicates, so nodes can be referred to by name. It returns how
// many names it set.
func NameNodes(g *onnxpb.GraphProto) int {
	used := make(map[string]bool, len(g.Node))
	for _, n := range g.Node {
		if n.Name != "" && !used[n.Name] {
			used[n.Name] = true
		}
	}
	seen := make(map[string]bool, len(g.Node))
	set := 0
	for i, n := range g.Node {
		if n.Name != "" && !seen[n.Name] {
			seen[n.Name] = true
			continue
		}
		base := n.OpType + "_" + strconv.Itoa(i)
		name := base
		for k := 1; used[name]; k++ {
			name = base + "_" + strconv.Itoa(k)
		}
		n.Name = name
		used[name] = true
		seen[name] = true
		set++
	}
	return set
}

// Namer hands out tensor and node names that do not collide with any name in
// the graph or with each other.
type Namer struct{ used map[string]bool }

// NewNamer records every name already used in g.
func NewNamer(g *onnxpb.GraphProto) *Namer {
	nm := &Namer{used: make(map[string]bool)}
	for _, t := range g.Initializer {
		nm.used[t.Name] = true
	}
	for _, list := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, v := range list {
			nm.used[v.Name] = true
		}
	}
	for _, n := range g.Node {
		nm.used[n.Name] = true
		for _, o := range n.Output {
			nm.used[o] = true
		}
		for _, in := range n.Input {
			nm.used[in] = true
		}
	}
	return nm
}

// Name returns base if unused, else base_1, base_2, ..., and marks it used.
func (nm *Namer) Name(base string) string {
	name := base
	for k := 1; nm.used[name]; k++ {
		name = base + "_" + strconv.Itoa(k)
	}
	nm.used[name] = true
	return name
}

// RenameInputs replaces every node input called from with to.
func RenameInputs(g *onnxpb.GraphProto, from, to string) {
	for _, n := range g.Node {
		for i, in := range n.Input {
			if in == from {
				n.Input[i] = to
			}
		}
	}
}

// RemoveUnusedInitializers drops initializers that no node reads and that
// are not graph outputs, and returns how many it removed.
func RemoveUnusedInitializers(g *onnxpb.GraphProto) int {
	used := map[string]bool{}
	for _, n := range g.Node {
		for _, in := range subgraphAwareInputs(n) {
			used[in] = true
		}
	}
	for _, v := range g.Output {
		used[v.Name] = true
	}
	kept := g.Initializer[:0]
	removedNames := map[string]bool{}
	for _, t := range g.Initializer {
		if used[t.Name] {
			kept = append(kept, t)
		} else {
			removedNames[t.Name] = true
		}
	}
	for i := len(kept); i < len(g.Initializer); i++ {
		g.Initializer[i] = nil
	}
	g.Initializer = kept
	inputs := g.Input[:0]
	for _, v := range g.Input {
		if !removedNames[v.Name] {
			inputs = append(inputs, v)
		}
	}
	g.Input = inputs
	return len(removedNames)
}

// PruneValueInfo drops value_info entries for tensors no node produces any
// more (left behind by edits such as FoldBatchNorm) and returns how many.
func PruneValueInfo(g *onnxpb.GraphProto) int {
	produced := map[string]bool{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			produced[o] = true
		}
	}
	kept := g.ValueInfo[:0]
	dropped := 0
	for _, v := range g.ValueInfo {
		if produced[v.Name] {
			kept = append(kept, v)
		} else {
			dropped++
		}
	}
	g.ValueInfo = kept
	return dropped
}
