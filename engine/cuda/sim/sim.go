// Package sim builds the CUDA driver simulator: C++ libraries named and
// shaped like NVIDIA's (libcuda.so.1, libcublas.so.13, libcublasLt.so.13,
// libcudnn.so.9, libnvidia-ml.so.1) that implement exactly the entry points
// gidedge declares (../driver/cuda_decl.h, checked at compile time), with
// device memory in host memory, kernel launches running the emulated
// kernels (../emu) and GEMM and convolution as reference loops.
//
// Pointing GIDEDGE_CUDA_LIBS at the folder Build returns makes gidedge load
// the simulator through its ordinary dlopen path, so the driver package's
// memory management, streams, launches and error handling — and the CUDA
// backend on top — run in CI. It is a simulator: it proves gidedge's code,
// not NVIDIA's, and says so in its device name. Faults are injected with
// the GIDEDGE_CUDASIM_* variables documented in csrc/cuda.cpp.
package sim

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/gidedge/gidedge/engine/cuda/driver"
)

// Libraries are the simulator's files, in build order.
var Libraries = []string{"libcuda.so.1", "libcublasLt.so.13", "libcublas.so.13", "libcudnn.so.9", "libnvidia-ml.so.1"}

// sourceDir is the simulator's C++ folder in the source tree (csrc, beside
// this file): the simulator is built from source, so only where the
// sources are (tests, a checkout) can build it.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("sim: cannot locate the simulator's sources")
	}
	dir := filepath.Join(filepath.Dir(file), "csrc")
	if _, err := os.Stat(filepath.Join(dir, "cuda.cpp")); err != nil {
		return "", fmt.Errorf("sim: simulator sources not found beside %s (the simulator is built from a source checkout): %w", file, err)
	}
	return dir, nil
}

// sources lists every file the simulator is built from.
func sources(simDir string) ([]string, error) {
	cuda := filepath.Dir(filepath.Dir(simDir))
	var out []string
	// sim.go itself holds the build recipe.
	for _, pattern := range []string{"sim/sim.go", "sim/csrc/*.cpp", "sim/csrc/*.h", "emu/*.cpp", "emu/*.h", "kernels/*.cu", "kernels/*.cuh", "kernels/*.h", "driver/cuda_decl.h"} {
		m, err := filepath.Glob(filepath.Join(cuda, pattern))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	slices.Sort(out)
	return out, nil
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Build compiles the simulator (once per process, and only when its sources
// changed since the last build) into <repository>/.cache/cudasim/<hash>/
// and returns that folder. It needs a C++17 compiler ($CXX, default g++).
func Build() (string, error) {
	buildOnce.Do(func() { buildDir, buildErr = build() })
	return buildDir, buildErr
}

func build() (string, error) {
	simDir, err := sourceDir()
	if err != nil {
		return "", err
	}
	files, err := sources(simDir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	cxx := os.Getenv("CXX")
	if cxx == "" {
		cxx = "g++"
	}
	fmt.Fprintf(h, "%s\n", cxx)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	repo := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(simDir))))
	out := filepath.Join(repo, ".cache", "cudasim", hex.EncodeToString(h.Sum(nil))[:16])
	if complete(out) {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	// Test binaries of several packages start at once: one builds, the
	// others wait for it and use its result.
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(out), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("sim: locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if complete(out) {
		return out, nil
	}
	// Build beside the final folder and rename it into place, so that
	// test binaries building at the same moment never see half a build.
	tmp, err := os.MkdirTemp(filepath.Dir(out), "build-")
	if err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	defer os.RemoveAll(tmp)
	cuda := filepath.Dir(filepath.Dir(simDir))
	var kernelObjects []string
	for _, f := range files {
		if filepath.Base(filepath.Dir(f)) == "emu" && strings.HasSuffix(f, ".cpp") {
			kernelObjects = append(kernelObjects, f)
		}
	}
	flags := []string{"-std=c++17", "-O2", "-fPIC", "-shared", "-Wall", "-Werror", "-pthread"}
	steps := [][]string{
		append(append([]string{"-o", "libcuda.so.1", "-Wl,-soname,libcuda.so.1", filepath.Join(simDir, "cuda.cpp")}, kernelObjects...), "-ldl"),
		{"-o", "libcublasLt.so.13", "-Wl,-soname,libcublasLt.so.13", filepath.Join(simDir, "cublaslt.cpp")},
		// Like NVIDIA's cuBLAS, the simulator's depends on cuBLASLt by
		// name (and on libcuda for streams), with no run path to find it.
		{"-o", "libcublas.so.13", "-Wl,-soname,libcublas.so.13", filepath.Join(simDir, "cublas.cpp"), "-L.", "-Wl,--no-as-needed", "-l:libcublasLt.so.13", "-l:libcuda.so.1"},
		{"-o", "libcudnn.so.9", "-Wl,-soname,libcudnn.so.9", filepath.Join(simDir, "cudnn.cpp"), "-L.", "-l:libcuda.so.1"},
		{"-o", "libnvidia-ml.so.1", "-Wl,-soname,libnvidia-ml.so.1", filepath.Join(simDir, "nvml.cpp")},
	}
	for _, s := range steps {
		cmd := exec.Command(cxx, append(slices.Clone(flags), s...)...)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("sim: building %s with %s failed (sources under %s): %v\n%s", s[1], cxx, cuda, err, b)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		if complete(out) {
			return out, nil // another process finished the same build first
		}
		return "", fmt.Errorf("sim: %w", err)
	}
	pruneOldBuilds(filepath.Dir(out), out)
	return out, nil
}

// pruneOldBuilds keeps the newest few builds (of earlier sources, while a
// change is being worked on) and removes the rest.
func pruneOldBuilds(parent, keep string) {
	const kept = 3
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	type build struct {
		path string
		mod  int64
	}
	var builds []build
	for _, e := range entries {
		p := filepath.Join(parent, e.Name())
		if !e.IsDir() || p == keep || strings.HasPrefix(e.Name(), "build-") {
			continue
		}
		if info, err := e.Info(); err == nil {
			builds = append(builds, build{p, info.ModTime().UnixNano()})
		}
	}
	slices.SortFunc(builds, func(a, b build) int { return cmp.Compare(b.mod, a.mod) })
	for i, b := range builds {
		if i >= kept-1 {
			os.RemoveAll(b.path)
		}
	}
}

func complete(dir string) bool {
	for _, l := range Libraries {
		if _, err := os.Stat(filepath.Join(dir, l)); err != nil {
			return false
		}
	}
	return true
}

// TestConfig is the driver configuration tests use: the folders of
// GIDEDGE_CUDA_LIBS when that is set (real NVIDIA libraries, on a GPU
// machine: benchmarks/gpu_check.sh), else the simulator alone, built if
// needed. simulated says which.
func TestConfig() (cfg driver.Config, simulated bool, err error) {
	if cfg = driver.DefaultConfig(); len(cfg.Dirs) > 0 {
		return cfg, false, nil
	}
	dir, err := Build()
	if err != nil {
		return driver.Config{}, true, err
	}
	return driver.Config{Dirs: []string{dir}, Exclusive: true}, true, nil
}

// LinkLibraries links the named libraries of the simulator build in simDir
// (Build's folder) into dst: a folder with some libraries missing, for the
// tests of what happens without them.
func LinkLibraries(dst, simDir string, libs ...string) error {
	for _, l := range libs {
		if err := os.Symlink(filepath.Join(simDir, l), filepath.Join(dst, l)); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
	}
	return nil
}
