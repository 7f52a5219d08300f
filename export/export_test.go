package export

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
	"github.com/gidedge/gidedge/ort"
)

var classNames = []string{"cat", "dog", "bird"}

// tinyConfig returns a 64-pixel detector of the family and backbone. The
// mobilenetv2 variants also use depthwise pyramid and head convolutions,
// extra pyramid levels and the remaining activations, so that together the
// four cases cover every module and activation the exporter knows.
func tinyConfig(t testing.TB, family, backbone string) models.Config {
	t.Helper()
	cfg, err := models.Named(family + "-tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithClasses(classNames)
	switch {
	case backbone == models.BackboneResNet && family == models.FamilyRetinaNet:
		// As shipped: relu everywhere, P3–P5.
	case backbone == models.BackboneResNet:
		cfg.Backbone.Act = nn.ActSiLU
		cfg.Head.Act = nn.ActLeakyReLU
	case backbone == models.BackboneMobileNetV2:
		cfg.Backbone = models.BackboneConfig{
			Type: models.BackboneMobileNetV2, Stem: []int{8}, Act: nn.ActReLU6,
			Stages: []models.StageConfig{
				{Out: 8, Depth: 1, Stride: 1, Expand: 1},
				{Out: 12, Depth: 2, Stride: 2, Expand: 2},
				{Out: 16, Depth: 2, Stride: 2, Expand: 2},
				{Out: 16, Depth: 1, Stride: 2, Expand: 2},
				{Out: 24, Depth: 1, Stride: 2, Expand: 2},
			},
		}
		cfg.FPN.Depthwise = true
		cfg.Head.Depthwise = true
		cfg.Head.Convs = 2
		// Inputs large enough that no stride-2 convolution has a 1-pixel
		// output: the engine's CPU im2col fast path panics on those.
		if family == models.FamilyRetinaNet {
			cfg.Input.Size = 160
			cfg.Head.Act = nn.ActHardSwish
			cfg.FPN.Levels = []int{3, 4, 5, 6, 7}
			cfg.Anchors.Sizes = []float32{12, 24, 48, 96, 192}
			cfg.Anchors.Ratios = []float32{0.5, 1, 2}
			cfg.Anchors.Scales = []float32{1}
			cfg.Loss.BoxCoderWeights = [4]float32{10, 10, 5, 5}
		} else {
			cfg.Input.Size = 96
			cfg.Backbone.Act = nn.ActHardSwish
			cfg.Head.Act = nn.ActReLU6
			cfg.FPN.Levels = []int{3, 4, 5, 6}
			cfg.Assigner.SizeRanges = [][2]float32{{0, 16}, {16, 32}, {32, 64}, {64, 1e5}}
		}
	default:
		t.Fatalf("unknown backbone %q", backbone)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tinyDetector builds a detector with every batch norm's statistics and
// affine parameters drawn at random (so folding is exercised, not the
// identity of a fresh model) and head outputs scaled up so scores and boxes
// vary across positions.
func tinyDetector(t testing.TB, cfg models.Config, seed uint64) *models.Detector {
	t.Helper()
	d, err := models.New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	d.Visit("", func(name string, x *engine.Tensor, _ bool) {
		v := x.ToHost()
		head := strings.HasPrefix(name, "head.cls_out") || strings.HasPrefix(name, "head.reg_out") || strings.HasPrefix(name, "head.centerness")
		switch {
		case strings.HasSuffix(name, "running_var"):
			for i := range v {
				v[i] = 0.5 + 1.5*rng.Float32()
			}
		case strings.HasSuffix(name, "running_mean"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.2)
			}
		case head && strings.HasSuffix(name, "weight"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.05)
			}
		case head && strings.HasSuffix(name, "bias"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.3)
			}
		case x.Rank() == 1 && strings.HasSuffix(name, "weight"):
			for i := range v {
				v[i] = 0.5 + rng.Float32()
			}
		case x.Rank() == 1 && strings.HasSuffix(name, "bias"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.1)
			}
		}
		x.CopyFromHost(v)
	})
	return d
}

func needORT(t testing.TB) {
	t.Helper()
	if err := ort.Init(); err != nil {
		t.Fatalf("ONNX Runtime is needed (scripts/setup.sh installs it): %v", err)
	}
}

// TestExportParity exports every family × backbone in every output mode and
// checks that the written file matches the engine (Export refuses to write
// otherwise) and declares the contract's outputs.
func TestExportParity(t *testing.T) {
	needORT(t)
	modes := []struct {
		name     string
		outputs  string
		features bool
	}{
		{"decoded", infer.OutputsDecoded, false},
		{"raw", infer.OutputsRaw, false},
		{"decoded+features", infer.OutputsDecoded, true},
	}
	for fi, family := range []string{models.FamilyRetinaNet, models.FamilyFCOS} {
		for bi, backbone := range []string{models.BackboneResNet, models.BackboneMobileNetV2} {
			cfg := tinyConfig(t, family, backbone)
			d := tinyDetector(t, cfg, uint64(10*fi+bi+1))
			for _, mode := range modes {
				t.Run(family+"/"+backbone+"/"+mode.name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "model.onnx")
					rep, err := Export(d, out, Options{Outputs: mode.outputs, WithFeatures: mode.features, Threads: 1})
					if err != nil {
						t.Fatal(err)
					}
					if !rep.Parity.OK() || rep.Parity.Worst > DefaultTolerance {
						t.Fatalf("parity %+v", rep.Parity)
					}
					t.Logf("worst relative difference %.2e on %s", rep.Parity.Worst, rep.Parity.WorstOutput)
					want := wantOutputs(cfg, mode.outputs, mode.features)
					var got []string
					for _, o := range rep.Outputs {
						got = append(got, o.Name)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("outputs %v, want %v", got, want)
					}
					m, err := onnxgraph.Load(out)
					if err != nil {
						t.Fatal(err)
					}
					checkGraph(t, m.Graph, cfg)
				})
			}
		}
	}
}

func wantOutputs(cfg models.Config, outputs string, features bool) []string {
	var want []string
	if outputs == infer.OutputsDecoded {
		want = []string{BoxesName, ScoresName}
		if cfg.Family == models.FamilyFCOS {
			want = append(want, CenternessName)
		}
		if features {
			want = append(want, FeatureNames(cfg)...)
			want = append(want, RawNames(cfg)...)
		}
		return want
	}
	want = RawNames(cfg)
	if features {
		want = append(want, FeatureNames(cfg)...)
	}
	return want
}

// checkGraph asserts the inference form: no BatchNormalization left, only
// standard-domain ops, a symbolic batch on the input and outputs.
func checkGraph(t *testing.T, g *onnxpb.GraphProto, cfg models.Config) {
	t.Helper()
	convs := 0
	for _, n := range g.Node {
		if n.Domain != "" {
			t.Errorf("%s is in domain %q, want the standard one", onnxgraph.Describe(n), n.Domain)
		}
		switch n.OpType {
		case "BatchNormalization":
			t.Errorf("%s left in the graph, want it folded", onnxgraph.Describe(n))
		case "Conv":
			convs++
		}
	}
	if convs == 0 {
		t.Error("no Conv nodes")
	}
	if len(g.Input) != 1 || g.Input[0].Name != InputName {
		t.Fatalf("inputs %v, want one %q", g.Input, InputName)
	}
	for _, v := range append([]*onnxpb.ValueInfoProto{g.Input[0]}, g.Output...) {
		dim := v.GetType().GetTensorType().GetShape().GetDim()
		if len(dim) == 0 || dim[0].GetDimParam() != "batch" {
			t.Errorf("%s: first dimension %v, want the symbolic \"batch\"", v.Name, dim)
		}
	}
	_, dims, _ := onnxgraph.TensorType(g.Input[0])
	if want := []int64{-1, 3, int64(cfg.Input.Size), int64(cfg.Input.Size)}; !slices.Equal(dims, want) {
		t.Errorf("input shape %v, want %v", dims, want)
	}
}

// TestOpsets exports the models that use every opset-dependent op (Clip,
// HardSwish, Resize/Upsample, Slice) at the edges of the supported range.
func TestOpsets(t *testing.T) {
	needORT(t)
	retina := tinyDetector(t, tinyConfig(t, models.FamilyRetinaNet, models.BackboneMobileNetV2), 3)
	fcos := tinyDetector(t, tinyConfig(t, models.FamilyFCOS, models.BackboneMobileNetV2), 4)
	for _, opset := range []int{MinOpset, 10, 11, 13, 14, MaxOpset} {
		for _, d := range []*models.Detector{retina, fcos} {
			t.Run(d.Config.Family+"/opset"+strconv.Itoa(opset), func(t *testing.T) {
				m, err := Build(d, Options{Opset: opset})
				if err != nil {
					t.Fatal(err)
				}
				if got := onnxgraph.Opset(m.Proto); got != int64(opset) {
					t.Fatalf("opset %d, want %d", got, opset)
				}
				ops := map[string]bool{}
				for _, n := range m.Proto.Graph.Node {
					ops[n.OpType] = true
				}
				if want := opset < 10; ops["Upsample"] != want || ops["Resize"] == want {
					t.Errorf("opset %d: Upsample %v, Resize %v", opset, ops["Upsample"], ops["Resize"])
				}
				if d == retina && ops["HardSwish"] != (opset >= 14) {
					t.Errorf("opset %d: HardSwish op present %v", opset, ops["HardSwish"])
				}
				data, err := onnxgraph.Marshal(m.Proto)
				if err != nil {
					t.Fatal(err)
				}
				p, err := CheckParity(d, data, m.OutputNames(), Options{Opset: opset, Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("worst %.2e on %s", p.Worst, p.WorstOutput)
			})
		}
	}
	if _, err := Build(retina, Options{Opset: MaxOpset + 1}); err == nil || !strings.Contains(err.Error(), "opset") {
		t.Errorf("opset %d: error %v, want one naming the opset range", MaxOpset+1, err)
	}
}

// TestMetadataRoundTrip reads the metadata back through ONNX Runtime, as a
// server does, and checks both entries.
func TestMetadataRoundTrip(t *testing.T) {
	needORT(t)
	cfg := tinyConfig(t, models.FamilyRetinaNet, models.BackboneResNet)
	cfg.Input.Resize = models.ResizeStretch
	cfg.Postprocess.ScoreThreshold = 0.2
	d := tinyDetector(t, cfg, 5)
	for _, outputs := range []string{infer.OutputsDecoded, infer.OutputsRaw} {
		t.Run(outputs, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.onnx")
			if _, err := Export(d, out, Options{Outputs: outputs, Threads: 1}); err != nil {
				t.Fatal(err)
			}
			md, err := onnxruntime.GetModelMetadata(out)
			if err != nil {
				t.Fatal(err)
			}
			defer md.Destroy()
			keys, err := md.GetCustomMetadataMapKeys()
			if err != nil {
				t.Fatal(err)
			}
			meta := map[string]string{}
			for _, k := range keys {
				v, ok, err := md.LookupCustomMetadataMap(k)
				if err != nil || !ok {
					t.Fatalf("key %q: %v %v", k, ok, err)
				}
				meta[k] = v
			}
			info, ok, err := infer.ReadModelInfo(meta)
			if err != nil || !ok {
				t.Fatalf("ReadModelInfo: ok %v, %v (keys %v)", ok, err, keys)
			}
			want := infer.ModelInfo{
				GidedgeVersion: buildinfo.Version,
				ClassNames:     classNames,
				Input: infer.Preprocess{Width: 64, Height: 64, Layout: "NCHW", ChannelOrder: "rgb", Resize: "stretch",
					PadValue: 114, PixelScale: 1.0 / 255, Mean: cfg.Input.Mean, Std: cfg.Input.Std},
				Head: infer.HeadInfo{Family: "retinanet", Outputs: outputs, Strides: []int{8, 16, 32},
					AnchorSizes: []float32{12, 24, 48}, AnchorRatios: []float32{1}, AnchorScales: []float32{1, 1.5},
					ScoreThreshold: 0.2, NMSIoU: 0.5, MaxDetections: 100},
			}
			if outputs == infer.OutputsDecoded {
				want.Head.BoxesOutput, want.Head.ScoresOutput = "boxes", "scores"
			}
			if !reflect.DeepEqual(info, want) {
				t.Errorf("model info\n got %+v\nwant %+v", info, want)
			}
			back, err := models.ParseConfig([]byte(meta[ConfigKey]), ConfigKey)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Errorf("config round trip\n got %+v\nwant %+v", back, cfg)
			}
		})
	}
}

// TestDynamicBatch runs one exported file on batches of 1 and 3 and compares
// each with the engine; a fixed batch is declared as such.
func TestDynamicBatch(t *testing.T) {
	needORT(t)
	d := tinyDetector(t, tinyConfig(t, models.FamilyFCOS, models.BackboneResNet), 6)
	out := filepath.Join(t.TempDir(), "m.onnx")
	rep, err := Export(d, out, Options{WithFeatures: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(rep.Outputs))
	for i, o := range rep.Outputs {
		names[i] = o.Name
		if o.Shape[0] != -1 {
			t.Errorf("output %s shape %v, want a dynamic batch", o.Name, o.Shape)
		}
	}
	for _, n := range []int{1, 3} {
		p, err := CheckParity(d, data, names, Options{ParityBatch: n, Seed: uint64(n), Threads: 1})
		if err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		if p.Batch != n || p.Outputs[0].Shape[0] != int64(n) {
			t.Fatalf("batch %d: ran %d, output shape %v", n, p.Batch, p.Outputs[0].Shape)
		}
	}

	fixed := filepath.Join(t.TempDir(), "fixed.onnx")
	rep, err = Export(d, fixed, Options{Batch: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Input.Shape[0] != 2 || rep.Parity.Batch != 2 {
		t.Errorf("fixed batch: input %v, parity batch %d, want 2", rep.Input.Shape, rep.Parity.Batch)
	}
	m, err := onnxgraph.Load(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if _, dims, _ := onnxgraph.TensorType(m.Graph.Input[0]); dims[0] != 2 {
		t.Errorf("fixed batch: declared input %v", dims)
	}
	if _, err := CheckParity(d, data, names[:1], Options{Batch: 2, ParityBatch: 3}); err == nil {
		t.Error("parity batch 3 with fixed batch 2: no error")
	}
}

// TestParityFailureWritesNothing changes the detector after the graph is
// built, as a broken exporter would, and expects ErrParity and no file.
func TestParityFailureWritesNothing(t *testing.T) {
	needORT(t)
	d := tinyDetector(t, tinyConfig(t, models.FamilyRetinaNet, models.BackboneResNet), 7)
	testHookBeforeParity = func(d *models.Detector) {
		w := d.Head.ClsOut.Bias.ToHost()
		w[0] += 0.5
		d.Head.ClsOut.Bias.CopyFromHost(w)
	}
	defer func() { testHookBeforeParity = nil }()
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	rep, err := Export(d, out, Options{Threads: 1})
	if !errors.Is(err, ErrParity) {
		t.Fatalf("error %v, want ErrParity", err)
	}
	if !strings.Contains(err.Error(), "scores") {
		t.Errorf("error %q does not name the output that differs", err)
	}
	if rep == nil || rep.Parity == nil || rep.Parity.OK() {
		t.Errorf("report %+v, want failed parity figures", rep)
	}
	assertEmpty(t, dir)
}

// TestBadInputs covers the user's mistakes: each fails with an error that
// names the problem, and leaves nothing in the output folder.
func TestBadInputs(t *testing.T) {
	d := tinyDetector(t, tinyConfig(t, models.FamilyRetinaNet, models.BackboneResNet), 8)
	src := t.TempDir()
	good := filepath.Join(src, "good.safetensors")
	if err := models.SaveCheckpoint(good, d, nil, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("truncated.safetensors", raw[:len(raw)/2])
	garbage := write("garbage.safetensors", []byte("this is not a checkpoint at all, just text"))
	empty := write("empty.safetensors", nil)
	cases := []struct {
		name, checkpoint, out string
		opts                  Options
		want                  string
	}{
		{"missing", filepath.Join(src, "nope.safetensors"), "m.onnx", Options{}, "does not exist"},
		{"truncated", truncated, "m.onnx", Options{}, "truncated.safetensors"},
		{"garbage", garbage, "m.onnx", Options{}, "garbage.safetensors"},
		{"empty", empty, "m.onnx", Options{}, "empty.safetensors"},
		{"directory", src, "m.onnx", Options{}, "is a directory"},
		{"no output folder", good, "missing/m.onnx", Options{}, "output folder"},
		{"bad outputs", good, "m.onnx", Options{Outputs: "boxes"}, `outputs "boxes"`},
		{"bad opset", good, "m.onnx", Options{Opset: 7}, "opset 7"},
		{"bad batch", good, "m.onnx", Options{Batch: -1}, "batch -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ExportCheckpoint(c.checkpoint, filepath.Join(dir, c.out), c.opts)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "export: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it prefixed \"export: \" and naming %q", err, c.want)
			}
			assertEmpty(t, dir)
		})
	}
}

// TestExportCheckpoint goes through a checkpoint file as the CLI does.
func TestExportCheckpoint(t *testing.T) {
	needORT(t)
	d := tinyDetector(t, tinyConfig(t, models.FamilyFCOS, models.BackboneMobileNetV2), 9)
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "best.safetensors")
	if err := models.SaveCheckpoint(ckpt, d, nil, map[string]string{"epoch": "3"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "best.onnx")
	rep, err := ExportCheckpoint(ckpt, out, Options{Outputs: infer.OutputsRaw, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Size() != int64(rep.Bytes) {
		t.Fatalf("written file: %v, size %v, report says %d bytes", err, st, rep.Bytes)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fcos-tiny", "cls_logits_0", "centerness_3", "[batch,3,96,96]", "parity", "(ok)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
	if _, err := ExportCheckpoint(ckpt, ckpt, Options{}); err == nil || !strings.Contains(err.Error(), "checkpoint itself") {
		t.Errorf("exporting onto the checkpoint: %v", err)
	}
}

// assertEmpty fails if dir holds anything (a model or a leftover temp file).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left in the output folder", e.Name())
	}
}

// TestBuilderInvariantsPanicTyped checks that a broken builder invariant
// panics with a *BuildError (a programmer error the CLI's one recover point
// returns), not a bare string.
func TestBuilderInvariantsPanicTyped(t *testing.T) {
	for _, c := range []struct {
		name string
		step string
		fire func()
	}{
		{"name reserved twice", "reserve", func() {
			g := newGraph(DefaultOpset)
			g.reserve(BoxesName)
			g.reserve(BoxesName)
		}},
		{"rename of a tensor the last node does not write", "rename", func() {
			w := &walker{g: newGraph(DefaultOpset)}
			w.g.emit("Relu", "a", []string{"x"})
			w.rename("not_a", ScoresName)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				be, ok := recover().(*BuildError)
				if !ok || be.Step != c.step {
					t.Fatalf("panic value %#v, want a *BuildError from %s", be, c.step)
				}
			}()
			c.fire()
		})
	}
}
