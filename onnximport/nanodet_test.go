package onnximport

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

// NanoDet-m's backbone outputs (ShuffleNetV2 stages 2–4) and its PAN's.
var nanodetOutputs = []string{"528", "743", "846", "861", "867", "873"}

// TestImportNanoDet imports NanoDet-m's ShuffleNetV2 backbone and PAN from
// ../shared/models and checks them against ONNX Runtime running the
// original graph cut at the same six tensors; then the detector built on
// them (gidedge's RetinaNet head) exports with a passing parity check and
// trains.
func TestImportNanoDet(t *testing.T) {
	path := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	res, err := Import(path, Options{
		Take: TakeAll, Outputs: nanodetOutputs, BGR: true, UnfoldBN: true,
		Mean: &[3]float32{103.53, 116.28, 123.675}, Std: &[3]float32{57.375, 57.12, 58.395},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d nodes %v, %d params, worst %.3g", res.Source, res.Nodes, res.Ops, res.Params, res.Worst)
	wantShapes := [][]int64{{1, 116, 40, 40}, {1, 232, 20, 20}, {1, 464, 10, 10}, {1, 96, 40, 40}, {1, 96, 20, 20}, {1, 96, 10, 10}}
	if len(res.Parity) != 6 {
		t.Fatalf("%d outputs compared, want 6", len(res.Parity))
	}
	for i, p := range res.Parity {
		if p.Name != nanodetOutputs[i] || !slices.Equal(p.Shape, wantShapes[i]) || p.Relative > 1e-5 {
			t.Errorf("output %d: %+v, want %s %v within 1e-5", i, p, nanodetOutputs[i], wantShapes[i])
		}
	}
	if res.Config.FPN.Channels != 96 || res.Config.Backbone.Type != models.BackboneImported || res.Config.Neck == nil {
		t.Fatalf("config: fpn %+v, backbone %s, neck %v", res.Config.FPN, res.Config.Backbone.Type, res.Config.Neck != nil)
	}
	// NanoDet's BGR normalisation in pixels is ImageNet's in RGB on 0–1.
	if m := res.Config.Input.Mean; m[0] < 0.484 || m[0] > 0.486 || m[2] < 0.405 || m[2] > 0.407 {
		t.Errorf("mean %v, want NanoDet's (123.675, 116.28, 103.53)/255 in RGB order", m)
	}
	if testing.Short() {
		return // the export and training below run in the full test run
	}
	dir := t.TempDir()
	weights, config := filepath.Join(dir, "nanodet.safetensors"), filepath.Join(dir, "nanodet.json")
	if err := res.Write(weights, config); err != nil {
		t.Fatal(err)
	}
	cfg, err := models.Resolve(config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pretrained != weights {
		t.Fatalf("pretrained %q, want %q", cfg.Pretrained, weights)
	}
	d, err := models.New(cfg.WithClasses([]string{"a", "b", "c"}), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := models.LoadPretrained(d, cfg.Pretrained); err != nil {
		t.Fatal(err)
	}
	rep, err := export.Export(d, filepath.Join(dir, "nanodet-retinanet.onnx"), export.Options{Tolerance: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("export: %d nodes, %d folded batch norms, parity %.3g on %s", rep.Nodes, rep.FoldedBN, rep.Parity.Worst, rep.Parity.WorstOutput)
	if rep.FoldedBN < 58 {
		t.Errorf("export folded %d batch norms; the 58 unfolded ones of the import must fold back", rep.FoldedBN)
	}
	// Opset 11 writes Resize with its roi input and slices' steps as inputs of the older form.
	if _, err := export.Export(d, filepath.Join(dir, "nanodet-retinanet-11.onnx"), export.Options{Opset: 11, Outputs: "raw", ParityBatch: 1}); err != nil {
		t.Fatalf("opset 11: %v", err)
	}
	out := t.TempDir()
	cfg.NumClasses, cfg.ClassNames = 0, nil
	run, err := train.Run(context.Background(), train.Options{Config: cfg, Data: tinySet(t), ValSplit: train.NoEval, Out: out,
		Epochs: 1, Batch: 4, ImgSize: 96, Seed: 1, StopAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	if run.HParams.PretrainedTensors != len(res.Tensors) {
		t.Errorf("the run initialised %d tensors, the import made %d", run.HParams.PretrainedTensors, len(res.Tensors))
	}
}
