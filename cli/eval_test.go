package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/evaluate"
)

// synthSet writes a small synthetic dataset and returns its folder.
func synthSet(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "synth")
	var out bytes.Buffer
	err := runDataSynth(context.Background(), dataSynthOptions{Out: dir, Gen: synth.Options{Images: 12, Size: 96, Seed: 5, TestFrac: 0.5}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wrote 12 images (train 6, val 0, test 6)") || !strings.Contains(out.String(), "striped-disc") {
		t.Fatalf("synth output:\n%s", out.String())
	}
	return dir
}

// groundTruthAsDetections turns the split's annotations into a perfect
// results file, dropping one object so AP is below 1.
func groundTruthAsDetections(t *testing.T, dir, split string) ([]evaluate.Detection, int) {
	t.Helper()
	ds, err := dataset.Load(dir, split)
	if err != nil {
		t.Fatal(err)
	}
	var dets []evaluate.Detection
	n := 0
	for _, im := range ds.Images {
		for _, o := range im.Objects {
			n++
			dets = append(dets, evaluate.FromBox(im.ID, ds.Categories[o.Class].ID, o.Box, 0.5+float64(n%7)/20))
		}
	}
	return dets, n
}

func TestEvalDetectionsJSON(t *testing.T) {
	dir := synthSet(t)
	dets, n := groundTruthAsDetections(t, dir, "test")
	if n < 3 {
		t.Fatalf("test split has only %d objects", n)
	}
	results := filepath.Join(t.TempDir(), "results.json")
	if err := evaluate.WriteResults(results, dets); err != nil {
		t.Fatal(err)
	}
	plot := filepath.Join(t.TempDir(), "pr.png")
	var out bytes.Buffer
	if err := runEval(context.Background(), evalOptions{Detections: results, Data: dir, Split: "test", JSON: true, PRCurve: plot}, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"AP", "AP50", "AP75", "AR100", "per_class", "load_report"} {
		if _, ok := got[k]; !ok {
			t.Errorf("--json output lacks %q", k)
		}
	}
	if got["AP"] != 1.0 || got["AP50"] != 1.0 {
		t.Errorf("perfect detections scored AP %v AP50 %v", got["AP"], got["AP50"])
	}
	if pc, _ := got["per_class"].([]any); len(pc) != len(synth.Classes) {
		t.Errorf("per_class has %d entries, want %d", len(pc), len(synth.Classes))
	}
	if st, err := os.Stat(plot); err != nil || st.Size() == 0 {
		t.Errorf("no PR curve written: %v", err)
	}

	// Text mode, with one detection lost.
	if err := evaluate.WriteResults(results, dets[1:]); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runEval(context.Background(), evalOptions{Detections: results, Data: dir, Split: "test"}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]", "striped-disc", "6 images"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "= 1.000\n Average Precision  (AP) @[ IoU=0.50 ") {
		t.Errorf("AP stayed 1 with a missed object:\n%s", text)
	}
}

func TestEvalErrors(t *testing.T) {
	dir := synthSet(t)
	dets, _ := groundTruthAsDetections(t, dir, "train")
	results := filepath.Join(t.TempDir(), "train_results.json")
	if err := evaluate.WriteResults(results, dets); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    evalOptions
		says []string
	}{
		{"results of another split", evalOptions{Detections: results, Data: dir, Split: "test"},
			[]string{"evaluate: detection for an image not in the dataset", "train_results.json", `split "test"`}},
		{"nothing to score", evalOptions{Data: dir}, []string{"give --detections"}},
		{"missing split", evalOptions{Detections: results, Data: dir, Split: "holdout"}, []string{"no such split", "instances_holdout.json"}},
		{"missing results", evalOptions{Detections: filepath.Join(dir, "nope.json"), Data: dir, Split: "test"}, []string{"nope.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runEval(context.Background(), tc.o, &bytes.Buffer{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// TestEvalSourceSeam plugs a detection mode in the way the trainer's
// --checkpoint will, and runs it through the command line.
func TestEvalSourceSeam(t *testing.T) {
	dir := synthSet(t)
	saved := evalSources
	t.Cleanup(func() { evalSources = saved })
	var model string
	registerEvalSource(evalSource{
		AddFlags: func(cmd *cobra.Command) { cmd.Flags().StringVar(&model, "fake-model", "", "test detector") },
		Resolve: func(context.Context) (*evalMode, error) {
			if model == "" {
				return nil, nil
			}
			return &evalMode{Name: "fake " + model, Classes: synth.Classes, Detect: func(_ context.Context, ds *dataset.Dataset) ([]evaluate.Detection, error) {
				var dets []evaluate.Detection
				for _, im := range ds.Images {
					for _, o := range im.Objects {
						dets = append(dets, evaluate.FromBox(im.ID, ds.Categories[o.Class].ID, o.Box, 0.9))
					}
				}
				return dets, nil
			}}, nil
		},
	})
	saveTo := filepath.Join(t.TempDir(), "saved.json")
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"eval", "--fake-model", "m1", "--data", dir, "--json", "--save-results", saveTo})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var got struct {
		AP     float64 `json:"AP"`
		Source string  `json:"source"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.AP != 1 || got.Source != "fake m1" {
		t.Fatalf("seam run: AP %v source %q", got.AP, got.Source)
	}
	if saved, err := evaluate.ReadResults(saveTo); err != nil || len(saved) == 0 {
		t.Fatalf("--save-results: %d detections, %v", len(saved), err)
	}

	root = NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"eval", "--fake-model", "m1", "--detections", saveTo, "--data", dir})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Fatalf("two detection sources: error %v", err)
	}
}

func TestDataSynthJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	var out bytes.Buffer
	root := NewRoot(&out, &bytes.Buffer{})
	root.SetArgs([]string{"data", "synth", "--out", dir, "--images", "4", "--size", "64", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Images int            `json:"images"`
		Splits map[string]int `json:"splits"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got.Images != 4 || got.Splits["train"]+got.Splits["val"]+got.Splits["test"] != 4 {
		t.Fatalf("summary %+v", got)
	}
	if _, err := dataset.Load(dir, "train"); err != nil {
		t.Fatal(err)
	}
}
