package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/distill"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/checkpoint"
	"github.com/gidedge/gidedge/engine/cuda/sim"
	"github.com/gidedge/gidedge/engine/devices"
	"github.com/gidedge/gidedge/train"
)

// The CUDA path of train and distill, end to end on the driver simulator
// (the same dlopen path as a GPU; kernels emulated on the CPU): tiny
// shapes, a few steps.

// simulatorLibs builds the simulator and points the cuda device at it.
func simulatorLibs(t *testing.T) string {
	t.Helper()
	dir, err := sim.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIDEDGE_CUDA_LIBS", dir)
	return dir
}

// restoreDevice puts the default device back after a test that selects one.
func restoreDevice(t *testing.T) {
	t.Cleanup(func() {
		if _, err := backend.Use(backend.DefaultName()); err != nil {
			t.Error(err)
		}
	})
}

// gidedge runs the command line in this process.
func gidedge(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := NewRoot(&out, &out)
	root.SetArgs(args)
	root.SetContext(context.Background())
	if err := run(root); err != nil {
		t.Fatalf("gidedge %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func tinyData(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "synth")
	if _, err := synth.Generate(context.Background(), data, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2}); err != nil {
		t.Fatal(err)
	}
	return data
}

// modelTensors reads a checkpoint's model tensors (optimizer state and
// metadata aside).
func modelTensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	tensors, _, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, tensor := range tensors {
		if strings.HasPrefix(name, "model.") {
			out[name] = tensor.ToHost()
		}
	}
	return out
}

// trainLosses reads the training losses a run logged.
func trainLosses(t *testing.T, run string) []float64 {
	t.Helper()
	recs, err := train.ReadRecords(filepath.Join(run, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, r := range recs {
		if r.Type == train.RecordTrain {
			out = append(out, r.Loss)
		}
	}
	return out
}

// TestCUDATrainDistill trains a teacher and distils a student with
// --device cuda, resumes an interrupted run exactly on the same device and
// continues a GPU run on the CPU.
func TestCUDATrainDistill(t *testing.T) {
	simulatorLibs(t)
	restoreDevice(t)
	data := tinyData(t)
	teacher := filepath.Join(t.TempDir(), "teacher")
	out := gidedge(t, "train", "--device", "cuda", "--model", "retinanet-tiny", "--data", data, "--out", teacher,
		"--val-split", "-", "--epochs", "2", "--batch", "2", "--seed", "1", "--quiet")
	for _, want := range []string{"device cuda: gidedge CUDA simulator (not a GPU)", "gidedge_cuda_memory_peak_bytes=", "checkpoints: " + teacher} {
		if !strings.Contains(out, want) {
			t.Fatalf("train output lacks %q:\n%s", want, out)
		}
	}

	// The same run on the CPU logs the same losses, to 2e-3 relative: the
	// CPU's Winograd and fused batch-norm kernels round differently from
	// the simulator's direct ones (each kernel agrees to its conformance
	// tolerance), and AdamW's first updates, close to lr·sign(g), turn
	// differences in tiny gradients into full-size steps.
	cpuTeacher := filepath.Join(t.TempDir(), "teacher-cpu")
	gidedge(t, "train", "--device", "cpu", "--model", "retinanet-tiny", "--data", data, "--out", cpuTeacher,
		"--val-split", "-", "--epochs", "2", "--batch", "2", "--seed", "1", "--quiet")
	gpuLoss, cpuLoss := trainLosses(t, teacher), trainLosses(t, cpuTeacher)
	if len(gpuLoss) == 0 || len(gpuLoss) != len(cpuLoss) {
		t.Fatalf("%d loss records on cuda, %d on cpu", len(gpuLoss), len(cpuLoss))
	}
	for i, l := range gpuLoss {
		if math.Abs(l-cpuLoss[i]) > 2e-3*math.Abs(cpuLoss[i]) {
			t.Fatalf("loss record %d: %v on cuda, %v on cpu", i, l, cpuLoss[i])
		}
	}

	gid := filepath.Join(t.TempDir(), "gid")
	distillArgs := []string{"distill", "--device", "cuda", "--teacher", filepath.Join(teacher, train.LastFile), "--student", "retinanet-tiny",
		"--data", data, "--out", gid, "--val-split", "train", "--epochs", "2", "--batch", "2", "--seed", "1", "--topk", "5", "--quiet"}
	out = gidedge(t, distillArgs...)
	for _, want := range []string{"GID [feature", "final train: AP", "best.safetensors", "device cuda"} {
		if !strings.Contains(out, want) {
			t.Fatalf("distill output lacks %q:\n%s", want, out)
		}
	}
	var sum train.Summary
	raw, err := os.ReadFile(filepath.Join(gid, train.SummaryFile))
	if err != nil || json.Unmarshal(raw, &sum) != nil || sum.Device != "cuda" || sum.Steps != 8 {
		t.Fatalf("summary.json: %+v, %v", sum, err)
	}

	// Exact resume on the same device: stop after 2 steps, resume, and
	// get the uninterrupted run's weights bit for bit.
	stopped := filepath.Join(t.TempDir(), "stopped")
	o := distillOptions{Teacher: filepath.Join(teacher, train.LastFile), Student: "retinanet-tiny", Method: distill.DefaultOptions(),
		runFlags: runFlags{Run: train.Options{Data: data, Out: stopped, ValSplit: "train", Epochs: 2, Batch: 2, Seed: 1, StopAfter: 2}, Quiet: true}}
	o.Method.TopK = 5
	var log bytes.Buffer
	if _, err := devices.Select("cuda"); err != nil {
		t.Fatal(err)
	}
	if err := runDistill(context.Background(), o, &log, &log); err != nil {
		t.Fatalf("distill stopped after 2 steps: %v\n%s", err, log.String())
	}
	gidedge(t, "distill", "--device", "cuda", "--out", stopped, "--resume", "--quiet")
	want, got := modelTensors(t, filepath.Join(gid, train.LastFile)), modelTensors(t, filepath.Join(stopped, train.LastFile))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d and %d model tensors", len(want), len(got))
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Fatalf("%s differs after an interrupted and resumed run on the same device", name)
		}
	}

	// A run stopped on the GPU continues on the CPU, to nearly the same
	// weights.
	cross := filepath.Join(t.TempDir(), "cross")
	o.Run.Out = cross
	if _, err := devices.Select("cuda"); err != nil {
		t.Fatal(err)
	}
	if err := runDistill(context.Background(), o, &log, &log); err != nil {
		t.Fatalf("distill stopped after 2 steps: %v\n%s", err, log.String())
	}
	out = gidedge(t, "distill", "--device", "cpu", "--out", cross, "--resume", "--quiet")
	if !strings.Contains(out, "resuming at epoch 1 step 2") || !strings.Contains(out, "device cpu") {
		t.Fatalf("resume on the CPU:\n%s", out)
	}
	cpuWeights := modelTensors(t, filepath.Join(cross, train.LastFile))
	for name, w := range want {
		for i, v := range cpuWeights[name] {
			if math.Abs(float64(v-w[i])) > 1e-3*(1+math.Abs(float64(w[i]))) {
				t.Fatalf("%s[%d] is %v after continuing on the CPU, %v on the GPU", name, i, v, w[i])
			}
		}
	}
}

// TestCUDAONNXTeacherNeedsGPUBuild: an ONNX teacher under --device cuda
// needs ONNX Runtime's CUDA provider; the CPU-only library setup installs
// lacks it, and the error says what to install or to use the checkpoint.
func TestCUDAONNXTeacherNeedsGPUBuild(t *testing.T) {
	simulatorLibs(t)
	restoreDevice(t)
	data := tinyData(t)
	teacher := filepath.Join(t.TempDir(), "teacher")
	gidedge(t, "train", "--model", "retinanet-tiny", "--data", data, "--out", teacher, "--val-split", "-", "--epochs", "1", "--batch", "2", "--seed", "1", "--quiet")
	onnx := filepath.Join(t.TempDir(), "teacher.onnx")
	gidedge(t, "export", "--checkpoint", filepath.Join(teacher, train.LastFile), "--out", onnx, "--outputs", "raw", "--with-features")
	var out bytes.Buffer
	root := NewRoot(&out, &out)
	root.SetArgs([]string{"distill", "--device", "cuda", "--teacher", onnx, "--student", "retinanet-tiny", "--data", data,
		"--out", filepath.Join(t.TempDir(), "gid"), "--epochs", "1", "--batch", "2", "--quiet"})
	err := run(root)
	for _, want := range []string{"CUDA execution provider", "execution provider unavailable", "GIDEDGE_ORT_LIB", "onnxruntime-linux-x64-gpu", "teacher's checkpoint (.safetensors)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("distill with an ONNX teacher on cuda: error %v lacks %q", err, want)
		}
	}
}

// TestCUDAHelperProcess runs the command line of GIDEDGE_TEST_CUDA_ARGS
// (JSON) in a child of TestCUDAErrors, so each case loads the CUDA
// libraries afresh, and exits 3 on an error. It does nothing unless that
// test started it.
func TestCUDAHelperProcess(t *testing.T) {
	raw := os.Getenv("GIDEDGE_TEST_CUDA_ARGS")
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	root := NewRoot(os.Stdout, os.Stderr)
	root.SetArgs(args)
	if err := run(root); err != nil {
		fmt.Fprintln(os.Stderr, "gidedge:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// gidedgeChild runs the command line in a child process with env added and
// returns its output; it fails the test unless the command fails cleanly:
// an error message, exit status 3, no crash.
func gidedgeChild(t *testing.T, env []string, args ...string) string {
	t.Helper()
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCUDAHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GIDEDGE_TEST_CUDA_ARGS="+string(raw))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("gidedge %s: %v, want a clean failure (exit status 3)\n%s", strings.Join(args, " "), err, out)
	}
	for _, crash := range []string{"panic:", "goroutine ", "SIGSEGV", "fatal error"} {
		if strings.Contains(string(out), crash) {
			t.Fatalf("gidedge %s crashed:\n%s", strings.Join(args, " "), out)
		}
	}
	return string(out)
}

// libsWith links some of the simulator's libraries into a folder of their
// own.
func libsWith(t *testing.T, simDir string, libs ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := sim.LinkLibraries(dir, simDir, libs...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCUDAErrors runs train --device cuda into every failure the issue
// names — no driver, an old driver, no cuBLAS, out of memory, a refused
// launch, a kernel fault mid-run and one found while saving — each in a
// child process: a clear error naming the library, the call and what to
// do, no crash, and last.safetensors as it was, resumable on the CPU.
func TestCUDAErrors(t *testing.T) {
	simDir := simulatorLibs(t)
	restoreDevice(t)
	data := tinyData(t)
	trainArgs := func(out string) []string {
		return []string{"train", "--device", "cuda", "--model", "retinanet-tiny", "--data", data, "--out", out,
			"--val-split", "-", "--epochs", "1", "--batch", "2", "--seed", "1", "--quiet"}
	}
	for _, c := range []struct {
		name string
		env  []string
		want []string
	}{
		{"no driver", []string{"GIDEDGE_CUDA_LIBS=" + t.TempDir()}, []string{`device "cuda" cannot be opened`, "libcuda.so.1", "not found", "install the NVIDIA driver"}},
		{"driver too old", []string{"GIDEDGE_CUDASIM_DRIVER_VERSION=11080"}, []string{"cuDriverGetVersion", "CUDA 11.8", "CUDA 12.0 or newer"}},
		{"no cuBLAS", []string{"GIDEDGE_CUDA_LIBS=" + libsWith(t, simDir, "libcuda.so.1")}, []string{"libcublas.so.13", "not found", "pip install nvidia-cublas"}},
		{"out of memory", []string{"GIDEDGE_CUDASIM_MEMORY=2097152"}, []string{"backend: cuda", "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY", "smaller --batch"}},
		{"launch refused", []string{"GIDEDGE_CUDASIM_FAIL_LAUNCH=gidedge_adamw"}, []string{"backend: cuda: AdamW", "cuLaunchKernel (gidedge_adamw)", "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := gidedgeChild(t, c.env, trainArgs(filepath.Join(t.TempDir(), "run"))...)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}

	// A run stopped after 3 steps on the GPU, then resumed into faults.
	run := filepath.Join(t.TempDir(), "run")
	if _, err := devices.Select("cuda"); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o := trainOptions{Model: "retinanet-tiny", runFlags: runFlags{Run: train.Options{Data: data, Out: run, ValSplit: "-", Epochs: 2, Batch: 2, Seed: 1, StopAfter: 3, CheckpointEvery: 1}, Quiet: true}}
	if err := runTrain(context.Background(), o, &log, &log); err != nil {
		t.Fatalf("train: %v\n%s", err, log.String())
	}
	last := filepath.Join(run, train.LastFile)
	saved, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, fault string
	}{
		{"fault in a step", "gidedge_unary@1"},          // found at the step's loss read
		{"fault found while saving", "gidedge_adamw@1"}, // the step's last kernels: found by the save
	} {
		t.Run(c.name, func(t *testing.T) {
			out := gidedgeChild(t, []string{"GIDEDGE_CUDASIM_FAULT=" + c.fault}, "train", "--device", "cuda", "--out", run, "--resume", "--save-every", "1", "--quiet")
			for _, w := range []string{"backend: cuda", "CUDA_ERROR_ILLEGAL_ADDRESS", "resumes from the last checkpoint"} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if now, err := os.ReadFile(last); err != nil || !bytes.Equal(now, saved) {
				t.Fatalf("last.safetensors changed (%v)", err)
			}
			entries, _ := os.ReadDir(run)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp") {
					t.Fatalf("a temporary checkpoint was left behind: %s", e.Name())
				}
			}
		})
	}
	out := gidedge(t, "train", "--device", "cpu", "--out", run, "--resume", "--quiet")
	if !strings.Contains(out, "resuming at epoch 1 step 3") || !strings.Contains(out, "train: done: 8 steps") {
		t.Fatalf("resume on the CPU after the faults:\n%s", out)
	}
}
