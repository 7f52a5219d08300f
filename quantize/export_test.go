package quantize

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/models"
)

// TestGidedgeExport quantizes a freshly exported gidedge detector: the
// pre-processing must come from the model's own metadata, the decoded
// outputs' box/score tail must stay float, and the dynamic batch dimension
// must be fed as 1.
func TestGidedgeExport(t *testing.T) {
	cfg, err := models.Named("retinanet-tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithClasses([]string{"cell", "platelet"})
	rep, _, out := quantizeExport(t, cfg)
	if !strings.Contains(strings.Join(rep.Notes, " "), "gidedge metadata") {
		t.Errorf("notes %q: want pre-processing from the gidedge metadata", rep.Notes)
	}
	if rep.Preprocess.Width != cfg.Input.Size || rep.QuantizedOps["Conv"] == 0 || !rep.PerChannel {
		t.Errorf("preprocess %+v, quantized %v, per-channel %v", rep.Preprocess, rep.QuantizedOps, rep.PerChannel)
	}
	if rep.CosineMin < 0.9 {
		t.Errorf("cosine %v, want ≥ 0.9", rep.Cosine)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// TestTwoStageExport quantizes a two-stage (Faster R-CNN) export: the
// backbone, pyramid and RPN run in 8 bits, the box head behind RoiAlign
// stays float and the report says so, and the quantized model still runs
// (a dynamic number of proposals).
func TestTwoStageExport(t *testing.T) {
	cfg, err := models.Named("faster-rcnn-tiny")
	if err != nil {
		t.Fatal(err)
	}
	rep, text, out := quantizeExport(t, cfg.WithClasses([]string{"cell", "platelet"}))
	if rep.QuantizedOps["Conv"] == 0 || rep.FloatOps["Conv (input of unknown type)"] != 4 {
		t.Errorf("quantized %v, float %v: want the RPN's and backbone's Conv in 8 bits and the box head's 4 in float", rep.QuantizedOps, rep.FloatOps)
	}
	if !strings.Contains(text, "Conv (input of unknown type) 4") {
		t.Errorf("the report does not say the box head stayed float:\n%s", text)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// quantizeExport exports a freshly initialised detector of cfg and
// quantizes it on a few generated images; it returns the report, its text
// and the quantized model's path.
func quantizeExport(t *testing.T, cfg models.Config) (*Report, string, string) {
	t.Helper()
	d, err := models.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "model.onnx")
	if _, err := export.Export(d, model, export.Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model_int8.onnx")
	rep, err := Run(context.Background(), Options{
		Model: model, Out: out, Calib: writeImages(t, filepath.Join(dir, "calib"), 6, 9),
		EvalImages: 3, Threads: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())
	return rep, text.String(), out
}
