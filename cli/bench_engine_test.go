package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchEngineJSON(t *testing.T) {
	var out bytes.Buffer
	opts := benchEngineOptions{JSON: true, Steps: 10, Warmup: 1, Batch: 1, Size: 32, Seed: 1}
	if err := runBenchEngine(context.Background(), opts, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Probe struct {
			ForwardMS   float64 `json:"forward_ms"`
			TrainStepMS float64 `json:"train_step_ms"`
			GFLOPS      float64 `json:"gflops"`
			Input       []int   `json:"input"`
		} `json:"probe"`
		SgemmGFLOPS float64 `json:"sgemm_gflops"`
		Layers      []struct {
			Name string `json:"name"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if got.Probe.ForwardMS <= 0 || got.Probe.TrainStepMS <= 0 || got.Probe.GFLOPS <= 0 || got.SgemmGFLOPS <= 0 {
		t.Fatalf("missing figures: %+v", got)
	}
	if len(got.Layers) != 8 || got.Layers[7].Name != "stage4.conv2" {
		t.Fatalf("layers %+v, want the 8 probe convolutions", got.Layers)
	}
	if len(got.Probe.Input) != 4 || got.Probe.Input[0] != 1 || got.Probe.Input[2] != 32 {
		t.Fatalf("input %v", got.Probe.Input)
	}
}

func TestBenchEngineText(t *testing.T) {
	var out bytes.Buffer
	opts := benchEngineOptions{Steps: 10, Warmup: 1, Batch: 1, Size: 32, Seed: 1}
	if err := runBenchEngine(context.Background(), opts, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"train step", "cblas_sgemm", "stage1.conv1", "% sgemm"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := runBenchEngine(context.Background(), benchEngineOptions{Steps: 3, Warmup: 1, Batch: 1, Size: 32}, &out); err == nil || !strings.Contains(err.Error(), "--steps") {
		t.Fatalf("3 steps accepted: %v", err)
	}
}
