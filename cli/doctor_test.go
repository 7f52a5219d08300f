package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/sim"
)

var errProbe = errors.New("probe failed")

func TestDoctorReportsEachMissingLibrary(t *testing.T) {
	checks := []doctorCheck{
		{"Present", true, func() (string, error) { return "1.0", nil }},
		{"LibA", true, func() (string, error) { return "", errProbe }},
		{"LibB", true, func() (string, error) { return "", errProbe }},
		{"Optional", false, func() (string, error) { return "", errProbe }},
	}
	var out bytes.Buffer
	err := runDoctor(context.Background(), doctorOptions{}, &out, checks)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Fatalf("want exit code 2, got %v", err)
	}
	if !strings.Contains(err.Error(), "LibA, LibB") {
		t.Errorf("error %q does not name both missing libraries", err)
	}
	for _, want := range []string{"ok       Present", "MISSING  LibA", "MISSING  LibB", "absent   Optional"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDoctorOnThisMachine(t *testing.T) {
	var out bytes.Buffer
	if err := runDoctor(context.Background(), doctorOptions{}, &out, doctorChecks(doctorOptions{CUDA: driver.DefaultConfig()})); err != nil {
		t.Fatalf("doctor failed on a set-up machine: %v\n%s", err, out.String())
	}
	for _, want := range []string{"OpenBLAS", "ONNX Runtime  1.30.0", "OpenCV        4.6.0", "CUDA driver"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "gidedge ") {
		t.Fatalf("version printed %q", out.String())
	}
}

// TestDoctorHelperProcess is the doctor of TestDoctorReportsCUDA, run in a
// child process so that each case loads the CUDA libraries afresh (they are
// loaded once per process). It does nothing unless that test started it.
func TestDoctorHelperProcess(t *testing.T) {
	dir := os.Getenv("GIDEDGE_TEST_DOCTOR_CUDA_DIR")
	if dir == "" {
		return
	}
	o := doctorOptions{CUDA: driver.Config{Dirs: []string{dir}, Exclusive: true}}
	if err := runDoctor(context.Background(), o, os.Stdout, cudaChecks(driver.Probe(o.CUDA))); err != nil {
		t.Fatal(err)
	}
}

// TestDoctorReportsCUDA runs doctor against the CUDA driver simulator: with
// every library, without cuBLAS and cuDNN, with no GPU, with a driver and a
// GPU too old. Each case names what it found, where, and what to install.
func TestDoctorReportsCUDA(t *testing.T) {
	simDir, err := sim.Build()
	if err != nil {
		t.Fatal(err)
	}
	onlyDriver := t.TempDir()
	if err := sim.LinkLibraries(onlyDriver, simDir, "libcuda.so.1", "libnvidia-ml.so.1"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		dir  string
		env  []string
		want []string
	}{
		{"every library", simDir, nil, []string{
			"ok       CUDA driver   CUDA 13.0, driver simulator (" + simDir + "/libcuda.so.1)",
			"ok       GPU 0         gidedge CUDA simulator (not a GPU), compute capability 9.0",
			"ok       cuBLAS        13.0.0 (" + simDir + "/libcublas.so.13)",
			"ok       cuBLASLt      (" + simDir + "/libcublasLt.so.13)",
			"ok       cuDNN         9.10.0 (" + simDir + "/libcudnn.so.9)",
			"ok       NVML          simulator (" + simDir + "/libnvidia-ml.so.1)",
		}},
		{"no cuBLAS or cuDNN", onlyDriver, nil, []string{
			"ok       CUDA driver   CUDA 13.0",
			"absent   cuBLAS        cuda: libcublas.so.13: dlopen (libcublas.so.13 or libcublas.so.12 not found in " + onlyDriver + ") failed: pip install nvidia-cublas",
			"absent   cuDNN         cuda: libcudnn.so.9: dlopen (libcudnn.so.9 not found in " + onlyDriver + ") failed: optional: pip install nvidia-cudnn-cu13",
		}},
		{"no GPU", simDir, []string{"GIDEDGE_CUDASIM_DEVICES=0"}, []string{
			"absent   CUDA driver   " + simDir + "/libcuda.so.1 loads but fails: cuda: libcuda.so.1: cuInit failed with CUDA_ERROR_NO_DEVICE (100): no usable GPU is visible",
		}},
		{"driver too old", simDir, []string{"GIDEDGE_CUDASIM_DRIVER_VERSION=11080"}, []string{
			"cuDriverGetVersion (driver supports CUDA 11.8) failed: gidedge needs a driver for CUDA 12.0 or newer",
		}},
		{"GPU too old", simDir, []string{"GIDEDGE_CUDASIM_COMPUTE=7.5"}, []string{
			"absent   GPU 0         gidedge CUDA simulator (not a GPU), compute capability 7.5, 4 multiprocessors, 8.0 GiB: gidedge's CUDA kernels need compute capability 8.0 or newer",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDoctorHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "GIDEDGE_TEST_DOCTOR_CUDA_DIR="+c.dir)
			cmd.Env = append(cmd.Env, c.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("doctor failed (CUDA is optional): %v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("report lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
