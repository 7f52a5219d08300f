//go:build cgo

package cuda_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/sim/simtest"
)

// Each fault runs in a child process (the CUDA libraries load once per
// process) against the simulator, told to fail through GIDEDGE_CUDASIM_*.
// The child checks the backend's error: matched by backend.ErrDevice (for
// failures while running) and by the driver's sentinel, naming the
// library, the call and what to do. The parent checks that the child
// finished without crashing.

// backendFault is a simtest.Fault: the simulator libraries Libs in the folder (nil:
// all), the failure asked of it through Env, the child's Check.
type backendFault struct {
	Name  string
	Env   []string
	Libs  []string
	Check func(t *testing.T, dir string)
}

func openIn(dir string) (*cuda.Backend, error) {
	return cuda.Open(cuda.Options{Libraries: driver.Config{Dirs: []string{dir}, Exclusive: true}})
}

func mustOpenIn(t *testing.T, dir string) *cuda.Backend {
	t.Helper()
	b, err := openIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantError fails unless err matches every sentinel and mentions every
// part.
func wantError(t *testing.T, err error, sentinels []error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			t.Errorf("error %v does not match %v", err, s)
		}
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}

// panicOf runs fn and returns the error it panicked with.
func panicOf(t *testing.T, fn func()) (err error) {
	t.Helper()
	defer func() {
		r := recover()
		e, ok := r.(*backend.Error)
		if !ok {
			t.Fatalf("panicked with %T %v, want a *backend.Error", r, r)
		}
		err = e
	}()
	fn()
	return nil
}

var backendFaults = []backendFault{
	{"no driver", nil, []string{}, func(t *testing.T, dir string) {
		_, err := openIn(dir)
		wantError(t, err, []error{driver.ErrUnavailable}, "libcuda.so.1", "not found in "+dir, "install the NVIDIA driver")
	}},
	{"driver too old", []string{"GIDEDGE_CUDASIM_DRIVER_VERSION=11080"}, nil, func(t *testing.T, dir string) {
		_, err := openIn(dir)
		wantError(t, err, []error{driver.ErrDriverTooOld}, "cuDriverGetVersion", "CUDA 11.8", "CUDA 12.0 or newer")
	}},
	{"no cuBLAS", nil, []string{"libcuda.so.1"}, func(t *testing.T, dir string) {
		_, err := openIn(dir)
		wantError(t, err, []error{driver.ErrUnavailable}, "libcublas.so.13", "not found in "+dir, "pip install nvidia-cublas")
	}},
	{"no cuDNN", nil, []string{"libcuda.so.1", "libcublasLt.so.13", "libcublas.so.13"}, func(t *testing.T, dir string) {
		b := mustOpenIn(t, dir)
		if !strings.Contains(b.Describe(), "im2col + cuBLAS (cuDNN not installed)") {
			t.Fatalf("Describe %q does not say convolutions run without cuDNN", b.Describe())
		}
	}},
	{"out of memory", []string{"GIDEDGE_CUDASIM_MEMORY=4194304"}, nil, func(t *testing.T, dir string) {
		b := mustOpenIn(t, dir)
		err := panicOf(t, func() { b.Alloc(backend.Float32, 2<<20) })
		wantError(t, err, []error{backend.ErrDevice, driver.ErrOutOfMemory}, "backend: cuda: Alloc", "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY", "smaller --batch")
		// The backend is still usable.
		x := b.Alloc(backend.Float32, 4)
		b.Fill(x, 1)
		got := make([]float32, 4)
		b.ToHost(got, x)
		if got[3] != 1 {
			t.Fatalf("after the failed allocation: %v", got)
		}
	}},
	{"launch refused", []string{"GIDEDGE_CUDASIM_FAIL_LAUNCH=gidedge_unary"}, nil, func(t *testing.T, dir string) {
		b := mustOpenIn(t, dir)
		x := b.Alloc(backend.Float32, 8)
		b.Fill(x, -1)
		err := panicOf(t, func() { b.Unary(backend.UnaryArgs{Op: backend.UnaryReLU, N: 8, X: x, Y: x}) })
		wantError(t, err, []error{backend.ErrDevice, driver.ErrLaunchFailed}, "backend: cuda: Unary", "cuLaunchKernel (gidedge_unary)", "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES")
		if err := b.Sync(); err != nil {
			t.Fatalf("a refused launch breaks nothing: %v", err)
		}
	}},
	{"kernel fault", []string{"GIDEDGE_CUDASIM_FAULT=gidedge_unary@2"}, nil, func(t *testing.T, dir string) {
		b := mustOpenIn(t, dir)
		x := b.Alloc(backend.Float32, 8)
		b.Fill(x, -1)
		for range 2 { // the second launch faults, on the device
			b.Unary(backend.UnaryArgs{Op: backend.UnaryReLU, N: 8, X: x, Y: x})
		}
		wantError(t, b.Sync(), []error{backend.ErrDevice, driver.ErrLaunchFailed}, "backend: cuda: Sync", "CUDA_ERROR_ILLEGAL_ADDRESS", "resumes from the last checkpoint")
		err := panicOf(t, func() { b.ToHost(make([]float32, 8), x) })
		wantError(t, err, []error{backend.ErrDevice, driver.ErrLaunchFailed}, "backend: cuda: ToHost", "CUDA_ERROR_ILLEGAL_ADDRESS")
	}},
}

// TestBackendFaultHelperProcess runs one fault in a child of
// TestBackendFaults; it does nothing unless that test started it.
func TestBackendFaultHelperProcess(t *testing.T) { simtest.Helper(t, backendFaults) }

func TestBackendFaults(t *testing.T) { simtest.Run(t, backendFaults, "TestBackendFaultHelperProcess") }
