package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/sim"
)

// TestGPUCheckOnSimulator runs both commands as gpu_check.sh does, on the
// CUDA driver simulator with the tiny models and shapes its rehearsal uses.
func TestGPUCheckOnSimulator(t *testing.T) {
	dir, err := sim.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIDEDGE_CUDA_LIBS", dir)
	t.Cleanup(func() { _, _ = backend.Use(backend.DefaultName()) })
	out := t.TempDir()
	var log bytes.Buffer
	err = runGID([]string{"--device", "cuda", "--out", out, "--images", "30", "--size", "64", "--batch", "4",
		"--teacher", "retinanet-tiny", "--student", "retinanet-tiny", "--teacher-steps", "6", "--teacher-seconds", "600", "--steps", "20"}, &log)
	if err != nil {
		t.Fatalf("gid: %v\n%s", err, log.String())
	}
	var rep GIDReport
	raw, err := os.ReadFile(filepath.Join(out, "gid.json"))
	if err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("gid.json: %v %s", err, raw)
	}
	if rep.Device != "cuda" || rep.TeacherSteps != 6 || rep.Steps != 20 || !rep.LossFell || !rep.Evaluated || len(rep.Losses) != 20 {
		t.Fatalf("gid.json: %+v", rep)
	}
	log.Reset()
	if err := runTime([]string{"--device", "cuda", "--size", "64", "--batch", "2", "--steps", "2", "--warmup", "1",
		"--student", "retinanet-tiny", "--teacher", "retinanet-tiny"}, &log); err != nil {
		t.Fatal(err)
	}
	var tr TimeReport
	if err := json.Unmarshal(bytes.TrimSpace(log.Bytes()), &tr); err != nil {
		t.Fatalf("time printed %q: %v", log.String(), err)
	}
	if tr.StudentStepMS <= 0 || tr.GIDStepMS <= 0 || tr.TeacherForwardMS <= 0 || tr.Figures["gidedge_cuda_memory_peak_bytes"] <= 0 {
		t.Fatalf("time: %+v", tr)
	}
	if !strings.Contains(tr.Describe, "simulator") {
		t.Fatalf("describe %q", tr.Describe)
	}
}
