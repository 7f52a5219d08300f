package onnxgraph

import (
	"fmt"

	"github.com/gidedge/gidedge/onnxpb"
)

// NewNode builds a default-domain node.
func NewNode(opType, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		OpType:    opType,
		Name:      name,
		Input:     append([]string(nil), inputs...),
		Output:    append([]string(nil), outputs...),
		Attribute: attrs,
	}
}

// AttrInt builds an INT attribute.
func AttrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

// AttrInts builds an INTS attribute.
func AttrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: append([]int64(nil), v...)}
}

// AttrFloat builds a FLOAT attribute.
func AttrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

// AttrFloats builds a FLOATS attribute.
func AttrFloats(name string, v ...float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOATS, Floats: append([]float32(nil), v...)}
}

// AttrString builds a STRING attribute.
func AttrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}

// AttrTensor builds a TENSOR attribute.
func AttrTensor(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_TENSOR, T: t}
}

// Attr returns the node's attribute called name, or nil.
func Attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.Attribute {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// AttrIntOr returns an INT attribute's value, or def when absent.
func AttrIntOr(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := Attr(n, name); a != nil {
		return a.I
	}
	return def
}

// AttrFloatOr returns a FLOAT attribute's value, or def when absent.
func AttrFloatOr(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := Attr(n, name); a != nil {
		return a.F
	}
	return def
}

// AttrStringOr returns a STRING attribute's value, or def when absent.
func AttrStringOr(n *onnxpb.NodeProto, name, def string) string {
	if a := Attr(n, name); a != nil {
		return string(a.S)
	}
	return def
}

// RemoveAttr deletes the attribute called name and reports whether it existed.
func RemoveAttr(n *onnxpb.NodeProto, name string) bool {
	for i, a := range n.Attribute {
		if a.Name == name {
			n.Attribute = append(n.Attribute[:i], n.Attribute[i+1:]...)
			return true
		}
	}
	return false
}

// SetAttr replaces the attribute with the same name, or appends it.
func SetAttr(n *onnxpb.NodeProto, a *onnxpb.AttributeProto) {
	for i, old := range n.Attribute {
		if old.Name == a.Name {
			n.Attribute[i] = a
			return
		}
	}
	n.Attribute = append(n.Attribute, a)
}

// Describe names a node for messages: its name and op type, or its first
// output when it has no name.
func Describe(n *onnxpb.NodeProto) string {
	if n.Name != "" {
		return fmt.Sprintf("%s node %q", n.OpType, n.Name)
	}
	if len(n.Output) > 0 {
		return fmt.Sprintf("%s node producing %q", n.OpType, n.Output[0])
	}
	return n.OpType + " node"
}
