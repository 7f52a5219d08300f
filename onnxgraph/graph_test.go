package onnxgraph

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/onnxpb"
	"github.com/gidedge/gidedge/ort"
)

// model wraps nodes into a single-input, single-output float model.
func model(opset int64, input string, inShape []int64, output string, nodes []*onnxpb.NodeProto, inits ...*onnxpb.TensorProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   7,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: opset}},
		Graph: &onnxpb.GraphProto{
			Name:        "test",
			Node:        nodes,
			Initializer: inits,
			Input:       []*onnxpb.ValueInfoProto{TensorValueInfo(input, Float32, inShape)},
			Output:      []*onnxpb.ValueInfoProto{TensorValueInfo(output, Float32, nil)},
		},
	}
}

func randomValues(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// runModel runs m in ONNX Runtime on x and returns its first output.
func runModel(t *testing.T, m *onnxpb.ModelProto, shape []int64, x []float32) []float32 {
	t.Helper()
	if err := ort.Init(); err != nil {
		t.Fatal(err)
	}
	data, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := onnxruntime.NewDynamicAdvancedSessionWithONNXData(data, []string{m.Graph.Input[0].Name}, []string{m.Graph.Output[0].Name}, nil)
	if err != nil {
		t.Fatalf("create session (opset %d): %v", Opset(m), err)
	}
	defer sess.Destroy()
	in, err := onnxruntime.NewTensor(onnxruntime.NewShape(shape...), x)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	outs := []onnxruntime.Value{nil}
	if err := sess.Run([]onnxruntime.Value{in}, outs); err != nil {
		t.Fatalf("run (opset %d): %v", Opset(m), err)
	}
	defer outs[0].Destroy()
	return append([]float32(nil), outs[0].(*onnxruntime.Tensor[float32]).GetData()...)
}

func assertClose(t *testing.T, want, got []float32, tol float64) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > tol*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("value %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestDecodeRejectsNonONNX(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":   nil,
		"text":    []byte("this is not a model at all\n"),
		"nograph": mustMarshal(t, &onnxpb.ModelProto{IrVersion: 7}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(data, name+".onnx")
			if !errors.Is(err, ErrNotONNX) || !strings.Contains(err.Error(), name+".onnx") {
				t.Fatalf("got %v, want ErrNotONNX naming the file", err)
			}
		})
	}
}

func mustMarshal(t *testing.T, m *onnxpb.ModelProto) []byte {
	t.Helper()
	data, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m := model(13, "x", []int64{1, 4}, "y", []*onnxpb.NodeProto{NewNode("Relu", "relu", []string{"x"}, []string{"y"})})
	SetMetadata(m, "k", "v")
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if Metadata(got)["k"] != "v" || got.Graph.Node[0].OpType != "Relu" || Opset(got) != 13 {
		t.Fatalf("round trip lost data: %v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("save left %d files, want only the model", len(entries))
	}
}

func TestLoadExternalData(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{1, 2, 3}
	raw := Float32Tensor("w", []int64{3}, vals).RawData
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), append([]byte{9, 9}, raw...), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &onnxpb.TensorProto{Name: "w", Dims: []int64{3}, DataType: Float32, DataLocation: onnxpb.TensorProto_EXTERNAL,
		ExternalData: []*onnxpb.StringStringEntryProto{{Key: "location", Value: "weights.bin"}, {Key: "offset", Value: "2"}, {Key: "length", Value: "12"}}}
	m := model(13, "x", []int64{3}, "y", []*onnxpb.NodeProto{NewNode("Add", "add", []string{"x", "w"}, []string{"y"})}, w)
	path := filepath.Join(dir, "m.onnx")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Float32s(got.Graph.Initializer[0])
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, vals, v, 0)
}

func TestTensorConversions(t *testing.T) {
	f := Float32Tensor("f", []int64{2}, []float32{1.5, -2})
	if v, err := Float32s(f); err != nil || v[0] != 1.5 || v[1] != -2 {
		t.Fatalf("raw float: %v %v", v, err)
	}
	typed := &onnxpb.TensorProto{Name: "t", Dims: []int64{2}, DataType: Float32, FloatData: []float32{3, 4}}
	if v, err := Float32s(typed); err != nil || v[1] != 4 {
		t.Fatalf("float_data: %v %v", v, err)
	}
	if _, err := Float32s(&onnxpb.TensorProto{Name: "short", Dims: []int64{3}, DataType: Float32, RawData: []byte{0, 0, 0, 0}}); err == nil || !strings.Contains(err.Error(), "short") {
		t.Fatalf("short raw_data: got %v, want an error naming the tensor", err)
	}
	if _, err := Float32s(Int64Tensor("i", []int64{1}, []int64{1})); err == nil {
		t.Fatal("INT64 read as float: want an error")
	}
	for _, tc := range []*onnxpb.TensorProto{
		Int64Tensor("a", []int64{2}, []int64{-5, 7}),
		Int32Tensor("b", []int64{2}, []int32{-5, 7}),
		Int8Tensor("c", []int64{2}, []int8{-5, 7}),
		{Name: "d", Dims: []int64{2}, DataType: Int64, Int64Data: []int64{-5, 7}},
		{Name: "e", Dims: []int64{2}, DataType: Int32, Int32Data: []int32{-5, 7}},
	} {
		if v, err := Int64s(tc); err != nil || v[0] != -5 || v[1] != 7 {
			t.Fatalf("%s: %v %v", tc.Name, v, err)
		}
	}
}

func TestTopoSort(t *testing.T) {
	g := &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{TensorValueInfo("x", Float32, nil)},
		Node: []*onnxpb.NodeProto{
			NewNode("Relu", "c", []string{"b"}, []string{"c"}),
			NewNode("Relu", "b", []string{"a"}, []string{"b"}),
			NewNode("Relu", "a", []string{"x"}, []string{"a"}),
			NewNode("Relu", "d", []string{"x"}, []string{"d"}),
		},
	}
	if err := TopoSort(g); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, n := range g.Node {
		order = append(order, n.Name)
	}
	if got := strings.Join(order, ","); got != "a,b,c,d" {
		t.Fatalf("order %s, want a,b,c,d", got)
	}
	g.Node[0].Input[0] = "c" // a reads c: a cycle
	if err := TopoSort(g); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: got %v", err)
	}
	g.Node[0].Input[0] = "nowhere"
	if err := TopoSort(g); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("dangling input: got %v", err)
	}
}

func TestExposeOutputsAndShapes(t *testing.T) {
	m := model(13, "x", []int64{1, 3}, "y", []*onnxpb.NodeProto{
		NewNode("Relu", "r", []string{"x"}, []string{"h"}),
		NewNode("Neg", "n", []string{"h"}, []string{"y"}),
	})
	m.Graph.ValueInfo = append(m.Graph.ValueInfo, TensorValueInfo("h", Float32, []int64{1, -1}))
	if dims, ok := Shape(m.Graph, "h"); !ok || dims[0] != 1 || dims[1] != -1 {
		t.Fatalf("shape of h: %v %v", dims, ok)
	}
	e, err := ExposeOutputs(m, []string{"h", "y"}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Graph.Output) != 2 || len(m.Graph.Output) != 1 {
		t.Fatalf("expose: %d outputs (original %d), want 2 (1)", len(e.Graph.Output), len(m.Graph.Output))
	}
	if _, err := ExposeOutputs(m, []string{"missing"}, Float32); err == nil {
		t.Fatal("exposing an unknown tensor: want an error")
	}
}

func TestNameNodesAndNamer(t *testing.T) {
	g := &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{
		NewNode("Relu", "", []string{"x"}, []string{"a"}),
		NewNode("Relu", "dup", []string{"a"}, []string{"b"}),
		NewNode("Relu", "dup", []string{"b"}, []string{"c"}),
	}}
	if n := NameNodes(g); n != 2 {
		t.Fatalf("named %d nodes, want 2", n)
	}
	seen := map[string]bool{}
	for _, n := range g.Node {
		if n.Name == "" || seen[n.Name] {
			t.Fatalf("name %q empty or repeated", n.Name)
		}
		seen[n.Name] = true
	}
	nm := NewNamer(g)
	if a, b := nm.Name("a"), nm.Name("a"); a == "a" || a == b {
		t.Fatalf("namer gave %q and %q", a, b)
	}
}

func TestFoldBatchNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	abs := func(v []float32) []float32 {
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i]))) + 0.1
		}
		return v
	}
	m := model(13, "x", []int64{1, 3, 6, 6}, "y", []*onnxpb.NodeProto{
		NewNode("Conv", "conv", []string{"x", "w", "b"}, []string{"c"}, AttrInts("pads", 1, 1, 1, 1)),
		NewNode("BatchNormalization", "bn", []string{"c", "g", "beta", "mean", "var"}, []string{"y"}, AttrFloat("epsilon", 1e-3)),
	},
		Float32Tensor("w", []int64{4, 3, 3, 3}, randomValues(r, 108)),
		Float32Tensor("b", []int64{4}, randomValues(r, 4)),
		Float32Tensor("g", []int64{4}, randomValues(r, 4)),
		Float32Tensor("beta", []int64{4}, randomValues(r, 4)),
		Float32Tensor("mean", []int64{4}, randomValues(r, 4)),
		Float32Tensor("var", []int64{4}, abs(randomValues(r, 4))),
	)
	x := randomValues(r, 108)
	want := runModel(t, m, []int64{1, 3, 6, 6}, x)
	folded := Clone(m)
	n, err := FoldBatchNorm(folded.Graph)
	if err != nil || n != 1 {
		t.Fatalf("folded %d, err %v; want 1", n, err)
	}
	if len(folded.Graph.Node) != 1 || len(folded.Graph.Initializer) != 2 {
		t.Fatalf("after folding: %d nodes, %d initializers; want 1 and 2", len(folded.Graph.Node), len(folded.Graph.Initializer))
	}
	assertClose(t, want, runModel(t, folded, []int64{1, 3, 6, 6}, x), 1e-5)
}
