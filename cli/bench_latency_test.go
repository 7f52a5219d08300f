package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/serve"
)

func TestBenchLatencyInProcessAndServer(t *testing.T) {
	model := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	s, err := serve.New(serve.Config{ModelPath: model, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	var out bytes.Buffer
	o := benchLatencyOptions{Model: model, Images: sharedtest.Dir(t, "data", "coco128", "images"), MaxImages: 4,
		N: 6, Warmup: 1, Concurrency: []int{1, 2}, Rounds: 3, URL: "http://" + ln.Addr().String(), JSON: true, Sessions: 1, Provider: "cpu"}
	if err := runBenchLatency(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		P50        float64 `json:"p50_ms"`
		P99        float64 `json:"p99_ms"`
		Throughput float64 `json:"throughput"`
		Images     int     `json:"images"`
		Results    []struct {
			Model, Mode string
			Concurrency int
			SessionP50  float64 `json:"session_p50_ms"`
		} `json:"results"`
		Overheads []struct {
			Concurrency int `json:"concurrency"`
		} `json:"server_overhead"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 || rep.Throughput <= 0 || rep.Images != 4 {
		t.Fatalf("report %+v", rep)
	}
	modes := []string{}
	for _, r := range rep.Results {
		if r.Model != "nanodet_m_320" || r.SessionP50 <= 0 {
			t.Fatalf("result %+v", r)
		}
		modes = append(modes, r.Mode)
	}
	if strings.Join(modes, ",") != "in-process,end-to-end,in-process,end-to-end" || len(rep.Overheads) != 2 {
		t.Fatalf("modes %v, overheads %+v", modes, rep.Overheads)
	}

	// The table form, synthetic image, and argument errors.
	out.Reset()
	o = benchLatencyOptions{Model: model, N: 3, Warmup: 0, Concurrency: []int{1}, Sessions: 1, Provider: "cpu"}
	if err := runBenchLatency(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "p50 ms") || !strings.Contains(out.String(), "over 1 images") {
		t.Fatalf("table:\n%s", out.String())
	}
	bad := []struct {
		o    benchLatencyOptions
		want string
	}{
		{benchLatencyOptions{N: 1, Concurrency: []int{1}}, "give --model"},
		{benchLatencyOptions{URL: "http://127.0.0.1:1", Compare: []string{model}, N: 1, Concurrency: []int{1}}, "need --model"},
		{benchLatencyOptions{Model: model, N: 1, Concurrency: []int{0}}, "--concurrency 0"},
		{benchLatencyOptions{Model: model, N: 1, Concurrency: []int{1}, Images: t.TempDir()}, "has no .jpg"},
		{benchLatencyOptions{Model: model, N: 1, Concurrency: []int{1}, Data: t.TempDir()}, "--data"},
	}
	for _, tc := range bad {
		if err := runBenchLatency(context.Background(), tc.o, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("options %+v: err %v, want %q", tc.o, err, tc.want)
		}
	}
}
