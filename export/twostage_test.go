package export

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
)

// twoStageDetector is faster-rcnn-tiny with random batch-norm statistics
// and a depthwise RPN tower on a mobilenetv2 backbone when mobile is set,
// so the exporter sees both kinds of tower layer.
func twoStageDetector(t *testing.T, mobile bool, seed uint64) *models.Detector {
	t.Helper()
	cfg, err := models.Named("faster-rcnn-tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithClasses(classNames)
	if mobile {
		m := tinyConfig(t, models.FamilyRetinaNet, models.BackboneMobileNetV2)
		cfg.Backbone, cfg.FPN.Depthwise, cfg.Head.Depthwise = m.Backbone, true, true
		cfg.Input.Size = 96
		h := *cfg.ROIHead
		h.SamplingRatio = 0 // adaptive, as the named configs pool
		cfg.ROIHead = &h
	}
	return tinyDetector(t, cfg, seed)
}

// TestExportTwoStage exports the whole two-stage pipeline (RPN, proposals
// with TopK and NonMaxSuppression, RoiAlign by level, box head, decoding)
// in every output mode and checks the engine against ONNX Runtime.
func TestExportTwoStage(t *testing.T) {
	needORT(t)
	for i, mobile := range []bool{false, true} {
		d := twoStageDetector(t, mobile, uint64(40+i))
		cfg := d.Config
		for _, mode := range []struct {
			name     string
			outputs  string
			features bool
		}{{"decoded", infer.OutputsDecoded, false}, {"raw", infer.OutputsRaw, false}, {"decoded+features", infer.OutputsDecoded, true}} {
			t.Run(cfg.Backbone.Type+"/"+mode.name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "model.onnx")
				rep, err := Export(d, out, Options{Outputs: mode.outputs, WithFeatures: mode.features, Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("worst relative difference %.2e on %s", rep.Parity.Worst, rep.Parity.WorstOutput)
				var got []string
				for _, o := range rep.Outputs {
					got = append(got, o.Name)
				}
				if want := wantOutputs(cfg, mode.outputs, mode.features); !slices.Equal(got, want) {
					t.Fatalf("outputs %v, want %v", got, want)
				}
				if rep.Parity.Batch != 1 || rep.Input.Shape[0] != 1 {
					t.Fatalf("parity batch %d, input %v: a two-stage export runs one image", rep.Parity.Batch, rep.Input.Shape)
				}
				m, err := onnxgraph.Load(out)
				if err != nil {
					t.Fatal(err)
				}
				ops := map[string]bool{}
				for _, n := range m.Graph.Node {
					ops[n.OpType] = true
					if n.Domain != "" {
						t.Errorf("%s is in domain %q, want the standard one", onnxgraph.Describe(n), n.Domain)
					}
				}
				if mode.outputs == infer.OutputsDecoded {
					for _, op := range []string{"TopK", "NonMaxSuppression", "Gather", "RoiAlign", "Softmax", "Conv"} {
						if !ops[op] {
							t.Errorf("no %s node in the two-stage graph", op)
						}
					}
					for _, o := range rep.Outputs {
						if o.Name == BoxesName && !slices.Equal(o.Shape, []int64{1, -1, 3, 4}) {
							t.Errorf("boxes shape %v, want [1 -1 3 4]", o.Shape)
						}
					}
					for _, p := range rep.Parity.Outputs {
						if p.Name == ScoresName && (len(p.Shape) != 3 || p.Shape[1] == 0) {
							t.Errorf("the parity image made %v scores: no proposals were compared", p.Shape)
						}
					}
				} else if ops["RoiAlign"] {
					t.Error("raw outputs need no second stage, yet the graph has RoiAlign")
				}
			})
		}
	}
}

func TestExportTwoStageRefusals(t *testing.T) {
	d := twoStageDetector(t, false, 50)
	dir := t.TempDir()
	if _, err := Export(d, filepath.Join(dir, "a.onnx"), Options{Batch: 2}); err == nil || !strings.Contains(err.Error(), "batch of 1") {
		t.Fatalf("batch 2: %v, want a refusal naming the batch of 1", err)
	}
	if _, err := Export(d, filepath.Join(dir, "b.onnx"), Options{Opset: 13}); err == nil || !strings.Contains(err.Error(), "opset ≥ 16") {
		t.Fatalf("opset 13: %v, want a refusal naming opset 16", err)
	}
	// Raw outputs need no RoiAlign and export at older opsets.
	needORT(t)
	if _, err := Export(d, filepath.Join(dir, "c.onnx"), Options{Opset: 13, Outputs: infer.OutputsRaw}); err != nil {
		t.Fatalf("raw outputs at opset 13: %v", err)
	}
	if _, err := Export(d, filepath.Join(dir, "d.onnx"), Options{}); errors.Is(err, ErrParity) {
		t.Fatalf("parity: %v", err)
	}
}

// TestInferRunsTwoStageExport serves a two-stage export through infer's
// gidedge adapter (class-specific boxes) from a non-square image and
// checks its detections against the engine's own two-stage postprocess
// on the same preprocessed tensor.
func TestInferRunsTwoStageExport(t *testing.T) {
	needORT(t)
	img := gradientImage(120, 72)
	d := twoStageDetector(t, false, 60)
	cfg := d.Config
	det := exportAndOpen(t, d)
	defer det.Close()
	const threshold = 0.2
	params := infer.Params{ScoreThreshold: threshold, IoUThreshold: 0.5, MaxDetections: 20}
	res, err := det.Detect(context.Background(), img, params)
	if err != nil {
		t.Fatal(err)
	}
	pre := det.Describe().Input
	x := make([]float32, pre.TensorLen())
	tr, err := pre.Apply(img, x)
	if err != nil {
		t.Fatal(err)
	}
	// Every served detection is one of the engine's class-specific boxes
	// of a proposal, with its probability (the server runs NMS on source
	// pixels, where letterbox padding is cut off, so the kept sets may
	// differ at the borders); the best one is the engine's best.
	d.Config.Postprocess.ScoreThreshold = threshold
	var top models.Detection
	var probs, boxes []float32
	engine.NoGrad(func() {
		o := d.Forward(engine.FromHost(x, 1, 3, cfg.Input.Size, cfg.Input.Size), false)
		props := d.Proposals(o, false)
		var reg []float32
		probs, reg = d.SecondStage(o, props)
		boxes = d.DecodeROIBoxes(props[0].Boxes, reg)
		top = d.Postprocess(o)[0][0]
	})
	if len(res.Detections) == 0 {
		t.Fatal("no detections")
	}
	size := float32(cfg.Input.Size)
	for _, got := range res.Detections {
		found := false
		for q := 0; q < len(probs) && !found; q++ {
			if q%len(classNames) != got.Class || math.Abs(float64(probs[q]-got.Score)) > 1e-4 {
				continue
			}
			b := boxes[4*q : 4*q+4]
			x1, y1, x2, y2 := tr.ToSource(clampF(b[0], size), clampF(b[1], size), clampF(b[2], size), clampF(b[3], size))
			found = math.Abs(float64(x1-got.Box[0])) < 1e-2 && math.Abs(float64(y1-got.Box[1])) < 1e-2 &&
				math.Abs(float64(x2-got.Box[2])) < 1e-2 && math.Abs(float64(y2-got.Box[3])) < 1e-2
		}
		if !found {
			t.Errorf("served detection %+v is none of the engine's class boxes", got)
		}
	}
	x1, y1, x2, y2 := tr.ToSource(top.Box[0], top.Box[1], top.Box[2], top.Box[3])
	best := res.Detections[0]
	if best.Class != top.Class || math.Abs(float64(best.Score-top.Score)) > 1e-4 || math.Abs(float64(best.Box[0]-x1)) > 1e-2 ||
		math.Abs(float64(best.Box[1]-y1)) > 1e-2 || math.Abs(float64(best.Box[2]-x2)) > 1e-2 || math.Abs(float64(best.Box[3]-y2)) > 1e-2 {
		t.Errorf("best detection %+v, engine postprocess gives %+v → source %v", best, top, [4]float32{x1, y1, x2, y2})
	}
}
