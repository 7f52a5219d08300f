package quantize

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/onnxgraph"
)

// tinyOptions returns Run options for the tiny detector in a fresh folder.
func tinyOptions(t *testing.T) (Options, string) {
	t.Helper()
	dir := t.TempDir()
	model := saveModel(t, dir, "tiny.onnx", tinyDetector(1, 13))
	calib := writeImages(t, filepath.Join(dir, "calib"), 10, 3)
	mean, std := [3]float32{127, 127, 127}, [3]float32{64, 64, 64}
	one := float32(1)
	return Options{
		Model: model, Calib: calib, Out: filepath.Join(dir, "out", "tiny_int8.onnx"),
		Preprocess: PreprocessOverride{Mean: &mean, Std: &std, PixelScale: &one},
		EvalImages: 4, BenchRuns: 4, Threads: 1,
	}, dir
}

// assertNoOutput checks that a failed run left nothing in the output folder.
func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("failed run left %s behind", e.Name())
	}
}

func TestRunRejectsBadInputs(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, o *Options, dir string)
		is    error
		want  string
	}{
		{"not an ONNX file", func(t *testing.T, o *Options, dir string) {
			o.Model = filepath.Join(dir, "notes.onnx")
			os.WriteFile(o.Model, []byte("hello, I am a text file\n"), 0o644)
		}, onnxgraph.ErrNotONNX, "notes.onnx"},
		{"missing model", func(t *testing.T, o *Options, dir string) {
			o.Model = filepath.Join(dir, "absent.onnx")
		}, os.ErrNotExist, "absent.onnx"},
		{"no float convs", func(t *testing.T, o *Options, dir string) {
			m := tinyDetector(1, 13)
			m.Graph.Node = m.Graph.Node[1:2]
			m.Graph.Node[0].Input[0] = "image"
			m.Graph.Output = m.Graph.Output[:1]
			m.Graph.Output[0].Name = "a"
			o.Model = saveModel(t, dir, "relu_only.onnx", m)
		}, ErrNothingToQuantize, "relu_only.onnx"},
		{"empty calibration folder", func(t *testing.T, o *Options, dir string) {
			o.Calib = filepath.Join(dir, "empty")
			os.Mkdir(o.Calib, 0o755)
		}, ErrNoImages, "empty"},
		{"undecodable image", func(t *testing.T, o *Options, dir string) {
			os.WriteFile(filepath.Join(o.Calib, "broken.jpg"), []byte("\xff\xd8\xffnot really a jpeg"), 0o644)
		}, nil, "broken.jpg"},
		{"unknown exclude", func(t *testing.T, o *Options, dir string) {
			o.Exclude = []string{"Conv_999"}
		}, nil, "Conv_999"},
		{"budget without labels", func(t *testing.T, o *Options, dir string) {
			o.Budget = MaxAPDrop(1)
		}, nil, "--labels"},
		{"output over input", func(t *testing.T, o *Options, dir string) {
			o.Out = o.Model
		}, nil, "overwrite"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, dir := tinyOptions(t)
			tc.setup(t, &o, dir)
			if o.Out != o.Model {
				os.MkdirAll(filepath.Dir(o.Out), 0o755)
			}
			_, err := Run(context.Background(), o)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want errors.Is %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "quantize: ") {
				t.Errorf("error %q, want it prefixed quantize: and naming %q", err, tc.want)
			}
			if o.Out != o.Model {
				assertNoOutput(t, o.Out)
			}
		})
	}
}

func TestRunWithCacheAndReport(t *testing.T) {
	o, dir := tinyOptions(t)
	os.MkdirAll(filepath.Dir(o.Out), 0o755)
	o.CalibCache = filepath.Join(dir, "calib.json")
	o.Report = true
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.QuantizedOps["Conv"] != 5 || rep.QuantizedOps["Gemm"] != 1 || !rep.PerChannel {
		t.Errorf("quantized ops %v (per-channel %v), want 5 Conv and 1 Gemm per channel", rep.QuantizedOps, rep.PerChannel)
	}
	if rep.FP32.LatencyMs <= 0 || rep.INT8.LatencyMs <= 0 || rep.ORTOps["QLinearConv"] == 0 || rep.INT8.SizeBytes <= 0 {
		t.Errorf("report misses latency, sizes or ORT ops: %+v", rep)
	}
	if rep.CosineMin < 0.99 {
		t.Errorf("cosine %v, want ≥ 0.99", rep.Cosine)
	}

	// The cache alone re-quantizes to the same model.
	o.Calib = ""
	o.Report = false
	rep2, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(o.Out)
	if rep2.CalibCache == "" || string(first) != string(second) {
		t.Errorf("re-quantizing from the cache gave a different model (cache used: %q)", rep2.CalibCache)
	}
	// Other exclusions reuse it too.
	o.Exclude = []string{"right", "Add"}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("cache with exclusions: %v", err)
	}
	// Other settings do not.
	o.Method = Entropy
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrCacheMismatch) {
		t.Fatalf("method change: got %v, want ErrCacheMismatch", err)
	}
}

func TestRunFallbackKeepsSensitiveLayersFloat(t *testing.T) {
	o, _ := tinyOptions(t)
	os.MkdirAll(filepath.Dir(o.Out), 0o755)
	plain, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(o.Out)

	// A budget between the all-quantized cosine and 1 is met by keeping the
	// most sensitive layers float, and the report says which and what it cost.
	o.Budget = MinCosine(plain.CosineMin + (1-plain.CosineMin)*0.7)
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Fallback
	if f == nil || !f.Met || rep.BudgetMet == nil || !*rep.BudgetMet || len(rep.FloatLayers) == 0 || rep.CosineMin < o.Budget.Limit-1e-6 {
		t.Fatalf("budget %v: fallback %+v, float layers %+v, cosine %v", o.Budget, f, rep.FloatLayers, rep.CosineMin)
	}
	if f.FloatLayers != len(rep.FloatLayers) || f.CPUMsFinal <= 0 || f.CPUMsFP32 <= 0 || !strings.Contains(f.Message, "float") {
		t.Errorf("fallback report %+v lacks the layer count or the speed cost", f)
	}
	for _, l := range rep.FloatLayers {
		if l.Node == "" || l.Reason == "" || (l.OpType != "Conv" && l.OpType != "Gemm") || len(l.Nodes) == 0 {
			t.Errorf("float layer %+v lacks a name, op, nodes or reason", l)
		}
	}
	if rep.QuantizedOps["Conv"]+rep.QuantizedOps["Gemm"] != 6-len(rep.FloatLayers) {
		t.Errorf("quantized %v with %d float layers, want the rest of the 6 weighted layers", rep.QuantizedOps, len(rep.FloatLayers))
	}

	// An unreachable budget is an error naming what was tried; nothing is written.
	os.Remove(o.Out)
	o.Budget = MinCosine(0.9999999)
	o.MaxFloatLayers = 2
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrBudgetUnreachable) || !strings.Contains(err.Error(), "--max-float-layers 2") {
		t.Fatalf("unreachable budget: got %v, want ErrBudgetUnreachable naming the layer cap", err)
	}
	assertNoOutput(t, o.Out)

	// A reachable budget stops at once.
	o.Budget, o.MaxFloatLayers = MinCosine(0.5), 0
	rep, err = Run(context.Background(), o)
	if err != nil || len(rep.FloatLayers) != 0 || !*rep.BudgetMet {
		t.Fatalf("easy budget: %d float layers, met %v, err %v; want none, met", len(rep.FloatLayers), rep.BudgetMet, err)
	}
}

// TestNanoDet quantizes the real NanoDet-m on a handful of COCO128 images
// and scores both models on a few labelled ones. The tiny-model tests cover
// the same code; this one checks it holds on a real third-party graph
// (opset 11, ShuffleNetV2, initializers listed as inputs).
func TestNanoDet(t *testing.T) {
	if testing.Short() {
		t.Skip("real model: skipped with -short; the tiny-model tests cover the same code")
	}
	shared := sharedtest.Dir(t)
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib")
	os.Mkdir(calib, 0o755)
	images, err := ListImages(filepath.Join(shared, "data", "coco128", "images"), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range images {
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(calib, filepath.Base(p)), data, 0o644)
	}
	rep, err := Run(context.Background(), Options{
		Model: filepath.Join(shared, "models", "nanodet_m_320.onnx"), Calib: calib, Out: filepath.Join(dir, "nanodet_int8.onnx"),
		Labels: filepath.Join(shared, "data", "coco128"), LabelImages: 3, EvalImages: 2, Threads: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.PerChannel || rep.QuantizedOps["Conv"] != 73 {
		t.Errorf("per-channel %v, quantized %v: want all 73 Convs per channel after the opset upgrade", rep.PerChannel, rep.QuantizedOps)
	}
	if rep.CosineMin < 0.95 {
		t.Errorf("cosine %v, want ≥ 0.95 on every output", rep.Cosine)
	}
	if rep.FP32.AP == nil || rep.INT8.AP == nil || *rep.FP32.AP <= 0 {
		t.Errorf("AP missing or zero: fp32 %v int8 %v", rep.FP32.AP, rep.INT8.AP)
	}
	m, err := onnxgraph.Load(rep.Out)
	if err != nil {
		t.Fatal(err)
	}
	checkQDQStructure(t, m, Uint8, true)
}
