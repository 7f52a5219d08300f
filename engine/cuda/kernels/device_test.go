package kernels_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/emu"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

// device runs kernels on some implementation: the emulation directly, or
// a CUDA driver (the simulator, or a real GPU when GIDEDGE_CUDA_LIBS says
// so). Every kernel test runs on each device of devices(t).
type device interface {
	name() string
	put(t *testing.T, xs []float32) driver.DevicePtr
	putInts(t *testing.T, xs []int32) driver.DevicePtr
	get(t *testing.T, p driver.DevicePtr, n int) []float32
	getInts(t *testing.T, p driver.DevicePtr, n int) []int32
	launch(name string, cfg driver.LaunchConfig, args ...driver.Arg) error
}

// emuDevice runs kernels through package emu.
type emuDevice struct{}

func (emuDevice) name() string { return "emu" }

func emuAlloc(t *testing.T, bytes int) driver.DevicePtr {
	p, err := emu.Alloc(max(bytes, 4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Free(p) })
	return p
}

func (emuDevice) put(t *testing.T, xs []float32) driver.DevicePtr {
	p := emuAlloc(t, 4*len(xs))
	emu.Write(p, xs)
	return p
}

func (emuDevice) putInts(t *testing.T, xs []int32) driver.DevicePtr {
	p := emuAlloc(t, 4*len(xs))
	emu.Write(p, xs)
	return p
}

func (emuDevice) get(t *testing.T, p driver.DevicePtr, n int) []float32 {
	out := make([]float32, n)
	emu.Read(out, p)
	return out
}

func (emuDevice) getInts(t *testing.T, p driver.DevicePtr, n int) []int32 {
	out := make([]int32, n)
	emu.Read(out, p)
	return out
}

func (emuDevice) launch(name string, cfg driver.LaunchConfig, args ...driver.Arg) error {
	return emu.Launch(name, cfg, args...)
}

// forEachDevice runs fn as a subtest on every device.
func forEachDevice(t *testing.T, fn func(t *testing.T, d device)) {
	t.Helper()
	for _, d := range devices(t) {
		t.Run(d.name(), func(t *testing.T) { fn(t, d) })
	}
}

// run launches and fails the test on error.
func run(t *testing.T, d device, name string, cfg driver.LaunchConfig, args ...driver.Arg) {
	t.Helper()
	if err := d.launch(name, cfg, args...); err != nil {
		t.Fatalf("%s on %s: %v", name, d.name(), err)
	}
}

// ptr, i32 and f32 shorten argument lists.
func ptr(p driver.DevicePtr) driver.Arg { return driver.Pointer(p) }
func i32(v int) driver.Arg              { return driver.Int32(int32(v)) }
func f32(v float32) driver.Arg          { return driver.Float32(v) }

var null = driver.Pointer(0)

func elementwise(n int) driver.LaunchConfig { return kernels.Elementwise(n) }

// small caps grids so that grid-stride loops take several turns even on
// the tiny sizes the tests use.
func small(n int) driver.LaunchConfig {
	cfg := kernels.Elementwise(n)
	cfg.Grid.X = min(cfg.Grid.X, 2)
	cfg.Block.X = 64
	return cfg
}

func randn(rng *rand.Rand, n int, std float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64()) * std
	}
	return out
}

func randu(rng *rand.Rand, n int, lo, hi float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = lo + (hi-lo)*rng.Float32()
	}
	return out
}

// near fails unless got and want agree within atol + rtol·|want| everywhere.
func near(t *testing.T, what string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if math.Abs(g-w) > atol+rtol*math.Abs(w) || math.IsNaN(g) != math.IsNaN(w) {
			if bad < 5 {
				t.Errorf("%s[%d] = %g, want %g", what, i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}
