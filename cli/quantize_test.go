package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/onnxgraph"
)

func TestQuantizeFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--mean", "1,2"}, "three comma-separated numbers"},
		{[]string{"--std", "1,x,3"}, "--std"},
		{[]string{"--input-size", "320"}, "WxH"},
		{[]string{"--method", "magic"}, "minmax, percentile or entropy"},
		{[]string{"--activations", "int4"}, "uint8 or int8"},
		{[]string{"--weights", "half"}, "auto, full or reduced"},
		{[]string{"--max-ap-drop", "1", "--min-cosine", "0.9"}, "not both"},
		{[]string{"--calib", "."}, "--model"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		root := NewRoot(&out, &errb)
		root.SetArgs(append([]string{"quantize"}, tc.args...))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("quantize %v: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestQuantizeNanoDetJSON runs the command end to end on NanoDet-m with two
// calibration and two labelled images and checks the JSON report's keys.
func TestQuantizeNanoDetJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("real model: skipped with -short; package quantize tests the same code on a tiny model")
	}
	shared := sharedtest.Dir(t)
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib")
	os.Mkdir(calib, 0o755)
	for _, name := range []string{"000000000009.jpg", "000000000025.jpg"} {
		data, err := os.ReadFile(filepath.Join(shared, "data", "coco128", "images", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(calib, name), data, 0o644)
	}
	out := filepath.Join(dir, "nanodet_int8.onnx")
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"quantize", "--model", filepath.Join(shared, "models", "nanodet_m_320.onnx"), "--calib", calib,
		"--out", out, "--labels", filepath.Join(shared, "data", "coco128"), "--label-images", "2", "--json",
		"--bench-runs", "3", "--eval-images", "2", "--threads", "2", "--quiet"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		FP32 struct {
			LatencyMs float64  `json:"latency_ms"`
			AP        *float64 `json:"ap"`
		} `json:"fp32"`
		INT8 struct {
			LatencyMs float64  `json:"latency_ms"`
			AP        *float64 `json:"ap"`
		} `json:"int8"`
		Cosine map[string]float64 `json:"cosine"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not one JSON object: %v\n%s", err, stdout.String())
	}
	if rep.FP32.LatencyMs <= 0 || rep.INT8.LatencyMs <= 0 || rep.FP32.AP == nil || rep.INT8.AP == nil || len(rep.Cosine) != 6 {
		t.Fatalf("JSON report lacks latency, ap or the six cosines:\n%s", stdout.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("no output model: %v", err)
	}
}

// TestQuantizeDebugYOLOX runs `quantize --debug --debug-plot --json` on a
// small YOLOX-like model (no metadata: the yolox adapter supplies the
// preprocessing) and checks the diagnosis reaches the JSON and the plot.
func TestQuantizeDebugYOLOX(t *testing.T) {
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib")
	os.Mkdir(calib, 0o755)
	var inputs [][]float32
	for i := range 4 {
		img := image.NewRGBA(image.Rect(0, 0, 80, 60))
		for y := range 60 {
			for x := range 80 {
				img.Set(x, y, color.RGBA{uint8(x * 3), uint8(y * 4), uint8((x + y + 40*i) % 256), 255})
			}
		}
		f, err := os.Create(filepath.Join(calib, fmt.Sprintf("img%d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
		x := make([]float32, 3*64*64)
		for k := range x {
			x[k] = float32((k*7 + i*31) % 256)
		}
		inputs = append(inputs, x)
	}
	m, err := export.WriteYOLOXLike(export.YOLOXLike{Width: 0.0625, Size: 64, Classes: 2, Seed: 1, Threads: 1}, inputs)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "yolox.onnx")
	if err := onnxgraph.Save(model, m); err != nil {
		t.Fatal(err)
	}
	plot := filepath.Join(dir, "sqnr.png")
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"quantize", "--model", model, "--calib", calib, "--out", filepath.Join(dir, "yolox_int8.onnx"),
		"--debug", "--debug-plot", plot, "--json", "--bench-runs", "2", "--eval-images", "2", "--threads", "1", "--quiet"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep struct {
		Host struct {
			CPU      string `json:"cpu"`
			Int8Path string `json:"int8_path"`
		} `json:"host"`
		Debug struct {
			Tensors []struct {
				Name string  `json:"tensor"`
				SQNR float64 `json:"sqnr_db"`
			} `json:"tensors"`
			Outputs []struct {
				Cosine float64 `json:"cosine"`
			} `json:"outputs"`
		} `json:"debug"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not one JSON object: %v\n%s", err, stdout.String())
	}
	if rep.Host.CPU == "" || rep.Host.Int8Path == "" || len(rep.Debug.Tensors) < 20 || len(rep.Debug.Outputs) != 1 {
		t.Errorf("host %+v, %d diagnosed tensors, %d outputs", rep.Host, len(rep.Debug.Tensors), len(rep.Debug.Outputs))
	}
	if st, err := os.Stat(plot); err != nil || st.Size() == 0 {
		t.Errorf("plot %s: %v", plot, err)
	}
}
