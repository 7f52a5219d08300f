package onnxgraph

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/onnxpb"
)

// TestUpgradeOpsetKeepsResults runs each converted op in ONNX Runtime at
// its old opset and after UpgradeOpset to 13 and compares the outputs.
func TestUpgradeOpsetKeepsResults(t *testing.T) {
	cases := []struct {
		name  string
		opset int64
		shape []int64
		nodes []*onnxpb.NodeProto
		inits []*onnxpb.TensorProto
		out   string
	}{
		{"split", 11, []int64{1, 6, 2, 2}, []*onnxpb.NodeProto{
			NewNode("Split", "s", []string{"x"}, []string{"a", "b"}, AttrInt("axis", 1), AttrInts("split", 2, 4)),
			NewNode("Relu", "r", []string{"b"}, []string{"y"}),
		}, nil, "y"},
		{"squeeze-unsqueeze", 11, []int64{2, 3}, []*onnxpb.NodeProto{
			NewNode("Unsqueeze", "u", []string{"x"}, []string{"a"}, AttrInts("axes", 0, 3)),
			NewNode("Squeeze", "s", []string{"a"}, []string{"y"}, AttrInts("axes", 3)),
		}, nil, "y"},
		{"slice", 9, []int64{2, 5}, []*onnxpb.NodeProto{
			NewNode("Slice", "s", []string{"x"}, []string{"y"}, AttrInts("starts", 1), AttrInts("ends", 4), AttrInts("axes", 1)),
		}, nil, "y"},
		{"softmax-coerced", 9, []int64{2, 3, 4}, []*onnxpb.NodeProto{
			NewNode("Softmax", "s", []string{"x"}, []string{"y"}, AttrInt("axis", 1)),
		}, nil, "y"},
		{"logsoftmax-default", 11, []int64{2, 3, 4}, []*onnxpb.NodeProto{
			NewNode("LogSoftmax", "s", []string{"x"}, []string{"y"}),
		}, nil, "y"},
		{"clip", 9, []int64{3, 4}, []*onnxpb.NodeProto{
			NewNode("Clip", "c", []string{"x"}, []string{"y"}, AttrFloat("min", 0), AttrFloat("max", 0.5)),
		}, nil, "y"},
		{"pad", 9, []int64{2, 3}, []*onnxpb.NodeProto{
			NewNode("Pad", "p", []string{"x"}, []string{"y"}, AttrInts("pads", 0, 1, 1, 2), AttrFloat("value", 0.5)),
		}, nil, "y"},
		{"upsample", 9, []int64{1, 1, 2, 3}, []*onnxpb.NodeProto{
			NewNode("Upsample", "u", []string{"x", "scales"}, []string{"y"}, AttrString("mode", "nearest")),
		}, []*onnxpb.TensorProto{Float32Tensor("scales", []int64{4}, []float32{1, 1, 2, 2})}, "y"},
		{"resize-10", 10, []int64{1, 1, 2, 3}, []*onnxpb.NodeProto{
			NewNode("Resize", "r", []string{"x", "scales"}, []string{"y"}, AttrString("mode", "nearest")),
		}, []*onnxpb.TensorProto{Float32Tensor("scales", []int64{4}, []float32{1, 1, 2, 3})}, "y"},
		{"reducesum", 11, []int64{2, 3, 4}, []*onnxpb.NodeProto{
			NewNode("ReduceSum", "r", []string{"x"}, []string{"y"}, AttrInts("axes", 1), AttrInt("keepdims", 0)),
		}, nil, "y"},
		{"dropout", 9, []int64{2, 3}, []*onnxpb.NodeProto{
			NewNode("Dropout", "d", []string{"x"}, []string{"y"}, AttrFloat("ratio", 0.3)),
		}, nil, "y"},
		{"batchnorm-7", 7, []int64{1, 2, 3, 3}, []*onnxpb.NodeProto{
			NewNode("BatchNormalization", "bn", []string{"x", "g", "b", "m", "v"}, []string{"y"}, AttrInt("spatial", 1)),
		}, []*onnxpb.TensorProto{
			Float32Tensor("g", []int64{2}, []float32{1, 2}), Float32Tensor("b", []int64{2}, []float32{0.5, -1}),
			Float32Tensor("m", []int64{2}, []float32{0.1, 0.2}), Float32Tensor("v", []int64{2}, []float32{1, 4}),
		}, "y"},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := model(tc.opset, "x", tc.shape, tc.out, tc.nodes, tc.inits...)
			x := randomValues(r, int(NumElements(tc.shape)))
			want := runModel(t, m, tc.shape, x)
			up, err := UpgradeOpset(m, 13)
			if err != nil {
				t.Fatal(err)
			}
			if Opset(up) != 13 || Opset(m) != tc.opset {
				t.Fatalf("opsets: upgraded %d (want 13), original %d (want %d, untouched)", Opset(up), Opset(m), tc.opset)
			}
			assertClose(t, want, runModel(t, up, tc.shape, x), 1e-6)
		})
	}
}

func TestUpgradeOpsetRefuses(t *testing.T) {
	cases := []struct {
		name, want string
		opset      int64
		node       *onnxpb.NodeProto
	}{
		{"unknown op", "FancyOp", 11, NewNode("FancyOp", "f", []string{"x"}, []string{"y"})},
		{"legacy broadcast", "broadcast", 6, NewNode("Add", "a", []string{"x", "x"}, []string{"y"}, AttrInt("broadcast", 1))},
		{"batchnorm spatial=0", "spatial", 7, NewNode("BatchNormalization", "bn", []string{"x", "x", "x", "x", "x"}, []string{"y"}, AttrInt("spatial", 0))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := model(tc.opset, "x", []int64{2}, "y", []*onnxpb.NodeProto{tc.node})
			_, err := UpgradeOpset(m, 13)
			if !errors.Is(err, ErrUpgrade) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrUpgrade mentioning %q", err, tc.want)
			}
		})
	}
	m := model(11, "x", []int64{2}, "y", []*onnxpb.NodeProto{NewNode("Relu", "r", []string{"x"}, []string{"y"})})
	if _, err := UpgradeOpset(m, 17); !errors.Is(err, ErrUpgrade) {
		t.Fatalf("target 17: got %v, want ErrUpgrade", err)
	}
}
