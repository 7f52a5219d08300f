//go:build cgo

package driver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/cuda/sim/simtest"
)

// Each fault runs in a child process of its own (libraries load once per
// process), against the simulator only, with the simulator told to fail
// through GIDEDGE_CUDASIM_*. The child checks the error: which library,
// which call, the status name, the hint, the sentinel; the parent checks
// that the child finished (no crash).

// fault is a simtest.Fault: the simulator libraries Libs in the folder (nil:
// all), the failure asked of it through Env, the child's Check.
type fault struct {
	Name  string
	Env   []string
	Libs  []string
	Check func(t *testing.T, dir string)
}

// wantErr fails unless err matches sentinel and mentions every part.
func wantErr(t *testing.T, err error, sentinel error, parts ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v does not match %v", err, sentinel)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}

func openSim(t *testing.T, dir string) *driver.Context {
	t.Helper()
	d, err := driver.Open(driver.Config{Dirs: []string{dir}, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Context(0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var faults = []fault{
	{"no driver", nil, []string{}, func(t *testing.T, dir string) {
		_, err := driver.Open(driver.Config{Dirs: []string{dir}, Exclusive: true})
		wantErr(t, err, driver.ErrUnavailable, "libcuda.so.1", "dlopen", "not found in "+dir, "install the NVIDIA driver")
	}},
	{"no GPU", []string{"GIDEDGE_CUDASIM_DEVICES=0"}, nil, func(t *testing.T, dir string) {
		_, err := driver.Open(driver.Config{Dirs: []string{dir}, Exclusive: true})
		wantErr(t, err, driver.ErrNoDevice, "libcuda.so.1: cuInit failed with CUDA_ERROR_NO_DEVICE (100)", "nvidia-smi", "CUDA_VISIBLE_DEVICES")
	}},
	{"driver too old", []string{"GIDEDGE_CUDASIM_DRIVER_VERSION=11080"}, nil, func(t *testing.T, dir string) {
		_, err := driver.Open(driver.Config{Dirs: []string{dir}, Exclusive: true})
		wantErr(t, err, driver.ErrDriverTooOld, "cuDriverGetVersion", "CUDA 11.8", "CUDA 12.0 or newer")
	}},
	{"GPU too old", []string{"GIDEDGE_CUDASIM_COMPUTE=7.5"}, nil, func(t *testing.T, dir string) {
		d, err := driver.Open(driver.Config{Dirs: []string{dir}, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Context(0)
		wantErr(t, err, driver.ErrUnavailable, "compute capability 7.5", "8.0 or newer", "--device cpu")
	}},
	{"no such device", nil, nil, func(t *testing.T, dir string) {
		d, err := driver.Open(driver.Config{Dirs: []string{dir}, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Context(3)
		wantErr(t, err, driver.ErrNoDevice, "device 3 of 1")
	}},
	{"no cuBLAS", nil, []string{"libcuda.so.1"}, func(t *testing.T, dir string) {
		c := openSim(t, dir)
		_, err := c.BLAS()
		wantErr(t, err, driver.ErrUnavailable, "libcublas.so.13", "libcublas.so.13 or libcublas.so.12 not found in "+dir, "pip install nvidia-cublas")
		_, err = c.DNN(driver.NewAllocator(c))
		wantErr(t, err, driver.ErrUnavailable, "libcudnn.so.9 not found", "nvidia-cudnn-cu13")
	}},
	{"cuBLAS without cuBLASLt", nil, []string{"libcuda.so.1", "libcublas.so.13"}, func(t *testing.T, dir string) {
		_, err := openSim(t, dir).BLAS()
		wantErr(t, err, driver.ErrUnavailable, "found in "+dir+" but could not be loaded", "libcublasLt.so.13", "repair or reinstall")
	}},
	{"out of memory", []string{"GIDEDGE_CUDASIM_MEMORY=1048576"}, nil, func(t *testing.T, dir string) {
		c := openSim(t, dir)
		a := driver.NewAllocator(c)
		b, err := a.Alloc(600 << 10)
		if err != nil {
			t.Fatal(err)
		}
		a.Free(b) // cached, still held from the driver
		if _, err := a.Alloc(700 << 10); err != nil {
			t.Fatalf("the allocator should return its cache and retry: %v", err)
		}
		if st := a.Stats(); st.Trims != 1 || st.CachedBytes != 0 {
			t.Fatalf("stats after the retry: %+v", st)
		}
		_, err = a.Alloc(2 << 20)
		wantErr(t, err, driver.ErrOutOfMemory, "cuMemAlloc_v2", "CUDA_ERROR_OUT_OF_MEMORY (2)", "2.0 MiB requested", "already in use by gidedge", "smaller --batch")
	}},
	{"launch refused", []string{"GIDEDGE_CUDASIM_FAIL_LAUNCH=gidedge_fill"}, nil, func(t *testing.T, dir string) {
		c := openSim(t, dir)
		set, s, p := launchSetup(t, c)
		err := set.Launch(s, "gidedge_fill", kernels.Elementwise(4), driver.Pointer(p), driver.Float32(1), driver.Int32(4))
		wantErr(t, err, driver.ErrLaunchFailed, "cuLaunchKernel (gidedge_fill) failed with CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (701)")
		// Nothing is broken: the next launch works.
		if err := set.Launch(s, "gidedge_copy", kernels.Elementwise(4), driver.Pointer(p), driver.Pointer(p), driver.Float32(0), driver.Int32(4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Synchronize(); err != nil {
			t.Fatal(err)
		}
	}},
	{"kernel fault", []string{"GIDEDGE_CUDASIM_FAULT=gidedge_fill"}, nil, func(t *testing.T, dir string) {
		c := openSim(t, dir)
		set, s, p := launchSetup(t, c)
		if err := set.Launch(s, "gidedge_fill", kernels.Elementwise(4), driver.Pointer(p), driver.Float32(1), driver.Int32(4)); err != nil {
			t.Fatalf("the launch itself succeeds; the fault shows at the next synchronisation: %v", err)
		}
		err := s.Synchronize()
		wantErr(t, err, driver.ErrLaunchFailed, "cuStreamSynchronize failed with CUDA_ERROR_ILLEGAL_ADDRESS (700)", "context is now unusable", "resumes from the last checkpoint")
		// The context stays broken, and says so, without crashing.
		_, err = c.Alloc(16)
		wantErr(t, err, driver.ErrLaunchFailed, "cuMemAlloc_v2", "CUDA_ERROR_ILLEGAL_ADDRESS")
	}},
	{"GEMM outside memory", nil, nil, func(t *testing.T, dir string) {
		c := openSim(t, dir)
		_, s, p := launchSetup(t, c)
		blas, err := c.BLAS()
		if err != nil {
			t.Fatal(err)
		}
		if err := blas.SetStream(s); err != nil {
			t.Fatal(err)
		}
		// A 4×4 GEMM on 16 bytes of memory: Go cannot know the
		// allocation's size; the device faults.
		if err := blas.Sgemm(driver.Gemm{M: 4, N: 4, K: 4, A: p, B: p, C: p, LDA: 4, LDB: 4, LDC: 4, Alpha: 1}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.Synchronize(), driver.ErrLaunchFailed, "CUDA_ERROR_ILLEGAL_ADDRESS")
	}},
}

func launchSetup(t *testing.T, c *driver.Context) (*kernels.Set, *driver.Stream, driver.DevicePtr) {
	t.Helper()
	set, err := kernels.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	return set, s, p
}

// TestFaultHelperProcess runs one fault in a child of TestFaults; it does
// nothing unless TestFaults started it.
func TestFaultHelperProcess(t *testing.T) { simtest.Helper(t, faults) }

func TestFaults(t *testing.T) { simtest.Run(t, faults, "TestFaultHelperProcess") }
