package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/train"
)

// TestTwoStageCommands runs the two-stage family through every command:
// train a faster-rcnn-tiny teacher, distil the student from it with GID,
// export the student, quantize the export and serve it.
func TestTwoStageCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "synth")
	if _, err := synth.Generate(context.Background(), data, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		root := NewRoot(&out, &out)
		root.SetArgs(args)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("gidedge %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	teacher := filepath.Join(dir, "teacher")
	run("train", "--model", "faster-rcnn-tiny", "--data", data, "--out", teacher, "--val-split", "-", "--epochs", "2", "--batch", "4", "--quiet")
	student := filepath.Join(dir, "gid")
	out := run("distill", "--teacher", filepath.Join(teacher, train.LastFile), "--student", "faster-rcnn-tiny", "--data", data,
		"--out", student, "--val-split", "train", "--epochs", "1", "--batch", "4", "--quiet")
	if !strings.Contains(out, "GIs per image") || !strings.Contains(out, "final train: AP") {
		t.Fatalf("distill output:\n%s", out)
	}
	model := filepath.Join(dir, "student.onnx")
	if out := run("export", "--checkpoint", filepath.Join(student, train.BestFile), "--out", model, "--threads", "1"); !strings.Contains(out, "boxes   [1,proposals,6,4]") {
		t.Fatalf("export output:\n%s", out)
	}
	int8 := filepath.Join(dir, "student_int8.onnx")
	if out := run("quantize", "--model", model, "--calib", filepath.Join(data, "images"), "--out", int8, "--threads", "1"); !strings.Contains(out, "Conv (input of unknown type)") {
		t.Fatalf("quantize output does not say what stayed float:\n%s", out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := startServe(t, ctx, int8)
	images, _ := filepath.Glob(filepath.Join(data, "images", "*"))
	img, err := os.ReadFile(images[0])
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/detect", "image/jpeg", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"detections"`) {
		t.Fatalf("detect: %d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
