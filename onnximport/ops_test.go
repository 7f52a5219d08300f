package onnximport

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// builder assembles small ONNX models for the op tests.
type builder struct {
	rng   *rand.Rand
	nodes []*onnxpb.NodeProto
	inits []*onnxpb.TensorProto
	n     int
}

func newBuilder(seed uint64) *builder { return &builder{rng: rand.New(rand.NewPCG(seed, 7))} }

func (b *builder) name(base string) string {
	b.n++
	return fmt.Sprintf("%s%d", base, b.n)
}

// weight adds a random float initializer.
func (b *builder) weight(std float64, dims ...int64) string {
	n := onnxgraph.NumElements(dims)
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(b.rng.NormFloat64() * std)
	}
	return b.floats(dims, v...)
}

func (b *builder) floats(dims []int64, v ...float32) string {
	name := b.name("f")
	b.inits = append(b.inits, onnxgraph.Float32Tensor(name, dims, v))
	return name
}

func (b *builder) ints(v ...int64) string {
	name := b.name("i")
	b.inits = append(b.inits, onnxgraph.Int64Tensor(name, []int64{int64(len(v))}, v))
	return name
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(opType string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.name(strings.ToLower(opType))
	b.nodes = append(b.nodes, onnxgraph.NewNode(opType, out, inputs, []string{out}, attrs...))
	return out
}

// multi adds a node with k outputs.
func (b *builder) multi(opType string, inputs []string, k int, attrs ...*onnxpb.AttributeProto) []string {
	outs := make([]string, k)
	for i := range outs {
		outs[i] = b.name(strings.ToLower(opType))
	}
	b.nodes = append(b.nodes, onnxgraph.NewNode(opType, outs[0], inputs, outs, attrs...))
	return outs
}

// conv adds a convolution with random weights and bias.
func (b *builder) conv(x string, cin, cout, k int64, attrs ...*onnxpb.AttributeProto) string {
	group := int64(1)
	for _, a := range attrs {
		if a.Name == "group" {
			group = a.I
		}
	}
	w := b.weight(math.Sqrt(2/float64(cin/group*k*k)), cout, cin/group, k, k)
	return b.op("Conv", []string{x, w, b.weight(0.1, cout)}, attrs...)
}

// model wraps the nodes with the image input "x" of shape in (negative
// dims symbolic) and the given outputs.
func (b *builder) model(opset int64, in []int64, outputs ...string) *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: "test", Node: b.nodes, Initializer: b.inits,
		Input: []*onnxpb.ValueInfoProto{onnxgraph.TensorValueInfo("x", onnxgraph.Float32, in)}}
	for _, o := range outputs {
		g.Output = append(g.Output, onnxgraph.TensorValueInfo(o, onnxgraph.Float32, nil))
	}
	ir := int64(7)
	if opset >= 15 {
		ir = 8
	}
	if opset <= 9 {
		ir = 4
	}
	return &onnxpb.ModelProto{IrVersion: ir, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: opset}}, Graph: g}
}

// checkORT translates m, runs it in the engine and ONNX Runtime on the same
// random image and compares each output; it returns the translation.
func checkORT(t *testing.T, m *onnxpb.ModelProto, opts Options, outputs ...string) *translated {
	t.Helper()
	opts.Outputs = outputs
	tr, err := translateModel(m, "test.onnx", opts, 16)
	if err != nil {
		t.Fatal(err)
	}
	compareORT(t, m, tr, tr.input, tr.trace, outputs, func(name string) *engine.Tensor { return tr.t.env[name] })
	return tr
}

func compareORT(t *testing.T, m *onnxpb.ModelProto, tr *translated, input []float32, shape []int, outputs []string, got func(string) *engine.Tensor) {
	t.Helper()
	data, err := onnxgraph.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if tr.t.bgr {
		input = reverseChannels(input, shape)
	}
	shapes, values, err := export.RunONNX(data, tr.image, input, int64s(shape), outputs, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range outputs {
		x := got(name)
		if x == nil {
			t.Fatalf("output %q was not computed", name)
		}
		op, err := export.Measure(name, int64s(x.Shape()), x.ToHost(), shapes[i], values[i])
		if err != nil {
			t.Fatal(err)
		}
		if op.Relative > 1e-5 {
			t.Errorf("output %q %v: relative difference %.3g (|diff| %.3g, scale %.3g)", name, op.Shape, op.Relative, op.MaxAbsDiff, op.Scale)
		}
	}
}

// graphOps lists the graph ops a translation made.
func graphOps(tr *translated) []string {
	var ops []string
	for _, n := range tr.t.net.Config.Nodes {
		ops = append(ops, n.Op)
	}
	return ops
}

func TestConvolutionsAndNorms(t *testing.T) {
	for _, opset := range []int64{9, 11, 17} {
		t.Run(fmt.Sprint("opset", opset), func(t *testing.T) {
			b := newBuilder(1)
			c1 := b.conv("x", 3, 8, 3, onnxgraph.AttrInts("strides", 2, 2), onnxgraph.AttrInts("pads", 1, 0, 2, 1))
			c2 := b.conv(c1, 8, 8, 3, onnxgraph.AttrInt("group", 2), onnxgraph.AttrInts("dilations", 2, 2), onnxgraph.AttrInts("pads", 2, 2, 2, 2))
			c3 := b.conv(c2, 8, 8, 3, onnxgraph.AttrInt("group", 8), onnxgraph.AttrString("auto_pad", "SAME_UPPER"), onnxgraph.AttrInts("strides", 2, 2))
			w := b.weight(0.3, 6, 8, 3, 1)
			c4 := b.op("Conv", []string{c3, w}, onnxgraph.AttrInts("pads", 1, 0, 1, 0))
			bn := b.op("BatchNormalization", []string{c4, b.weight(1, 6), b.weight(1, 6), b.weight(0.1, 6), b.floats([]int64{6}, 0.5, 1, 2, 0.7, 1.3, 0.9)}, onnxgraph.AttrFloat("epsilon", 1e-3))
			tr := checkORT(t, b.model(opset, []int64{1, 3, 16, 16}, bn), Options{}, bn)
			if got := graphOps(tr); !slices.Equal(got, []string{"conv", "conv", "conv", "conv", "batchnorm"}) {
				t.Errorf("graph ops %v", got)
			}
		})
	}
}

func TestActivations(t *testing.T) {
	for _, opset := range []int64{9, 11, 17} {
		t.Run(fmt.Sprint("opset", opset), func(t *testing.T) {
			b := newBuilder(2)
			x := b.conv("x", 3, 4, 1)
			var clip string
			if opset < 11 {
				clip = b.op("Clip", []string{x}, onnxgraph.AttrFloat("min", 0), onnxgraph.AttrFloat("max", 6))
			} else {
				clip = b.op("Clip", []string{x, b.floats(nil, -0.5), b.floats(nil, 0.5)})
			}
			outs := []string{
				b.op("Relu", []string{x}),
				b.op("LeakyRelu", []string{x}, onnxgraph.AttrFloat("alpha", 0.2)),
				b.op("Sigmoid", []string{x}),
				b.op("Tanh", []string{x}),
				b.op("HardSigmoid", []string{x}, onnxgraph.AttrFloat("alpha", 0.3), onnxgraph.AttrFloat("beta", 0.4)),
				clip,
				b.op("Mul", []string{x, b.op("Sigmoid", []string{x})}),
				b.op("Mul", []string{b.op("HardSigmoid", []string{x}, onnxgraph.AttrFloat("alpha", 1.0/6), onnxgraph.AttrFloat("beta", 0.5)), x}),
			}
			if opset >= 14 {
				outs = append(outs, b.op("HardSwish", []string{x}))
			}
			tr := checkORT(t, b.model(opset, []int64{1, 3, 8, 8}, outs...), Options{}, outs...)
			ops := graphOps(tr)
			if !slices.Contains(ops, models.OpSiLU) || !slices.Contains(ops, models.OpHardSwish) {
				t.Errorf("x·sigmoid(x) and x·hardsigmoid(x) were not fused: %v", ops)
			}
		})
	}
}

func TestArithmeticAndShapes(t *testing.T) {
	for _, opset := range []int64{11, 13, 18} {
		t.Run(fmt.Sprint("opset", opset), func(t *testing.T) {
			b := newBuilder(3)
			x := b.conv("x", 3, 8, 3, onnxgraph.AttrInts("pads", 1, 1, 1, 1))
			add := b.op("Add", []string{x, b.weight(1, 1, 8, 1, 1)})
			sub := b.op("Sub", []string{b.floats(nil, 0.25), add})
			mul := b.op("Mul", []string{sub, x})
			div := b.op("Div", []string{mul, b.floats(nil, 4)})
			cat := b.op("Concat", []string{div, x}, onnxgraph.AttrInt("axis", 1))
			var parts []string
			switch {
			case opset < 13:
				parts = b.multi("Split", []string{cat}, 3, onnxgraph.AttrInt("axis", 1), onnxgraph.AttrInts("split", 4, 8, 4))
			case opset < 18:
				parts = b.multi("Split", []string{cat, b.ints(4, 8, 4)}, 3, onnxgraph.AttrInt("axis", 1))
			default:
				parts = b.multi("Split", []string{cat}, 2, onnxgraph.AttrInt("axis", 1), onnxgraph.AttrInt("num_outputs", 2))
			}
			// A channel shuffle as ShuffleNetV2 exports it, batch and size baked in.
			shuf := b.op("Reshape", []string{parts[1], b.ints(1, 2, 4, 8, 8)})
			shuf = b.op("Transpose", []string{shuf}, onnxgraph.AttrInts("perm", 0, 2, 1, 3, 4))
			shuf = b.op("Reshape", []string{shuf, b.ints(1, -1, 8, 8)})
			// Space to depth with strided slices (YOLOv5's Focus).
			sl := func(h, w int64) string {
				return b.op("Slice", []string{parts[0], b.ints(h, w), b.ints(math.MaxInt64, math.MaxInt64), b.ints(2, 3), b.ints(2, 2)})
			}
			focus := b.op("Concat", []string{sl(0, 0), sl(1, 0), sl(0, 1), sl(1, 1)}, onnxgraph.AttrInt("axis", 1))
			crop := b.op("Slice", []string{shuf, b.ints(1, -7), b.ints(-1, 100), b.ints(2, 3)})
			outs := []string{shuf, focus, crop}
			tr := checkORT(t, b.model(opset, []int64{1, 3, 8, 8}, outs...), Options{}, outs...)
			for _, n := range tr.t.net.Config.Nodes {
				if n.Op == models.OpReshape && (len(n.Shape[0].From) != 1 || n.Shape[0].From[0] != 0) {
					t.Errorf("reshape %s keeps a literal batch: %v", n.Name, n.Shape)
				}
			}
		})
	}
}

// TestReshapeFollowsInput translates a channel shuffle exported at batch 1
// and 8×8, runs it at batch 2 and 16×12, and compares it with the same graph
// exported at that size.
func TestReshapeFollowsInput(t *testing.T) {
	var outs []string
	build := func(n, h, w int64) *onnxpb.ModelProto {
		b := newBuilder(4)
		x := b.conv("x", 3, 8, 3, onnxgraph.AttrInts("pads", 1, 1, 1, 1))
		r := b.op("Reshape", []string{x, b.ints(n, 2, 4, h, w)})
		r = b.op("Transpose", []string{r}, onnxgraph.AttrInts("perm", 0, 2, 1, 3, 4))
		r = b.op("Reshape", []string{r, b.ints(n, 8, h, w)})
		u := b.op("Resize", []string{r, "", b.floats([]int64{4}, 1, 1, 2, 2)}, onnxgraph.AttrString("mode", "linear"), onnxgraph.AttrString("coordinate_transformation_mode", "pytorch_half_pixel"))
		d := b.op("Reshape", []string{u, b.ints(n, 8, h, 2, w, 2)})
		d = b.op("Transpose", []string{d}, onnxgraph.AttrInts("perm", 0, 1, 3, 5, 2, 4))
		d = b.op("Reshape", []string{d, b.ints(n, 32, h, w)})
		f := b.op("Flatten", []string{b.op("GlobalAveragePool", []string{d})})
		outs = []string{d, f}
		return b.model(13, []int64{n, 3, h, w}, d, f)
	}
	small := build(1, 8, 8)
	tr := checkORT(t, small, Options{}, outs...)
	big := build(2, 16, 12)
	m := &models.GraphModule{Config: &models.GraphConfig{Inputs: []models.GraphPort{{Name: "x"}}, Nodes: tr.t.net.Config.Nodes}, Layers: tr.t.net.Layers}
	shape := []int{2, 3, 16, 12}
	input := randomImage(9, shape)
	var env map[string]*engine.Tensor
	engine.NoGrad(func() { env = m.ForwardTensors(engine.FromHost(input, shape...)) })
	compareORT(t, big, tr, input, shape, outs, func(n string) *engine.Tensor { return env[n] })
	for _, n := range tr.t.net.Config.Nodes {
		if n.Op == models.OpReshape {
			t.Logf("%s: %v", n.Name, n.Shape)
		}
	}
}

func TestPoolsPadsAndResizes(t *testing.T) {
	for _, opset := range []int64{9, 11, 13, 19} {
		t.Run(fmt.Sprint("opset", opset), func(t *testing.T) {
			b := newBuilder(5)
			x := b.conv("x", 3, 4, 3, onnxgraph.AttrInts("pads", 1, 1, 1, 1))
			outs := []string{
				b.op("MaxPool", []string{x}, onnxgraph.AttrInts("kernel_shape", 3, 3), onnxgraph.AttrInts("strides", 2, 2), onnxgraph.AttrInts("pads", 1, 1, 1, 1)),
				b.op("AveragePool", []string{x}, onnxgraph.AttrInts("kernel_shape", 3, 3), onnxgraph.AttrInts("pads", 1, 1, 1, 1)),
				b.op("AveragePool", []string{x}, onnxgraph.AttrInts("kernel_shape", 3, 3), onnxgraph.AttrInts("pads", 1, 1, 1, 1), onnxgraph.AttrInt("count_include_pad", 1)),
				b.op("GlobalAveragePool", []string{x}),
			}
			if opset < 18 {
				outs = append(outs, b.op("ReduceMean", []string{x}, onnxgraph.AttrInts("axes", 2, 3), onnxgraph.AttrInt("keepdims", 0)))
			} else {
				outs = append(outs, b.op("ReduceMean", []string{x, b.ints(-1, -2)}))
			}
			if opset < 11 {
				outs = append(outs, b.op("Pad", []string{x}, onnxgraph.AttrInts("pads", 0, 0, 1, 2, 0, 0, 2, 1)))
				outs = append(outs, b.op("Upsample", []string{x, b.floats([]int64{4}, 1, 1, 2, 2)}, onnxgraph.AttrString("mode", "nearest")))
				outs = append(outs, b.op("Upsample", []string{x, b.floats([]int64{4}, 1, 1, 2, 2)}, onnxgraph.AttrString("mode", "linear")))
			} else {
				outs = append(outs, b.op("Pad", []string{x, b.ints(0, 0, 1, 2, 0, 0, 2, 1)}))
				resize := func(scale float32, mode, coord string, extra ...*onnxpb.AttributeProto) string {
					attrs := append([]*onnxpb.AttributeProto{onnxgraph.AttrString("mode", mode), onnxgraph.AttrString("coordinate_transformation_mode", coord)}, extra...)
					return b.op("Resize", []string{x, b.floats([]int64{0}), b.floats([]int64{4}, 1, 1, scale, scale)}, attrs...)
				}
				outs = append(outs,
					resize(2, "nearest", "asymmetric", onnxgraph.AttrString("nearest_mode", "floor")),
					resize(2, "nearest", "half_pixel"),
					resize(2, "linear", "pytorch_half_pixel"),
					resize(0.5, "linear", "pytorch_half_pixel"),
					resize(2, "linear", "half_pixel"),
					resize(2, "linear", "align_corners"),
					resize(3, "linear", "asymmetric"),
					b.op("Resize", []string{x, b.floats([]int64{0}), b.floats([]int64{0}), b.ints(1, 4, 12, 20)}, onnxgraph.AttrString("mode", "linear")),
				)
			}
			outs = append(outs, b.op("Identity", []string{x}), b.op("Dropout", []string{x}))
			checkORT(t, b.model(opset, []int64{1, 3, 8, 8}, outs...), Options{}, outs...)
		})
	}
}

func TestLinearLayers(t *testing.T) {
	b := newBuilder(6)
	x := b.op("Flatten", []string{b.op("GlobalAveragePool", []string{b.conv("x", 3, 8, 3)})})
	g1 := b.op("Gemm", []string{x, b.weight(0.3, 5, 8), b.weight(1, 5)}, onnxgraph.AttrInt("transB", 1), onnxgraph.AttrFloat("alpha", 0.5), onnxgraph.AttrFloat("beta", 2))
	g2 := b.op("Gemm", []string{g1, b.weight(0.3, 5, 4)})
	mm := b.op("MatMul", []string{g2, b.weight(0.3, 4, 3)})
	checkORT(t, b.model(13, []int64{2, 3, 8, 8}, g1, mm), Options{}, g1, mm)
}

func TestBGRAndUnfoldedNorms(t *testing.T) {
	b := newBuilder(7)
	c := b.conv("x", 3, 6, 3, onnxgraph.AttrInts("pads", 1, 1, 1, 1))
	y := b.op("Relu", []string{b.conv(c, 6, 6, 1)})
	tr := checkORT(t, b.model(13, []int64{1, 3, 8, 8}, y), Options{BGR: true, UnfoldBN: true}, y)
	if got := graphOps(tr); !slices.Equal(got, []string{"conv", "batchnorm", "conv", "batchnorm", "relu"}) {
		t.Errorf("graph ops %v, want every convolution followed by a fresh batch norm", got)
	}
	for _, n := range tr.t.net.Config.Nodes {
		if n.Op == models.OpConv && n.Bias {
			t.Errorf("unfolded convolution %s kept its bias", n.Name)
		}
	}
}

// TestUnsupported checks that refused nodes name the node, the op type and
// the opset, and that every refused node is listed.
func TestUnsupported(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *builder) string
		want  []string
	}{
		{"unknown op", func(b *builder) string {
			x := b.conv("x", 3, 4, 3)
			y := b.op("Softmax", []string{x}, onnxgraph.AttrInt("axis", 1))
			return b.op("ConvTranspose", []string{y, b.weight(0.1, 4, 4, 2, 2)})
		}, []string{`(Softmax, opset 13): op type not translated`, `(ConvTranspose, opset 13): op type not translated`}},
		{"uneven strides", func(b *builder) string {
			return b.conv("x", 3, 4, 3, onnxgraph.AttrInts("strides", 1, 2))
		}, []string{"(Conv, opset 13): strides [1 2]"}},
		{"cubic resize", func(b *builder) string {
			return b.op("Resize", []string{b.conv("x", 3, 4, 1), "", b.floats([]int64{4}, 1, 1, 2, 2)}, onnxgraph.AttrString("mode", "cubic"))
		}, []string{`(Resize, opset 13): mode "cubic"`}},
		{"negative slice step", func(b *builder) string {
			return b.op("Slice", []string{b.conv("x", 3, 4, 1), b.ints(-1), b.ints(math.MinInt64), b.ints(1), b.ints(-1)})
		}, []string{"(Slice, opset 13): step -1 on axis 1"}},
		{"custom domain", func(b *builder) string {
			x := b.conv("x", 3, 4, 1)
			out := b.op("Relu", []string{x})
			b.nodes[len(b.nodes)-1].Domain = "com.example"
			return out
		}, []string{`(com.example.Relu, opset 13): custom domain`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(8)
			out := tc.build(b)
			_, err := translateModel(b.model(13, []int64{1, 3, 8, 8}, out), "test.onnx", Options{Outputs: []string{out}}, 8)
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v, want ErrUnsupported", err)
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) || ue.OpType == "" || ue.Opset != 13 {
				t.Fatalf("error %v: want an *UnsupportedError with op type and opset", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
