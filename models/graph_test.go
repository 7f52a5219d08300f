package models

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/nn"
)

func intPtr(v int) *int { return &v }

// miniGraphs is a small imported backbone (three stride-2 stages, a channel
// shuffle, a strided slice and pooling) and a neck (laterals, bilinear
// top-down path) written by hand, as gidedge import would.
func miniGraphs() (bb, neck *GraphConfig) {
	conv := func(name, in, out string, cin, cout, stride int) GraphNode {
		return GraphNode{Name: name, Op: OpConv, Inputs: []string{in}, Outputs: []string{out}, In: cin, Out: cout,
			Kernel: []int{3, 3}, Stride: stride, Pad: []int{1, 1, 1, 1}, Dilation: 1, Groups: 1, Bias: true}
	}
	bb = &GraphConfig{
		Source:  "hand-written",
		Inputs:  []GraphPort{{Name: "image", Channels: 3, Stride: 1}},
		Outputs: []GraphPort{{Name: "c3", Channels: 8, Stride: 8}, {Name: "c4", Channels: 8, Stride: 16}, {Name: "c5", Channels: 16, Stride: 32}},
		Nodes: []GraphNode{
			conv("stem", "image", "s1", 3, 8, 2),
			{Name: "stem_bn", Op: OpBatchNorm, Inputs: []string{"s1"}, Outputs: []string{"s2"}, Channels: 8, Eps: 1e-5, Momentum: 0.1},
			{Name: "stem_act", Op: OpLeakyReLU, Inputs: []string{"s2"}, Outputs: []string{"s3"}, Alpha: 0.1},
			{Name: "pool", Op: OpMaxPool, Inputs: []string{"s3"}, Outputs: []string{"p"}, Kernel: []int{3, 3}, Stride: 2, Pad: []int{1, 1, 1, 1}},
			conv("down3", "p", "d3", 8, 8, 2),
			{Name: "shuffle_a", Op: OpReshape, Inputs: []string{"d3"}, Outputs: []string{"r1"},
				Shape: []ReshapeDim{{From: []int{0}}, Literal(2), Literal(4), {From: []int{2}}, {From: []int{3}}}},
			{Name: "shuffle_b", Op: OpTranspose, Inputs: []string{"r1"}, Outputs: []string{"r2"}, Perm: []int{0, 2, 1, 3, 4}},
			{Name: "shuffle_c", Op: OpReshape, Inputs: []string{"r2"}, Outputs: []string{"c3"},
				Shape: []ReshapeDim{{From: []int{0}}, Literal(8), {From: []int{3}}, {From: []int{4}}}},
			conv("down4", "c3", "c4", 8, 8, 2),
			{Name: "even", Op: OpSlice, Inputs: []string{"c4"}, Outputs: []string{"e"}, Axis: 1, Start: 0, Step: 2},
			{Name: "odd", Op: OpSlice, Inputs: []string{"c4"}, Outputs: []string{"o"}, Axis: 1, Start: -7, End: intPtr(8), Step: 2},
			{Name: "both", Op: OpConcat, Inputs: []string{"o", "e"}, Outputs: []string{"eo"}, Axis: 1},
			{Name: "down5", Op: OpAvgPool, Inputs: []string{"eo"}, Outputs: []string{"a5"}, Kernel: []int{3, 3}, Stride: 2, Pad: []int{1, 1, 1, 1}},
			{Name: "wide", Op: OpConv, Inputs: []string{"a5"}, Outputs: []string{"w5"}, In: 8, Out: 16,
				Kernel: []int{1, 3}, Stride: 1, Pad: []int{0, 1, 0, 1}, Dilation: 1, Groups: 1},
			{Name: "c5", Op: OpClip, Inputs: []string{"w5"}, Outputs: []string{"c5"}, Min: ptr(float32(0)), Max: ptr(float32(6))},
		},
	}
	neck = &GraphConfig{
		Inputs:  bb.Outputs,
		Outputs: []GraphPort{{Name: "p3", Channels: 12, Stride: 8}, {Name: "p4", Channels: 12, Stride: 16}, {Name: "p5", Channels: 12, Stride: 32}},
		Nodes: []GraphNode{
			{Name: "l3", Op: OpConv, Inputs: []string{"c3"}, Outputs: []string{"l3"}, In: 8, Out: 12, Kernel: []int{1, 1}, Stride: 1, Pad: []int{0, 0, 0, 0}, Dilation: 1, Groups: 1, Bias: true},
			{Name: "l4", Op: OpConv, Inputs: []string{"c4"}, Outputs: []string{"l4"}, In: 8, Out: 12, Kernel: []int{1, 1}, Stride: 1, Pad: []int{0, 0, 0, 0}, Dilation: 1, Groups: 1, Bias: true},
			{Name: "p5", Op: OpConv, Inputs: []string{"c5"}, Outputs: []string{"p5"}, In: 16, Out: 12, Kernel: []int{1, 1}, Stride: 1, Pad: []int{0, 0, 0, 0}, Dilation: 1, Groups: 1, Bias: true},
			{Name: "up5", Op: OpResize, Inputs: []string{"p5"}, Outputs: []string{"u5"}, Mode: ResizeLinear, Coordinates: "pytorch_half_pixel", Scale: []float64{2, 2}},
			{Name: "p4", Op: OpAdd, Inputs: []string{"l4", "u5"}, Outputs: []string{"p4"}},
			{Name: "up4", Op: OpResize, Inputs: []string{"p4"}, Outputs: []string{"u4"}, Mode: ResizeNearest, Scale: []float64{2, 2}},
			{Name: "p3", Op: OpSiLU, Inputs: []string{"l3"}, Outputs: []string{"a3"}},
			{Name: "p3sum", Op: OpAdd, Inputs: []string{"a3", "u4"}, Outputs: []string{"p3"}},
		},
	}
	return bb, neck
}

func ptr[T any](v T) *T { return &v }

func miniConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := Named("retinanet-tiny")
	if err != nil {
		t.Fatal(err)
	}
	bb, neck := miniGraphs()
	cfg.Name = "mini-imported"
	cfg.Backbone = BackboneConfig{Type: BackboneImported, Graph: bb}
	cfg.Neck = neck
	cfg.FPN.Channels = 12
	return cfg.WithClasses([]string{"a", "b"})
}

func TestImportedGraphDetector(t *testing.T) {
	cfg := miniConfig(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// The JSON form reads back into the same config, reshape expressions
	// included.
	back, err := ParseConfig(cfg.JSON(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if string(back.JSON()) != string(cfg.JSON()) {
		t.Fatalf("config changed through JSON")
	}
	if !strings.Contains(string(cfg.JSON()), `"in3"`) {
		t.Fatalf("reshape dims are not written as expressions: %s", cfg.JSON())
	}
	d, err := New(back, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{64, 96} {
		x := engine.RandN(rand.New(rand.NewPCG(1, 2)), 1, 2, 3, size, size)
		o := d.Forward(x, true)
		for l, f := range o.Features {
			if want := []int{2, 12, size >> (3 + l), size >> (3 + l)}; !slices.Equal(f.Shape(), want) {
				t.Fatalf("%d px: feature %d is %v, want %v", size, l, f.Shape(), want)
			}
		}
	}
	c := d.Cost(64, 64)
	if c.Convs < 9 {
		t.Errorf("cost counted %d convolutions, the graphs have at least 9", c.Convs)
	}
	state, err := nn.State(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range state {
		names = append(names, s.Name)
	}
	for _, want := range []string{"backbone.stem.weight", "backbone.stem_bn.running_var", "fpn.neck.l3.bias", "head.cls_out.weight"} {
		if !slices.Contains(names, want) {
			t.Errorf("state has no %q", want)
		}
	}
}

func TestFrozenBackbone(t *testing.T) {
	d, err := New(miniConfig(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	frozen := d.FrozenParams()
	if len(frozen) == 0 {
		t.Fatal("nothing to freeze")
	}
	d.SetFrozen(true)
	mean := d.Backbone.(*GraphBackbone).Graph.Layers[1].Norm.State.RunningMean
	before := mean.ToHost()
	x := engine.RandN(rand.New(rand.NewPCG(1, 2)), 1, 2, 3, 64, 64)
	o := d.Forward(x, true)
	loss := engine.Mean(engine.Mul(o.ClsLogits[0], o.ClsLogits[0]))
	loss.Backward()
	for _, p := range frozen {
		if p.Tensor.HasGrad() {
			t.Fatalf("frozen %s got a gradient", p.Name)
		}
	}
	if !d.Head.ClsOut.Weight.HasGrad() {
		t.Fatal("the head got no gradient")
	}
	if !slices.Equal(before, mean.ToHost()) {
		t.Error("a frozen batch norm updated its running statistics")
	}
	d.SetFrozen(false)
	for _, p := range frozen {
		if !p.Tensor.RequiresGrad() {
			t.Fatalf("%s still frozen", p.Name)
		}
	}
}

func TestGraphConfigErrors(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(c *Config)
		field string
	}{
		{"unknown op", func(c *Config) { c.Backbone.Graph.Nodes[2].Op = "gelu" }, "backbone.graph.nodes[2].op"},
		{"read before written", func(c *Config) { c.Backbone.Graph.Nodes[0].Inputs = []string{"later"} }, "backbone.graph.nodes[0].inputs"},
		{"duplicate node", func(c *Config) { c.Backbone.Graph.Nodes[1].Name = "stem" }, "backbone.graph.nodes[1].name"},
		{"groups", func(c *Config) { c.Backbone.Graph.Nodes[0].Groups = 2 }, "backbone.graph.nodes[0]"},
		{"pool pads", func(c *Config) { c.Backbone.Graph.Nodes[3].Pad = []int{1, 0, 1, 0} }, "backbone.graph.nodes[3].pad"},
		{"resize mode", func(c *Config) { c.Neck.Nodes[3].Coordinates = "tf_crop_and_resize" }, "neck.nodes[3].coordinates"},
		{"strides", func(c *Config) { c.Backbone.Graph.Outputs[1].Stride = 8 }, "backbone.graph.outputs"},
		{"neck width", func(c *Config) { c.FPN.Channels = 16 }, "neck.outputs[0].channels"},
		{"neck inputs", func(c *Config) { c.Neck.Inputs = c.Neck.Inputs[:2] }, "neck.inputs"},
		{"no graph", func(c *Config) { c.Backbone.Graph = nil }, "backbone.graph"},
		{"stray stages", func(c *Config) { c.Backbone.Stages = []StageConfig{{Out: 8, Depth: 1, Stride: 2}} }, "backbone.stages"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := miniConfig(t)
			// Edit a deep copy.
			var c Config
			if err := json.Unmarshal(cfg.JSON(), &c); err != nil {
				t.Fatal(err)
			}
			tc.edit(&c)
			err := c.Validate()
			var fe *FieldError
			found := false
			for _, e := range joined(err) {
				if errors.As(e, &fe) && fe.Field == tc.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("errors %v, want one for field %s", err, tc.field)
			}
		})
	}
	if _, err := ParseReshapeDim("in2*x"); err == nil {
		t.Error("ParseReshapeDim accepted in2*x")
	}
	if d, err := ParseReshapeDim("in1*in2/4"); err != nil || d.String() != "in1*in2/4" {
		t.Errorf("ParseReshapeDim(in1*in2/4) = %v, %v", d, err)
	}
}

func joined(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func TestPretrainedWeights(t *testing.T) {
	cfg := miniConfig(t)
	src, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var part []nn.Named
	src.Backbone.Visit("backbone", func(name string, x *engine.Tensor, _ bool) { part = append(part, nn.Named{Name: name, Tensor: x}) })
	dir := t.TempDir()
	path := filepath.Join(dir, "bb.safetensors")
	if err := SavePretrained(path, part, cfg, nil); err != nil {
		t.Fatal(err)
	}
	dst, err := New(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	head := dst.Head.ClsOut.Weight.ToHost()
	n, err := LoadPretrained(dst, path)
	if err != nil || n != len(part) {
		t.Fatalf("LoadPretrained = %d, %v; want %d tensors", n, err, len(part))
	}
	w := dst.Backbone.(*GraphBackbone).Graph.Layers[0].Conv.Weight.ToHost()
	if !slices.Equal(w, src.Backbone.(*GraphBackbone).Graph.Layers[0].Conv.Weight.ToHost()) {
		t.Fatal("the backbone was not loaded")
	}
	if !slices.Equal(head, dst.Head.ClsOut.Weight.ToHost()) {
		t.Fatal("the head changed")
	}
	// Weights for another architecture are refused before anything changes.
	other, err := Named("retinanet-tiny")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New(other.WithClasses([]string{"a", "b"}), 3)
	if err != nil {
		t.Fatal(err)
	}
	before := plain.Head.ClsOut.Weight.ToHost()
	if _, err := LoadPretrained(plain, path); !errors.Is(err, ErrPretrained) || !strings.Contains(err.Error(), "backbone.") {
		t.Fatalf("error %v, want ErrPretrained naming the tensor", err)
	}
	if !slices.Equal(before, plain.Head.ClsOut.Weight.ToHost()) {
		t.Fatal("a refused file changed the detector")
	}
	if _, _, _, err := LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "pretrained weights") {
		t.Fatalf("LoadCheckpoint of a pretrained file: %v", err)
	}
	tensors, meta, err := checkpoint.Load(path)
	if err != nil || meta[MetaFormat] != FormatPretrained || len(tensors) != len(part) {
		t.Fatalf("file: %d tensors, meta %v, %v", len(tensors), meta[MetaFormat], err)
	}
}

// FuzzParseGraphConfig feeds configs with imported graphs to ParseConfig:
// it returns an error or a valid config, never panics, and a reshape
// dimension's string form reads back to itself.
func FuzzParseGraphConfig(f *testing.F) {
	cfg, err := Named("retinanet-tiny")
	if err != nil {
		f.Fatal(err)
	}
	bb, neck := miniGraphs()
	cfg.Backbone = BackboneConfig{Type: BackboneImported, Graph: bb}
	cfg.Neck, cfg.FPN.Channels = neck, 12
	f.Add(cfg.JSON(), "in0*in2/4")
	f.Add([]byte(`{"name":"x","backbone":{"type":"imported","graph":{"inputs":[],"outputs":[],"nodes":[{"name":"a","op":"conv","inputs":[],"outputs":["b"],"pad":[]}]}}}`), "in9")
	f.Add([]byte(`{"backbone":{"type":"imported","graph":{"nodes":[{"op":"reshape","shape":["in1/0", -7, "x"]}]}}}`), "3")
	f.Fuzz(func(t *testing.T, data []byte, dim string) {
		if c, err := ParseConfig(data, "fuzz"); err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("ParseConfig accepted a config Validate refuses: %v", err)
			}
		}
		if d, err := ParseReshapeDim(dim); err == nil {
			back, err := ParseReshapeDim(d.String())
			if err != nil || back.String() != d.String() {
				t.Fatalf("%q → %v → %q: %v", dim, d, back, err)
			}
		}
	})
}
