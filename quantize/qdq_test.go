package quantize

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

var tinyPreprocess = infer.Preprocess{Width: 16, Height: 16, Layout: infer.LayoutNCHW, ChannelOrder: infer.OrderRGB,
	Resize: infer.ResizeStretch, PixelScale: 1.0 / 255, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}}

// quantizeTiny prepares, plans, calibrates and builds the tiny detector.
func quantizeTiny(t *testing.T, opset int64, sel Selection, method Method) (*Prepared, *Plan, *onnxpb.ModelProto, [][]float32) {
	t.Helper()
	prep, err := Prepare(tinyDetector(1, opset), "tiny.onnx", true)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(prep, sel)
	if err != nil {
		t.Fatal(err)
	}
	images, err := ListImages(writeImages(t, filepath.Join(t.TempDir(), "calib"), 12, 5), 0)
	if err != nil {
		t.Fatal(err)
	}
	full, err := NewPlan(prep, Selection{Activations: Int8, QuantizeTail: true})
	if err != nil {
		t.Fatal(err)
	}
	cal, inputs, err := Calibrate(context.Background(), prep, full.Tensors, images, CalibrateOptions{Preprocess: tinyPreprocess, Keep: 6})
	if err != nil {
		t.Fatal(err)
	}
	act := sel.Activations
	if act == "" {
		act = Uint8
	}
	ranges, err := cal.Ranges(method, 99.99, act)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Build(plan, ranges)
	if err != nil {
		t.Fatal(err)
	}
	return prep, plan, q, inputs
}

// checkQDQStructure verifies every quantized Conv/Gemm reads its input and
// weight through DequantizeLinear fed by QuantizeLinear / int8 constants,
// with positive scales and zero points in range, and writes a QuantizeLinear.
func checkQDQStructure(t *testing.T, q *onnxpb.ModelProto, act Activations, perChannel bool) int {
	t.Helper()
	ix := onnxgraph.NewIndex(q.Graph)
	checked := 0
	for _, n := range q.Graph.Node {
		if n.OpType != "Conv" && n.OpType != "Gemm" {
			continue
		}
		checked++
		in := ix.Producer[n.Input[0]]
		if in == nil || in.OpType != "DequantizeLinear" || ix.Producer[in.Input[0]] == nil || ix.Producer[in.Input[0]].OpType != "QuantizeLinear" {
			t.Fatalf("%s: input %q is not QuantizeLinear→DequantizeLinear", n.Name, n.Input[0])
		}
		checkParams(t, ix, in, act)
		w := ix.Producer[n.Input[1]]
		if w == nil || w.OpType != "DequantizeLinear" || ix.Init[w.Input[0]] == nil || ix.Init[w.Input[0]].DataType != onnxgraph.Int8 {
			t.Fatalf("%s: weight %q is not DequantizeLinear of an int8 constant", n.Name, n.Input[1])
		}
		scales, _ := onnxgraph.Float32s(ix.Init[w.Input[1]])
		if perChannel && len(scales) < 2 {
			t.Fatalf("%s: %d weight scales, want one per output channel", n.Name, len(scales))
		}
		for _, s := range scales {
			if !(s > 0) {
				t.Fatalf("%s: weight scale %v, want > 0", n.Name, s)
			}
		}
		zps, _ := onnxgraph.Int64s(ix.Init[w.Input[2]])
		for _, z := range zps {
			if z != 0 {
				t.Fatalf("%s: weight zero point %d, want 0 (symmetric)", n.Name, z)
			}
		}
		if len(n.Input) > 2 {
			b := ix.Producer[n.Input[2]]
			if b == nil || b.OpType != "DequantizeLinear" || ix.Init[b.Input[0]].DataType != onnxgraph.Int32 {
				t.Fatalf("%s: bias %q is not DequantizeLinear of an int32 constant", n.Name, n.Input[2])
			}
		}
		cons := ix.Consumers[n.Output[0]]
		if len(cons) != 1 || cons[0].OpType != "QuantizeLinear" {
			t.Fatalf("%s: output %q feeds %d nodes, want exactly one QuantizeLinear", n.Name, n.Output[0], len(cons))
		}
		checkParams(t, ix, cons[0], act)
	}
	return checked
}

func checkParams(t *testing.T, ix *onnxgraph.Index, n *onnxpb.NodeProto, act Activations) {
	t.Helper()
	scale, err := onnxgraph.Float32s(ix.Init[n.Input[1]])
	if err != nil || len(scale) != 1 || !(scale[0] > 0) {
		t.Fatalf("%s: scale %v (%v), want one positive value", n.Name, scale, err)
	}
	zpT := ix.Init[n.Input[2]]
	zp, _ := onnxgraph.Int64s(zpT)
	switch act {
	case Uint8:
		if zpT.DataType != onnxgraph.Uint8 || zp[0] < 0 || zp[0] > 255 {
			t.Fatalf("%s: zero point %v of type %s, want uint8 in 0..255", n.Name, zp, onnxgraph.DataTypeName(zpT.DataType))
		}
	case Int8:
		if zpT.DataType != onnxgraph.Int8 || zp[0] != 0 {
			t.Fatalf("%s: zero point %v of type %s, want int8 0", n.Name, zp, onnxgraph.DataTypeName(zpT.DataType))
		}
	}
}

func TestQDQStructureAndAccuracy(t *testing.T) {
	cases := []struct {
		name       string
		opset      int64
		act        Activations
		perChannel bool
	}{
		{"uint8 opset 13", 13, Uint8, true},
		{"int8 opset 13", 13, Int8, true},
		{"upgraded from opset 11", 11, Uint8, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prep, plan, q, inputs := quantizeTiny(t, tc.opset, Selection{Activations: tc.act}, Percentile)
			if got := checkQDQStructure(t, q, tc.act, tc.perChannel); got != 6 {
				t.Fatalf("checked %d Conv/Gemm nodes, want 6", got)
			}
			if tc.act == Uint8 && (len(plan.Absorbed) != 1 || plan.Absorbed[0] != "stem_relu") {
				t.Fatalf("absorbed %v, want the stem's Relu", plan.Absorbed)
			}
			if plan.Nodes["score_act"] != classNone {
				t.Fatal("the Sigmoid after the last Conv was quantized; the tail stays float by default")
			}
			shape := []int64{1, 3, 16, 16}
			ref, err := newRunner(prep.Model, prep.Input, shape, nil, runnerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.close()
			qr, err := newRunner(q, prep.Input, shape, nil, runnerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer qr.close()
			cos, err := outputCosines(ref, qr, inputs)
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range cos {
				if c < 0.99 {
					t.Errorf("output %s: cosine %.4f between float and int8, want ≥ 0.99", name, c)
				}
			}
			// ONNX Runtime must actually fuse the QDQ groups.
			ops, err := optimizedOps(q, prep.Input, shape, 1)
			if err != nil {
				t.Fatal(err)
			}
			if ops["QLinearConv"] != 5 || ops["Conv"] != 0 {
				if tc.act == Uint8 {
					t.Errorf("ONNX Runtime ran %d QLinearConv and %d float Conv, want 5 and 0 (ops %v)", ops["QLinearConv"], ops["Conv"], ops)
				}
			}
		})
	}
}

func TestPlanSelection(t *testing.T) {
	prep, err := Prepare(tinyDetector(1, 13), "tiny.onnx", true)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(prep, Selection{Activations: Uint8, Exclude: []string{"left", "Concat"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plan.Nodes["left"]; ok {
		t.Fatal("excluded node left was quantized")
	}
	if _, ok := plan.Nodes["cat"]; ok {
		t.Fatal("excluded op type Concat was quantized")
	}
	if plan.Skipped["Conv (excluded)"] != 1 {
		t.Fatalf("skipped %v, want one excluded Conv", plan.Skipped)
	}
	tail, err := NewPlan(prep, Selection{Activations: Uint8, QuantizeTail: true})
	if err != nil {
		t.Fatal(err)
	}
	if tail.Nodes["score_act"] != classCompute {
		t.Fatal("QuantizeTail did not quantize the score Sigmoid")
	}
	if _, err := NewPlan(prep, Selection{Exclude: []string{"no_such_node"}}); err == nil || !strings.Contains(err.Error(), "no_such_node") {
		t.Fatalf("unknown exclude: got %v, want an error naming it", err)
	}
	// A model without a float Conv/Gemm/MatMul has nothing to quantize.
	m := tinyDetector(1, 13)
	m.Graph.Node = m.Graph.Node[1:2] // only the Relu
	m.Graph.Node[0].Input[0] = "image"
	m.Graph.Output = m.Graph.Output[:1]
	m.Graph.Output[0].Name = "a"
	p2, err := Prepare(m, "relu.onnx", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan(p2, Selection{}); !errors.Is(err, ErrNothingToQuantize) {
		t.Fatalf("got %v, want ErrNothingToQuantize", err)
	}
}

func TestPerTensorFallbackWhenUpgradeImpossible(t *testing.T) {
	m := tinyDetector(1, 11)
	// An op the upgrader does not know blocks the upgrade to opset 13.
	m.Graph.Node = append(m.Graph.Node, onnxgraph.NewNode("MysteryOp", "mystery", []string{"logits"}, []string{"extra"}))
	m.Graph.Node[len(m.Graph.Node)-1].Domain = ""
	prep, err := Prepare(m, "tiny.onnx", true)
	if err != nil {
		t.Fatal(err)
	}
	if prep.PerChannel || len(prep.Notes) == 0 || !strings.Contains(strings.Join(prep.Notes, " "), "per tensor") || !strings.Contains(strings.Join(prep.Notes, " "), "MysteryOp") {
		t.Fatalf("per-channel %v, notes %q: want per-tensor with a note naming MysteryOp", prep.PerChannel, prep.Notes)
	}
}
