package kernels_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/cuda/sim"
)

// cudaDevice runs kernels through the driver package and the embedded PTX:
// on the simulator, or on a GPU when GIDEDGE_CUDA_LIBS names real
// libraries.
type cudaDevice struct {
	label  string
	ctx    *driver.Context
	stream *driver.Stream
	set    *kernels.Set
}

var (
	cudaOnce sync.Once
	cudaDev  *cudaDevice
	cudaErr  error
)

func openCUDA() (*cudaDevice, error) {
	cudaOnce.Do(func() {
		cfg, simulated, err := sim.TestConfig()
		if err != nil {
			cudaErr = err
			return
		}
		d, err := driver.Open(cfg)
		if err != nil {
			cudaErr = err
			return
		}
		ctx, err := d.Context(0)
		if err != nil {
			cudaErr = err
			return
		}
		s, err := ctx.NewStream()
		if err != nil {
			cudaErr = err
			return
		}
		set, err := kernels.Load(ctx)
		if err != nil {
			cudaErr = err
			return
		}
		label := "cuda"
		if simulated || strings.Contains(ctx.Device().Name, "simulator") {
			label = "sim"
		}
		cudaDev = &cudaDevice{label: label, ctx: ctx, stream: s, set: set}
	})
	return cudaDev, cudaErr
}

// devices are the emulation and a CUDA driver (the simulator unless
// GIDEDGE_CUDA_LIBS names real libraries).
func devices(t *testing.T) []device {
	d, err := openCUDA()
	if err != nil {
		t.Fatalf("CUDA device for the kernel tests: %v", err)
	}
	return []device{emuDevice{}, d}
}

func (d *cudaDevice) name() string { return d.label }

func (d *cudaDevice) alloc(t *testing.T, bytes int) driver.DevicePtr {
	p, err := d.ctx.Alloc(max(bytes, 4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.ctx.Free(p); err != nil {
			t.Error(err)
		}
	})
	return p
}

func (d *cudaDevice) put(t *testing.T, xs []float32) driver.DevicePtr {
	p := d.alloc(t, 4*len(xs))
	if err := driver.CopyToDevice(d.stream, p, xs); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *cudaDevice) putInts(t *testing.T, xs []int32) driver.DevicePtr {
	p := d.alloc(t, 4*len(xs))
	if err := driver.CopyToDevice(d.stream, p, xs); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *cudaDevice) get(t *testing.T, p driver.DevicePtr, n int) []float32 {
	out := make([]float32, n)
	if err := driver.CopyFromDevice(d.stream, out, p); err != nil {
		t.Fatal(err)
	}
	return out
}

func (d *cudaDevice) getInts(t *testing.T, p driver.DevicePtr, n int) []int32 {
	out := make([]int32, n)
	if err := driver.CopyFromDevice(d.stream, out, p); err != nil {
		t.Fatal(err)
	}
	return out
}

func (d *cudaDevice) launch(name string, cfg driver.LaunchConfig, args ...driver.Arg) error {
	return d.set.Launch(d.stream, name, cfg, args...)
}
