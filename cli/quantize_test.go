package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	shared, err := filepath.Abs(filepath.Join("..", "..", "shared"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared data folder %s not present", shared)
	}
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
