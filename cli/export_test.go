package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/models"
)

func exportCheckpoint(t *testing.T) string {
	t.Helper()
	cfg, err := models.Named("retinanet-tiny")
	if err != nil {
		t.Fatal(err)
	}
	d, err := models.New(cfg.WithClasses([]string{"a", "b"}), 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "best.safetensors")
	if err := models.SaveCheckpoint(path, d, nil, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExportCommand(t *testing.T) {
	ckpt := exportCheckpoint(t)
	out := filepath.Join(t.TempDir(), "m.onnx")
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"export", "--checkpoint", ckpt, "--out", out, "--threads", "1", "--json"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		Written bool `json:"written"`
		Outputs []struct {
			Name  string  `json:"name"`
			Shape []int64 `json:"shape"`
		} `json:"graph_outputs"`
		Parity struct {
			Worst float64 `json:"worst_relative"`
		} `json:"parity"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if !rep.Written || len(rep.Outputs) != 2 || rep.Outputs[0].Name != "boxes" || rep.Outputs[1].Name != "scores" || rep.Parity.Worst > 1e-4 {
		t.Errorf("report %+v", rep)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}

	stdout.Reset()
	raw := filepath.Join(t.TempDir(), "raw.onnx")
	if err := runExport(context.Background(), exportOptions{Checkpoint: ckpt, Out: raw, Outputs: "raw", Batch: "1", Threads: 1}, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cls_logits_2", "[1,4,2,2]", "worst:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestExportCommandErrors(t *testing.T) {
	ckpt := exportCheckpoint(t)
	dir := t.TempDir()
	cases := []struct {
		opts exportOptions
		want string
	}{
		{exportOptions{Out: filepath.Join(dir, "m.onnx")}, "--checkpoint is required"},
		{exportOptions{Checkpoint: ckpt}, "--out is required"},
		{exportOptions{Checkpoint: ckpt, Out: filepath.Join(dir, "m.onnx"), Batch: "many"}, `--batch "many"`},
		{exportOptions{Checkpoint: filepath.Join(dir, "missing.safetensors"), Out: filepath.Join(dir, "m.onnx")}, "does not exist"},
	}
	for _, c := range cases {
		var stdout bytes.Buffer
		err := runExport(context.Background(), c.opts, &stdout)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.opts, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files left behind", len(entries))
	}
}
