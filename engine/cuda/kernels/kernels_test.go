package kernels_test

import (
	"encoding/binary"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/emu"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

// TestPTXMatchesSources fails when a .cu or header changed after the PTX
// was built: run make ptx.
func TestPTXMatchesSources(t *testing.T) {
	want := kernels.SourceHash()
	for _, f := range kernels.Files() {
		ptx, err := kernels.PTX(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := kernels.PTXStamp(ptx); got != want {
			t.Errorf("ptx/%s.ptx was built from sources %.12s, the sources are now %.12s: run make ptx", f, got, want)
		}
		if !strings.Contains(string(ptx), ".target sm_80") {
			t.Errorf("ptx/%s.ptx does not target sm_80", f)
		}
	}
	if _, err := kernels.All(); err != nil {
		t.Fatal(err)
	}
}

// TestEmulationMatchesSources fails when the emulation was compiled from
// other kernel sources than the embedded ones (make ptx also refreshes
// emu/sources.h, which makes Go rebuild the emulation).
func TestEmulationMatchesSources(t *testing.T) {
	if got, want := emu.SourceHash(), kernels.SourceHash(); got != want {
		t.Fatalf("emulation built from sources %.12s, the sources are %.12s: run make ptx", got, want)
	}
}

// TestEmulationRegistersEveryKernel: every kernel of the sources is
// emulated, with the parameter sizes the PTX declares.
func TestEmulationRegistersEveryKernel(t *testing.T) {
	all, err := kernels.All()
	if err != nil {
		t.Fatal(err)
	}
	registered := emu.Kernels()
	delete(registered, "gidedge_emu_selftest_divergent") // the emulation's own test kernel
	if len(registered) != len(all) {
		t.Errorf("%d kernels emulated, %d in the sources", len(registered), len(all))
	}
	for _, s := range all {
		sizes, ok := registered[s.Name]
		if !ok {
			t.Errorf("%s is not emulated: add GD_REGISTER(%s) to emu/k_%s.cpp", s.Name, s.Name, s.File)
			continue
		}
		want := make([]int, len(s.Params))
		for i, p := range s.Params {
			want[i] = p.Size
		}
		if !slices.Equal(sizes, want) {
			t.Errorf("%s: emulated parameter sizes %v, PTX %v", s.Name, sizes, want)
		}
	}
}

// TestTypesMatchC compares types.go with types.h as the C compiler sees it.
func TestTypesMatchC(t *testing.T) {
	c := emu.TypesH()
	goValues := map[string]int{
		"GD_BLOCK": kernels.Block, "GD_MAX_RANK": kernels.MaxRank,
		"GD_UNARY_AFFINE": kernels.UnaryAffine, "GD_UNARY_EXP": kernels.UnaryExp, "GD_UNARY_LOG": kernels.UnaryLog,
		"GD_UNARY_SQRT": kernels.UnarySqrt, "GD_UNARY_ABS": kernels.UnaryAbs, "GD_UNARY_RELU": kernels.UnaryReLU,
		"GD_UNARY_LEAKY_RELU": kernels.UnaryLeakyReLU, "GD_UNARY_SIGMOID": kernels.UnarySigmoid, "GD_UNARY_SILU": kernels.UnarySiLU,
		"GD_UNARY_HARDSWISH": kernels.UnaryHardSwish, "GD_UNARY_TANH": kernels.UnaryTanh, "GD_UNARY_POW": kernels.UnaryPow,
		"GD_UNARY_CLAMP": kernels.UnaryClamp, "GD_UNARY_COUNT": kernels.UnaryCount,
		"GD_BINARY_ADD": kernels.BinaryAdd, "GD_BINARY_SUB": kernels.BinarySub, "GD_BINARY_MUL": kernels.BinaryMul,
		"GD_BINARY_DIV": kernels.BinaryDiv, "GD_BINARY_MAX": kernels.BinaryMax, "GD_BINARY_MIN": kernels.BinaryMin,
		"GD_BINARY_COUNT": kernels.BinaryCount,
		"GD_REDUCE_SUM":   kernels.ReduceSum, "GD_REDUCE_MAX": kernels.ReduceMax, "GD_REDUCE_SUMSQ": kernels.ReduceSumSq,
		"GD_REDUCE_COUNT":    kernels.ReduceCount,
		"GD_LOSS_BCE_LOGITS": kernels.LossBCELogits, "GD_LOSS_L1": kernels.LossL1, "GD_LOSS_SMOOTH_L1": kernels.LossSmoothL1,
		"GD_LOSS_MSE": kernels.LossMSE, "GD_LOSS_COUNT": kernels.LossCount,
		"sizeof(gd_layout)": binary.Size(kernels.Layout{}), "sizeof(gd_reduce)": binary.Size(kernels.Reduce{}),
		"sizeof(gd_conv)": binary.Size(kernels.Conv{}), "sizeof(gd_pool)": binary.Size(kernels.Pool{}),
		"sizeof(gd_roi)": binary.Size(kernels.ROI{}),
	}
	if len(goValues) != len(c) {
		t.Fatalf("%d Go values for %d C values", len(goValues), len(c))
	}
	for name, v := range c {
		if goValues[name] != v {
			t.Errorf("%s is %d in C, %d in Go", name, v, goValues[name])
		}
	}
}

// TestCheckRejectsBadLaunches: argument count, kinds, struct types,
// negative ints and the block size of barrier kernels are checked in Go.
func TestCheckRejectsBadLaunches(t *testing.T) {
	var l kernels.Layout
	ok := []driver.Arg{driver.Pointer(1), driver.Pointer(2), driver.Float32(0), l.Arg()}
	cases := []struct {
		name string
		kern string
		cfg  driver.LaunchConfig
		args []driver.Arg
		want string
	}{
		{"unknown kernel", "gidedge_nope", kernels.Elementwise(1), nil, `no kernel named "gidedge_nope"`},
		{"too few", "gidedge_strided_copy", kernels.Elementwise(1), ok[:3], "takes 4 arguments (void gidedge_strided_copy(float* y, const float* x, float beta, gd_layout l)), got 3"},
		{"float for pointer", "gidedge_strided_copy", kernels.Elementwise(1), []driver.Arg{driver.Float32(1), ok[1], ok[2], ok[3]}, "argument 0 (float* y) given a float32"},
		{"wrong struct", "gidedge_strided_copy", kernels.Elementwise(1), []driver.Arg{ok[0], ok[1], ok[2], kernels.Pool{}.Arg()}, "argument 3 (gd_layout l) given a gd_pool"},
		{"negative count", "gidedge_fill", kernels.Elementwise(1), []driver.Arg{ok[0], driver.Float32(0), driver.Int32(-5)}, "argument 2 (n) is -5"},
		{"barrier block", "gidedge_reduce", kernels.Elementwise(1000), nil, "needs block (256,1,1)"},
		{"block too big", "gidedge_fill", driver.LaunchConfig{Grid: driver.D1(1), Block: driver.Dim3{X: 64, Y: 32, Z: 1}}, nil, "2048 threads"},
		{"empty grid", "gidedge_fill", driver.LaunchConfig{Grid: driver.Dim3{}, Block: driver.D1(32)}, nil, "zero dimension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Block = map[bool]driver.Dim3{true: c.cfg.Block, false: driver.D1(64)}[c.cfg.Block != driver.Dim3{}]
			if c.kern == "gidedge_reduce" {
				c.cfg.Block = driver.D1(128)
			}
			_, err := kernels.Check(c.kern, c.cfg, c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestEmulationCatchesBarrierMisuse: a __syncthreads that some threads
// never reach, or a kernel whose barrier the launcher does not know about,
// is reported rather than silently wrong.
func TestEmulationCatchesBarrierMisuse(t *testing.T) {
	y, _ := emu.Alloc(1024)
	defer emu.Free(y)
	err := emu.LaunchUnchecked("gidedge_emu_selftest_divergent", driver.LaunchConfig{Grid: driver.D1(2), Block: driver.D1(32)}, true, driver.Pointer(y))
	if err == nil || !strings.Contains(err.Error(), "3 of 32 threads of block (0,0,0) exited while the others wait at __syncthreads number 1") {
		t.Fatalf("error %v", err)
	}
	// gidedge_sum_squares run as if it had no barrier.
	err = emu.LaunchUnchecked("gidedge_sum_squares", kernels.Elementwise(1), false, driver.Pointer(y), driver.Pointer(y), driver.Int32(1))
	if err == nil || !strings.Contains(err.Error(), "called __syncthreads but was launched as a kernel without barriers") {
		t.Fatalf("error %v", err)
	}
	// Argument sizes are checked against the compiled kernel.
	err = emu.LaunchUnchecked("gidedge_fill", kernels.Elementwise(1), false, driver.Pointer(y), driver.Int64(0), driver.Int32(1))
	if err == nil || !strings.Contains(err.Error(), "argument 1 is 8 bytes, the kernel's parameter is 4") {
		t.Fatalf("error %v", err)
	}
}

// TestPTXCompilesWithClang rebuilds every PTX with clang-16 and compares
// (scripts/build_ptx.sh --check); setup installs clang-16.
func TestPTXCompilesWithClang(t *testing.T) {
	if testing.Short() {
		t.Skip("the full (non-short) run recompiles the PTX; the race run need not")
	}
	out, err := exec.Command("../../../scripts/build_ptx.sh", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
}
