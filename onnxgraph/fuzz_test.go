package onnxgraph

import (
	"testing"

	"github.com/gidedge/gidedge/onnxpb"
)

func FuzzDecode(f *testing.F) {
	m := model(13, "x", []int64{1, 3}, "y", []*onnxpb.NodeProto{NewNode("Relu", "r", []string{"x"}, []string{"y"})},
		Float32Tensor("w", []int64{2}, []float32{1, 2}))
	data, err := Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("not a model"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, "fuzz.onnx")
		if err != nil {
			return
		}
		// Whatever decodes must survive the read-only helpers.
		_ = Opset(m)
		_ = NewIndex(m.Graph)
		for _, init := range m.Graph.Initializer {
			_, _ = Float32s(init)
			_, _ = Int64s(init)
		}
		_ = TopoSort(Clone(m).Graph)
	})
}
