package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/train"
)

// TestTrainPredict trains the tiny RetinaNet through the CLI, resumes it,
// and predicts with the best checkpoint.
func TestTrainPredict(t *testing.T) {
	data := filepath.Join(t.TempDir(), "synth")
	if _, err := synth.Generate(context.Background(), data, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2}); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(t.TempDir(), "run")
	var out, progress bytes.Buffer
	o := trainOptions{Model: "retinanet-tiny", runFlags: runFlags{Run: train.Options{Data: data, Out: run, ValSplit: "train", Epochs: 30, Batch: 4, EvalEvery: 30, Seed: 1}}}
	if err := runTrain(context.Background(), o, &out, &progress); err != nil {
		t.Fatalf("train: %v\n%s", err, out.String())
	}
	for _, want := range []string{"retinanet-tiny on synth/train (8 images, 6 classes)", "final train: AP", "best.safetensors"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("train output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(progress.String(), "step/s") || !strings.Contains(progress.String(), "cls") {
		t.Fatalf("progress bar lacks it/s or loss parts:\n%q", progress.String())
	}
	out.Reset()
	if err := runTrain(context.Background(), trainOptions{Model: "retinanet-tiny", runFlags: runFlags{Run: train.Options{Out: run, Resume: true}}}, &out, &progress); err == nil || !strings.Contains(err.Error(), "drop --model") {
		t.Fatalf("resume with --model: %v", err)
	}

	// gidedge eval --checkpoint scores the same images the run evaluated.
	out.Reset()
	root := NewRoot(&out, &out)
	root.SetArgs([]string{"eval", "--checkpoint", filepath.Join(run, "best.safetensors"), "--data", data, "--split", "train", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatalf("eval --checkpoint: %v\n%s", err, out.String())
	}
	var m struct {
		AP50     float64
		PerClass []json.RawMessage `json:"per_class"`
	}
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.AP50 < 0.5 || len(m.PerClass) != 6 {
		t.Fatalf("eval --checkpoint --json: AP50 %v, %d classes, %v\n%s", m.AP50, len(m.PerClass), err, out.String())
	}

	images, _ := filepath.Glob(filepath.Join(data, "images", "*.jpg"))
	pred := filepath.Join(t.TempDir(), "pred")
	out.Reset()
	if err := runPredict(context.Background(), predictOptions{Checkpoint: filepath.Join(run, "best.safetensors"), Out: pred, Images: images[:2], Score: 0.3, Batch: 2}, &out); err != nil {
		t.Fatal(err)
	}
	var pf predictFile
	raw, err := os.ReadFile(filepath.Join(pred, "predictions.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pf); err != nil {
		t.Fatal(err)
	}
	if len(pf.Images) != 2 || len(pf.Categories) != 6 || len(pf.Annotations) == 0 {
		t.Fatalf("predictions.json: %d images, %d categories, %d annotations", len(pf.Images), len(pf.Categories), len(pf.Annotations))
	}
	for _, a := range pf.Annotations {
		if a.Score < 0.3 || a.BBox[2] <= 0 || a.BBox[0]+a.BBox[2] > 64.01 || a.Label != pf.Categories[a.CategoryID-1].Name {
			t.Fatalf("bad annotation %+v", a)
		}
	}
	for _, im := range pf.Images {
		if st, err := os.Stat(im.Drawn); err != nil || st.Size() == 0 {
			t.Fatalf("annotated image %s: %v", im.Drawn, err)
		}
	}
	res, err := evaluate.ReadResults(filepath.Join(pred, "results.json"))
	if err != nil || len(res) != len(pf.Annotations) {
		t.Fatalf("results.json: %d detections, %v", len(res), err)
	}
	if err := runPredict(context.Background(), predictOptions{Checkpoint: filepath.Join(run, "config.json"), Out: pred, Images: images[:1]}, &out); err == nil {
		t.Fatal("predict with a non-checkpoint file succeeded")
	}
}

func TestTrainDryRun(t *testing.T) {
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{DryRun: true, Classes: 3}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"retinanet-student", "fcos-teacher", "GFLOPs", "3 classes assumed"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	if err := runTrain(context.Background(), trainOptions{runFlags: runFlags{Run: train.Options{Out: t.TempDir(), Data: "x"}}}, &out, &out); err == nil || !strings.Contains(err.Error(), "--model is required") {
		t.Fatalf("train without --model: %v", err)
	}
}
