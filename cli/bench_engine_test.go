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

func TestBenchEngineModel(t *testing.T) {
	var out bytes.Buffer
	opts := benchEngineOptions{JSON: true, Steps: 10, Warmup: 1, Batch: 2, Size: 64, Seed: 1, Model: "retinanet-tiny", Classes: 3, ProfileSteps: 2}
	if err := runBenchEngine(context.Background(), opts, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Probe *struct{} `json:"probe"`
		Model struct {
			Name        string  `json:"name"`
			Input       []int   `json:"input"`
			Params      int     `json:"params"`
			ForwardMS   float64 `json:"forward_ms"`
			TrainStepMS float64 `json:"train_step_ms"`
			CPUMS       float64 `json:"cpu_ms_per_step"`
			Loss        float32 `json:"final_loss"`
			Families    []struct {
				Family     string  `json:"family"`
				BackwardMS float64 `json:"backward_ms"`
				Share      float64 `json:"share_pct"`
			} `json:"families"`
		} `json:"model"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	m := got.Model
	if got.Probe != nil || m.Name != "retinanet-tiny" || len(m.Input) != 4 || m.Input[0] != 2 || m.Input[2] != 64 {
		t.Fatalf("wrong run: %s", out.String())
	}
	if m.Params <= 0 || m.ForwardMS <= 0 || m.TrainStepMS <= 0 || m.CPUMS <= 0 || m.Loss <= 0 {
		t.Fatalf("missing figures: %+v", m)
	}
	shares := map[string]float64{}
	var total float64
	for _, f := range m.Families {
		shares[f.Family] = f.Share
		total += f.Share
	}
	for _, f := range []string{"conv", "conv 1×1", "batch norm", "activation", "loss", "optimizer", "outside kernels"} {
		if _, ok := shares[f]; !ok {
			t.Errorf("family %q missing from %v", f, shares)
		}
	}
	if total < 99 || total > 150 {
		t.Errorf("shares add up to %.1f%%, want about 100%%", total)
	}

	out.Reset()
	opts.JSON = false
	if err := runBenchEngine(context.Background(), opts, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"retinanet-tiny", "train step", "kernel families", "batch norm"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	opts.Model = "no-such-model"
	if err := runBenchEngine(context.Background(), opts, &out); err == nil || !strings.Contains(err.Error(), "no-such-model") {
		t.Fatalf("unknown model: %v", err)
	}
}
