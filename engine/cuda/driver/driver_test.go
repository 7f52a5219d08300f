//go:build cgo

package driver_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/cuda/sim"
)

// These tests run on the driver simulator, or on a GPU when
// GIDEDGE_CUDA_LIBS names real libraries (benchmarks/gpu_check.sh); the
// fault-injection tests in faults_test.go always use the simulator.

var (
	ctxOnce   sync.Once
	testCtx   *driver.Context
	testErr   error
	simulated bool
)

func context(t *testing.T) *driver.Context {
	t.Helper()
	ctxOnce.Do(func() {
		var cfg driver.Config
		cfg, simulated, testErr = sim.TestConfig()
		if testErr != nil {
			return
		}
		var d *driver.Driver
		if d, testErr = driver.Open(cfg); testErr != nil {
			return
		}
		testCtx, testErr = d.Context(0)
	})
	if testErr != nil {
		t.Fatal(testErr)
	}
	return testCtx
}

func stream(t *testing.T, c *driver.Context) *driver.Stream {
	t.Helper()
	s, err := c.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func alloc(t *testing.T, c *driver.Context, bytes int) driver.DevicePtr {
	t.Helper()
	p, err := c.Alloc(bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Free(p); err != nil {
			t.Error(err)
		}
	})
	return p
}

func TestDeviceAndVersions(t *testing.T) {
	c := context(t)
	info := c.Device()
	if info.ComputeCapability() < driver.MinComputeCapability || info.TotalMemoryBytes == 0 || info.Multiprocessors == 0 || info.Name == "" {
		t.Fatalf("device %+v", info)
	}
	if simulated && !strings.Contains(info.Name, "simulator") {
		t.Fatalf("the simulator must say so in its device name: %q", info.Name)
	}
	if v := c.Driver().Version(); v < driver.MinDriverVersion {
		t.Fatalf("driver version %d", v)
	}
	devs, err := c.Driver().Devices()
	if err != nil || len(devs) == 0 || devs[0].Name != info.Name {
		t.Fatalf("Devices() = %v, %v", devs, err)
	}
	free, total, err := c.MemInfo()
	if err != nil || free == 0 || free > total {
		t.Fatalf("MemInfo = %d, %d, %v", free, total, err)
	}
	t.Logf("%s; CUDA %d", info, c.Driver().Version())
}

func TestCopiesRoundTrip(t *testing.T) {
	c := context(t)
	s := stream(t, c)
	src := make([]float32, 1000)
	for i := range src {
		src[i] = float32(i) * 0.5
	}
	a, b := alloc(t, c, 4000), alloc(t, c, 4000)
	if err := driver.CopyToDevice(s, a, src); err != nil {
		t.Fatal(err)
	}
	if err := s.CopyDeviceToDevice(b, a, 4000); err != nil {
		t.Fatal(err)
	}
	if err := s.Fill32(a+400, math.Float32bits(-1), 10); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 1000)
	if err := driver.CopyFromDevice(s, got, b); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != src[i] {
			t.Fatalf("device-to-device copy: [%d] = %v, want %v", i, got[i], src[i])
		}
	}
	if err := driver.CopyFromDevice(s, got, a); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 110; i++ {
		if got[i] != -1 {
			t.Fatalf("Fill32: [%d] = %v", i, got[i])
		}
	}
	if got[99] != src[99] || got[110] != src[110] {
		t.Fatal("Fill32 wrote outside its range")
	}
	ints := []int32{3, -4, 5}
	if err := driver.CopyToDevice(s, a, ints); err != nil {
		t.Fatal(err)
	}
	back := make([]int32, 3)
	if err := driver.CopyFromDevice(s, back, a); err != nil || back[1] != -4 {
		t.Fatalf("int32 round trip %v, %v", back, err)
	}
}

// TestPinnedAsyncCopiesOverlap: uploads from pinned memory on one stream,
// a kernel on another ordered after them by an event, and a pinned
// download read after synchronising.
func TestPinnedAsyncCopiesOverlap(t *testing.T) {
	c := context(t)
	set, err := kernels.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	loader, compute := stream(t, c), stream(t, c)
	const n = 4096
	host, err := c.AllocHost(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Free()
	for i, v := range host.Float32s() {
		_ = v
		host.Float32s()[i] = float32(i)
	}
	x, y := alloc(t, c, 4*n), alloc(t, c, 4*n)
	if err := loader.UploadAsync(x, host, 0, 4*n); err != nil {
		t.Fatal(err)
	}
	uploaded, err := c.NewEvent(false)
	if err != nil {
		t.Fatal(err)
	}
	defer uploaded.Close()
	if err := uploaded.Record(loader); err != nil {
		t.Fatal(err)
	}
	if err := compute.WaitEvent(uploaded); err != nil {
		t.Fatal(err)
	}
	if err := set.Launch(compute, "gidedge_axpby", kernels.Elementwise(n), driver.Pointer(y), driver.Pointer(x), driver.Float32(2), driver.Float32(0), driver.Int32(n)); err != nil {
		t.Fatal(err)
	}
	if err := compute.DownloadAsync(host, 0, y, 4*n); err != nil {
		t.Fatal(err)
	}
	if err := compute.Synchronize(); err != nil {
		t.Fatal(err)
	}
	for i, v := range host.Float32s() {
		if v != 2*float32(i) {
			t.Fatalf("[%d] = %v, want %v", i, v, 2*float32(i))
		}
	}
	// Spans outside the buffer are refused before any copy.
	if err := loader.UploadAsync(x, host, 4*n-4, 8); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Fatalf("upload past the buffer: %v", err)
	}
}

func TestEventsTime(t *testing.T) {
	c := context(t)
	s := stream(t, c)
	start, err := c.NewEvent(true)
	if err != nil {
		t.Fatal(err)
	}
	defer start.Close()
	end, err := c.NewEvent(true)
	if err != nil {
		t.Fatal(err)
	}
	defer end.Close()
	p := alloc(t, c, 1<<20)
	if err := start.Record(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Fill32(p, 0, 1<<18); err != nil {
		t.Fatal(err)
	}
	if err := end.Record(s); err != nil {
		t.Fatal(err)
	}
	if err := end.Synchronize(); err != nil {
		t.Fatal(err)
	}
	d, err := end.Since(start)
	if err != nil || d < 0 || d > time.Minute {
		t.Fatalf("elapsed %v, %v", d, err)
	}
}

// TestArgumentsCheckedBeforeC: bad arguments are errors naming the call,
// matching ErrInvalidArgument, before anything reaches the driver.
func TestArgumentsCheckedBeforeC(t *testing.T) {
	c := context(t)
	s := stream(t, c)
	set, err := kernels.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	checks := map[string]error{
		"cuMemAlloc_v2":        func() error { _, err := c.Alloc(0); return err }(),
		"cuMemFree_v2":         c.Free(0),
		"cuMemcpyHtoDAsync_v2": driver.CopyToDevice(s, 0, []float32{1}),
		"cuMemcpyDtoHAsync_v2": driver.CopyFromDevice(s, []float32{1}, 0),
		"cuMemsetD32Async":     s.Fill32(2, 0, 1),
		"cuLaunchKernel":       s.Launch(&driver.Function{Name: "x"}, driver.LaunchConfig{Grid: driver.D1(1), Block: driver.D1(2048)}),
		"cuMemAllocHost_v2":    func() error { _, err := c.AllocHost(-1); return err }(),
	}
	for call, err := range checks {
		var e *driver.Error
		if !errors.As(err, &e) || e.Call != call || !errors.Is(err, driver.ErrInvalidArgument) {
			t.Errorf("%s: got %v", call, err)
		}
	}
}

func TestModuleErrorsNameTheProblem(t *testing.T) {
	c := context(t)
	_, err := c.LoadModule("garbage.ptx", []byte("this is not PTX"))
	var e *driver.Error
	if !errors.As(err, &e) || e.Call != "cuModuleLoadDataEx" || !strings.Contains(err.Error(), "garbage.ptx") {
		t.Fatalf("loading garbage: %v", err)
	}
	ptx, err := kernels.PTX("memory")
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.LoadModule("memory.ptx", ptx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Function("gidedge_no_such_kernel")
	if !errors.As(err, &e) || e.Name != "CUDA_ERROR_NOT_FOUND" || !strings.Contains(err.Error(), "gidedge_no_such_kernel in memory.ptx") || !strings.Contains(err.Error(), "make ptx") {
		t.Fatalf("missing kernel: %v", err)
	}
}

func TestAllocatorReusesBlocks(t *testing.T) {
	c := context(t)
	a := driver.NewAllocator(c)
	defer a.Trim()
	b1, err := a.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := a.Alloc(5000)
	if err != nil {
		t.Fatal(err)
	}
	a.Free(b1)
	b3, err := a.Alloc(900) // same 1024-byte class: reused
	if err != nil {
		t.Fatal(err)
	}
	if b3.Ptr != b1.Ptr {
		t.Fatalf("a freed block of the same size class was not reused")
	}
	st := a.Stats()
	if st.DriverAllocs != 2 || st.Reuses != 1 || st.InUseBytes != 1024+5120 || st.CachedBytes != 0 || st.PeakBytes != 1024+5120 {
		t.Fatalf("stats %+v", st)
	}
	a.Free(b2)
	a.Free(b3)
	if st := a.Stats(); st.InUseBytes != 0 || st.CachedBytes != 1024+5120 {
		t.Fatalf("after free: %+v", st)
	}
	if err := a.Trim(); err != nil {
		t.Fatal(err)
	}
	figures := a.Stats().Figures()
	if len(figures) != 6 || figures[0].Name != "gidedge_cuda_memory_in_use_bytes" || a.Stats().CachedBytes != 0 {
		t.Fatalf("figures %v", figures)
	}
}

// gemmRef is C = alpha·op(A)·op(B) + beta·C, row-major, in float64.
func gemmRef(g driver.Gemm, a, b, c []float32) []float32 {
	out := append([]float32(nil), c...)
	for q := 0; q < max(g.Batch, 1); q++ {
		for i := 0; i < g.M; i++ {
			for j := 0; j < g.N; j++ {
				var acc float64
				for p := 0; p < g.K; p++ {
					ai, bi := i*g.LDA+p, p*g.LDB+j
					if g.TransA {
						ai = p*g.LDA + i
					}
					if g.TransB {
						bi = j*g.LDB + p
					}
					av, bv := a[int64(q)*g.StrideA+int64(ai)], b[int64(q)*g.StrideB+int64(bi)]
					acc += float64(av) * float64(bv)
				}
				k := int64(q)*g.StrideC + int64(i*g.LDC+j)
				out[k] = float32(float64(g.Alpha)*acc + float64(g.Beta)*float64(c[k]))
			}
		}
	}
	return out
}

func TestBLASGemm(t *testing.T) {
	c := context(t)
	s := stream(t, c)
	blas, err := c.BLAS()
	if err != nil {
		t.Fatal(err)
	}
	defer blas.Close()
	if err := blas.SetStream(s); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64())
		}
		return out
	}
	const m, n, k = 7, 5, 9
	for _, tf32 := range []bool{false, true} {
		if err := blas.SetTF32(tf32); err != nil {
			t.Fatal(err)
		}
		for _, batch := range []int{1, 3} {
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					g := driver.Gemm{TransA: ta, TransB: tb, M: m, N: n, K: k, Alpha: 1.5, Beta: -0.5, Batch: batch}
					// Padded leading dimensions.
					g.LDA, g.LDB, g.LDC = k+2, n+1, n+3
					aRows, bRows := m, k
					if ta {
						g.LDA, aRows = m+1, k
					}
					if tb {
						g.LDB, bRows = k+3, n
					}
					g.StrideA, g.StrideB, g.StrideC = int64(aRows*g.LDA+5), int64(bRows*g.LDB), int64(m*g.LDC+2)
					av, bv, cv := randn(int(g.StrideA)*batch), randn(int(g.StrideB)*batch), randn(int(g.StrideC)*batch)
					pa, pb, pc := alloc(t, c, 4*len(av)), alloc(t, c, 4*len(bv)), alloc(t, c, 4*len(cv))
					for _, x := range []struct {
						p driver.DevicePtr
						v []float32
					}{{pa, av}, {pb, bv}, {pc, cv}} {
						if err := driver.CopyToDevice(s, x.p, x.v); err != nil {
							t.Fatal(err)
						}
					}
					g.A, g.B, g.C = pa, pb, pc
					if err := blas.Sgemm(g); err != nil {
						t.Fatalf("tf32=%v batch=%d ta=%v tb=%v: %v", tf32, batch, ta, tb, err)
					}
					got := make([]float32, len(cv))
					if err := driver.CopyFromDevice(s, got, pc); err != nil {
						t.Fatal(err)
					}
					want := gemmRef(g, av, bv, cv)
					tol := 1e-4
					if tf32 {
						tol = 2e-2 // 10 mantissa bits
					}
					for i := range want {
						if math.Abs(float64(got[i]-want[i])) > tol*(1+math.Abs(float64(want[i]))) {
							t.Fatalf("tf32=%v batch=%d ta=%v tb=%v: C[%d] = %v, want %v", tf32, batch, ta, tb, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
	// Leading dimensions too small are refused in Go.
	err = blas.Sgemm(driver.Gemm{M: 4, N: 4, K: 4, A: 1, B: 1, C: 1, LDA: 3, LDB: 4, LDC: 4})
	if !errors.Is(err, driver.ErrInvalidArgument) || !strings.Contains(err.Error(), "lda 3 below A's row length 4") {
		t.Fatalf("bad lda: %v", err)
	}
	if v := blas.Version(); v == "" {
		t.Fatal("no cuBLAS version")
	}
}

// TestProbeReport logs what doctor would print: on a GPU machine the run
// log shows every library's path and version.
func TestProbeReport(t *testing.T) {
	context(t)
	cfg, _, err := sim.TestConfig()
	if err != nil {
		t.Fatal(err)
	}
	r := driver.Probe(cfg)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	t.Logf("CUDA %s, driver %q, devices %v", r.CUDA, r.DriverVersion, r.Devices)
	for _, l := range r.Libraries {
		if l.Name != "cuDNN" && l.Name != "NVML" && !l.Found() {
			t.Errorf("%s missing: %v", l.Name, l.Err)
		}
		t.Logf("%-12s %-10s %s %v", l.Name, l.Version, l.Path, l.Err)
	}
}
