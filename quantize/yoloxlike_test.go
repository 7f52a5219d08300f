package quantize

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// yoloxTestConfig is a small YOLOX-like detector: every feature of the
// graph (Focus stem, SiLU, SPP, PAFPN, the concatenated output, BGR 0–255
// letterboxed input) at 64×64 with 8-channel stems, so it builds and
// quantizes in seconds.
var yoloxTestConfig = export.YOLOXLike{Width: 0.125, Size: 64, Classes: 3, Seed: 3, Threads: 1}

var yoloxPreprocess = infer.Preprocess{Width: 64, Height: 64, Layout: infer.LayoutNCHW, ChannelOrder: infer.OrderBGR,
	Resize: infer.ResizeLetter, PadValue: 114, PixelScale: 1, Std: [3]float32{1, 1, 1}}

var yoloxOnce struct {
	sync.Once
	model  *onnxpb.ModelProto
	images string
	err    error
}

// yoloxModel builds the test model once per test binary, its batch-norm
// statistics measured on generated images (written to a folder that also
// serves as calibration set).
func yoloxModel(t *testing.T) (*onnxpb.ModelProto, string) {
	t.Helper()
	yoloxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gidedge-yolox-test-*")
		if err != nil {
			yoloxOnce.err = err
			return
		}
		yoloxOnce.images = writeImages(t, filepath.Join(dir, "images"), 24, 17)
		paths, err := ListImages(yoloxOnce.images, 0)
		if err != nil {
			yoloxOnce.err = err
			return
		}
		var inputs [][]float32
		for _, p := range paths[:8] {
			x, err := LoadInput(p, yoloxPreprocess)
			if err != nil {
				yoloxOnce.err = err
				return
			}
			inputs = append(inputs, x)
		}
		yoloxOnce.model, yoloxOnce.err = export.WriteYOLOXLike(yoloxTestConfig, inputs)
	})
	if yoloxOnce.err != nil {
		t.Fatal(yoloxOnce.err)
	}
	return yoloxOnce.model, yoloxOnce.images
}

func TestMain(m *testing.M) {
	code := m.Run()
	if yoloxOnce.images != "" {
		os.RemoveAll(filepath.Dir(yoloxOnce.images))
	}
	os.Exit(code)
}

// TestYOLOXLikeDefaults quantizes the YOLOX-like model with default
// settings, as a user would a third-party YOLOX export: the yolox adapter
// must supply the preprocessing, the opset-11 graph must upgrade, and the
// output must stay within cosine 0.99 of the float model.
func TestYOLOXLikeDefaults(t *testing.T) {
	m, images := yoloxModel(t)
	dir := t.TempDir()
	model := saveModel(t, dir, "yolox.onnx", m)
	rep, err := Run(context.Background(), Options{Model: model, Calib: images, Out: filepath.Join(dir, "yolox_int8.onnx"),
		EvalImages: 4, Threads: 1, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	notes := strings.Join(rep.Notes, "; ")
	if !strings.Contains(notes, "yolox adapter") || !strings.Contains(notes, "opset 11 to 13") || !strings.Contains(notes, "SiLU") || !strings.Contains(notes, "equalized") {
		t.Errorf("notes %q: want the yolox adapter's preprocessing, the opset upgrade, equalization and SiLU-aware lower bounds", notes)
	}
	if rep.QuantizedOps["Conv"] == 0 || rep.QuantizedOps["MaxPool"] != 3 || rep.QuantizedOps["Concat"] == 0 {
		t.Errorf("quantized %v: want the convolutions, SPP's max-pools and the CSP concats", rep.QuantizedOps)
	}
	if rep.CosineMin < 0.99 {
		t.Errorf("cosine %v, want ≥ 0.99 by default\n%s", rep.Cosine, text.String())
	}
	if rep.Debug == nil || len(rep.Debug.Tensors) < 50 || len(rep.Debug.Outputs) != 1 {
		t.Fatalf("debug report missing or short: %+v", rep.Debug)
	}
}

// TestEqualizeKeepsOutputs checks that equalization changes no output of
// the float YOLOX-like model (SiLU gates, Add, Concat, max-pools, Resize
// all carry scales) while it narrows the spread of channel ranges.
func TestEqualizeKeepsOutputs(t *testing.T) {
	m, images := yoloxModel(t)
	prep, err := Prepare(m, "yolox.onnx", true)
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := ListImages(images, 6)
	var inputs [][]float32
	for _, p := range paths {
		x, err := LoadInput(p, yoloxPreprocess)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, x)
	}
	shape := []int64{1, 3, 64, 64}
	stats, err := collectChannelStats(context.Background(), prep.Model, prep.Input, shape, inputs, 1)
	if err != nil {
		t.Fatal(err)
	}
	eq, res, err := Equalize(prep.Model, stats, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tensors == 0 || res.SiLUs == 0 || res.Free == 0 || !(res.SpreadAfter < res.SpreadBefore) {
		t.Fatalf("equalization result %+v: want rescaled tensors and SiLU gates and a smaller spread", res)
	}
	if err := sameOutputs(prep.Model, eq, prep.Input, shape, inputs, 1); err != nil {
		t.Fatal(err)
	}
	after, err := collectChannelStats(context.Background(), eq, prep.Input, shape, inputs, 1)
	if err != nil {
		t.Fatal(err)
	}
	// With strength 1 the channels of most tensors end up much closer.
	ix := onnxgraph.NewIndex(eq.Graph)
	better, total := 0, 0
	for name, st := range stats {
		if _, pre := consumerActivation(ix, name); pre || len(after[name]) == 0 {
			continue
		}
		total++
		if spread(after[name]) < spread(st)/2 {
			better++
		}
	}
	if better*3 < total || !(res.SpreadAfter < res.SpreadBefore) {
		t.Errorf("only %d of %d tensors halved their channel-range spread; widest %v → %v", better, total, res.SpreadBefore, res.SpreadAfter)
	}
	if _, _, err := Equalize(prep.Model, stats, 2); err == nil {
		t.Error("strength 2: no error")
	}
}

func spread(v []float64) float64 {
	lo, hi, top := math.Inf(1), 0.0, 0.0
	for _, x := range v {
		top = math.Max(top, x)
	}
	for _, x := range v {
		if x > 1e-3*top {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	return hi / lo
}

// TestActivationAwareLowerBound checks the lower-bound search on a
// LeakyReLU input: a wide negative tail the activation shrinks tenfold is
// clipped, which lowers the error after the activation.
func TestActivationAwareLowerBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram(0)
	v := make([]float32, 20000)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	v[0] = -12 // a rare far negative value
	h.Add(v)
	full := Range{Min: h.Min, Max: h.Max}
	curve := leakyCurve(0.1)
	lo := bestLowerBound(h, full, curve)
	if !(lo > full.Min && lo < 0) {
		t.Fatalf("lower bound %v, want between %v and 0", lo, full.Min)
	}
	errAfter := func(lo float64) float64 {
		p := ActivationParams(Range{Min: lo, Max: full.Max}, Uint8)
		sum := 0.0
		for _, x := range v {
			q := math.Round(float64(x)/float64(p.Scale)) + float64(p.ZeroPoint)
			q = math.Min(math.Max(q, 0), 255)
			d := curve.f((q-float64(p.ZeroPoint))*float64(p.Scale), 1) - curve.f(float64(x), 1)
			sum += d * d
		}
		return sum
	}
	if a, b := errAfter(lo), errAfter(full.Min); !(a < b) {
		t.Errorf("error after LeakyReLU with lower bound %v: %v, with the full range: %v; want smaller", lo, a, b)
	}
	// A SiLU's input gets a bound near where the SiLU has flattened out.
	if lo := bestLowerBound(h, full, siluCurve(nil)); !(lo > full.Min && lo < -1) {
		t.Errorf("SiLU lower bound %v, want within (%v, -1)", lo, full.Min)
	}
}

// TestInspectTiny runs the diagnosis on the tiny detector and checks its
// bookkeeping: every quantized tensor once, the input nearly exact, the
// layer-alone error no worse than with upstream error added, sane ranges,
// and a plot.
func TestInspectTiny(t *testing.T) {
	prep, plan, q, inputs := quantizeTiny(t, 13, Selection{Activations: Uint8}, MinMax)
	ins, err := Inspect(context.Background(), prep.Model, q, prep.Input, []int64{1, 3, 16, 16}, inputs, InspectOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(ins.Tensors) != len(plan.Tensors) {
		t.Fatalf("%d tensors diagnosed, plan quantizes %d", len(ins.Tensors), len(plan.Tensors))
	}
	if first := ins.Tensors[0]; first.Op != "input" || first.SQNR < 40 {
		t.Errorf("first tensor %+v: want the input, quantized with SQNR ≥ 40 dB", first)
	}
	for _, s := range ins.Tensors {
		if s.SQNRAlone+0.5 < s.SQNR || s.Cosine <= 0 || s.Cosine > 1+1e-9 || s.BiasShare < 0 || s.BiasShare > 1 {
			t.Errorf("tensor %+v: alone must be at least as good as with upstream error, cosine in (0, 1]", s)
		}
		if s.Calibrated.Min > s.Calibrated.Max || s.Observed.Min > s.Observed.Max || s.Scale <= 0 {
			t.Errorf("tensor %s: calibrated %v observed %v scale %v", s.Name, s.Calibrated, s.Observed, s.Scale)
		}
	}
	if len(ins.Outputs) != 2 || ins.FirstJump >= len(ins.Tensors) {
		t.Errorf("outputs %+v first jump %d", ins.Outputs, ins.FirstJump)
	}
	var text strings.Builder
	if err := ins.WriteText(&text); err != nil || !strings.Contains(text.String(), "SQNR dB") {
		t.Errorf("table: %v\n%s", err, text.String())
	}
	plot := filepath.Join(t.TempDir(), "sqnr.png")
	if err := ins.Plot(plot, "tiny"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(plot); err != nil || st.Size() < 1000 {
		t.Errorf("plot %s: %v", plot, err)
	}
	if err := ins.Plot(filepath.Join(t.TempDir(), "sqnr.gif"), "tiny"); err == nil {
		t.Error("plot to .gif: no error")
	}
	// A float model is not a QDQ model of itself.
	if _, err := Inspect(context.Background(), prep.Model, prep.Model, prep.Input, []int64{1, 3, 16, 16}, inputs, InspectOptions{}); err == nil {
		t.Error("inspecting a model without Q/DQ: no error")
	}
}
