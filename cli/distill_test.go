package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/train"
)

// TestDistillCommand distils the tiny student from a tiny teacher through
// the command line, draws GI pictures, refuses a resume with other
// settings, and names missing flags.
func TestDistillCommand(t *testing.T) {
	data := filepath.Join(t.TempDir(), "synth")
	if _, err := synth.Generate(context.Background(), data, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2}); err != nil {
		t.Fatal(err)
	}
	teacher := filepath.Join(t.TempDir(), "teacher")
	var out bytes.Buffer
	if err := runTrain(context.Background(), trainOptions{Model: "retinanet-tiny", runFlags: runFlags{Run: train.Options{Data: data, Out: teacher, ValSplit: "-", Epochs: 4, Batch: 4, Seed: 1}, Quiet: true}}, &out, &out); err != nil {
		t.Fatalf("train teacher: %v\n%s", err, out.String())
	}
	run := filepath.Join(t.TempDir(), "gid")
	out.Reset()
	root := NewRoot(&out, &out)
	root.SetArgs([]string{"distill", "--teacher", filepath.Join(teacher, train.LastFile), "--student", "retinanet-tiny",
		"--data", data, "--out", run, "--val-split", "train", "--epochs", "2", "--batch", "4", "--seed", "1",
		"--topk", "5", "--dump-gis", "1", "--save-every", "1", "--quiet"})
	root.SetContext(context.Background())
	if err := root.Execute(); err != nil {
		t.Fatalf("distill: %v\n%s", err, out.String())
	}
	for _, want := range []string{"GID [feature", "top 5 of 3000", "GIs per image", "final train: AP", "best.safetensors"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("distill output lacks %q:\n%s", want, out.String())
		}
	}
	if pics, _ := filepath.Glob(filepath.Join(run, "gis", "*.png")); len(pics) != 2 {
		t.Fatalf("%d GI pictures, want 2 (one per epoch): %v", len(pics), pics)
	}

	out.Reset()
	root = NewRoot(&out, &out)
	root.SetArgs([]string{"distill", "--out", run, "--resume", "--topk", "10"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "topk 10, the run's 5") {
		t.Fatalf("resume with another --topk: %v", err)
	}
	for _, c := range []struct {
		o    distillOptions
		want string
	}{
		{distillOptions{}, "--out is required"},
		{distillOptions{runFlags: runFlags{Run: train.Options{Out: run}}}, "--student is required"},
		{distillOptions{Student: "retinanet-tiny", runFlags: runFlags{Run: train.Options{Out: run}}}, "--teacher is required"},
		{distillOptions{Student: "retinanet-tiny", runFlags: runFlags{Run: train.Options{Out: run, Resume: true}}}, "drop --student"},
	} {
		if err := runDistill(context.Background(), c.o, &out, &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("runDistill(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(run, "distill.json")); err != nil {
		t.Fatal(err)
	}
}
