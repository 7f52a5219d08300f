// Package ort finds and initialises the ONNX Runtime shared library once per
// process for every package that runs ONNX models (export parity, quantize,
// distill teachers, serve, bench).
//
// The library is looked up, in order, at $GIDEDGE_ORT_LIB, in the project's
// git-ignored third_party/onnxruntime-<version>/linux-<arch>/ folder (found by
// walking up from the working directory and from the executable), and finally
// by the bare soname so a system install (a Jetson image) is used as is.
//
// Errors name every path that was tried and say how to install the library.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	onnxruntime "github.com/yalue/onnxruntime_go"
)

// ExpectedVersion is the ONNX Runtime release scripts/setup.sh installs.
const ExpectedVersion = "1.30.0"

// minMinor is the oldest 1.x release whose C API onnxruntime_go v1.27 (API 24) accepts.
const minMinor = 24

// ErrNotFound reports that no ONNX Runtime library could be located.
var ErrNotFound = errors.New("ort: ONNX Runtime library not found")

var (
	once    sync.Once
	initErr error
	libPath string
	version string
)

// Init loads ONNX Runtime and creates its environment. It is safe to call
// from many goroutines and returns the same result every time.
func Init() error {
	once.Do(func() {
		libPath, initErr = Locate()
		if initErr != nil {
			return
		}
		onnxruntime.SetSharedLibraryPath(libPath)
		if err := onnxruntime.InitializeEnvironment(onnxruntime.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("ort: initialise %s: %w", libPath, err)
			return
		}
		version = onnxruntime.GetVersion()
		if err := checkVersion(version); err != nil {
			initErr = fmt.Errorf("ort: %s: %w", libPath, err)
		}
	})
	return initErr
}

// Version returns the loaded library's version; Init must have succeeded.
func Version() string { return version }

// LibraryPath returns the path of the loaded library; Init must have succeeded.
func LibraryPath() string { return libPath }

func checkVersion(v string) error {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return fmt.Errorf("unrecognised ONNX Runtime version %q", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major != 1 || minor < minMinor {
		return fmt.Errorf("ONNX Runtime %s is too old: need 1.%d or newer (scripts/setup.sh installs %s)", v, minMinor, ExpectedVersion)
	}
	return nil
}

// Locate returns the path of the ONNX Runtime library Init would load.
func Locate() (string, error) {
	if p := os.Getenv("GIDEDGE_ORT_LIB"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: GIDEDGE_ORT_LIB=%s: %v", ErrNotFound, p, err)
		}
		return p, nil
	}
	rel := filepath.Join("third_party", "onnxruntime-"+ExpectedVersion, "linux-"+archName(), "libonnxruntime.so.1")
	var tried []string
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, rel)
			tried = append(tried, p)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, dir := range []string{"/usr/lib", "/usr/local/lib", "/usr/lib/" + runtime.GOARCH + "-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu"} {
		p := filepath.Join(dir, "libonnxruntime.so.1")
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (run scripts/setup.sh or set GIDEDGE_ORT_LIB); tried %d paths, first %s", ErrNotFound, len(tried), tried[0])
}

func archName() string {
	if runtime.GOARCH == "amd64" {
		return "x64"
	}
	return runtime.GOARCH
}
