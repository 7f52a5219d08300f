package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/gidedge/gidedge/internal/dynlib"
)

// MinDriverVersion is the oldest driver API version gidedge accepts
// (cuDriverGetVersion's 1000·major + 10·minor): CUDA 12.0, driver 525.
const MinDriverVersion = 12000

// MinComputeCapability is the oldest GPU generation the embedded PTX
// (sm_80) runs on: Ampere, Hopper, Ada, Blackwell and Jetson Orin.
const MinComputeCapability = 80

// DevicePtr is a device address (CUdeviceptr).
type DevicePtr uint64

// Driver is the loaded, initialised CUDA driver.
type Driver struct {
	native  native
	libs    *libraries
	cfg     Config
	version int
}

// Open loads libcuda.so.1 (searching as cfg says), binds every entry point
// gidedge calls, initialises the driver and checks its version. Libraries
// are loaded once per process: a later Open reuses them whatever its cfg.
// Without cgo, or without the driver, it returns an error matching
// ErrUnavailable.
func Open(cfg Config) (*Driver, error) {
	n := newNative()
	if n == nil {
		return nil, &Error{Library: "libcuda.so.1", Call: "Open", Hint: "this gidedge was built without cgo (CGO_ENABLED=0); rebuild it with cgo to use CUDA", kind: ErrUnavailable}
	}
	l := loaded
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.CUDA.Found() {
		lib, err := search(cfg, l.CUDA.Want, false, nil)
		if err != nil {
			l.CUDA.Err = err
			return nil, &Error{Library: "libcuda.so.1", Call: "dlopen", Detail: err.Error(), Hint: installHint(err, l.CUDA.Install), kind: ErrUnavailable}
		}
		if missing := n.bind(libCUDA, lib.Handle()); missing != "" {
			err := &Error{Library: lib.Path(), Call: "dlsym", Detail: missing + " is missing", Hint: "this libcuda.so.1 is older than gidedge needs: install a driver for CUDA 12.0 or newer (525+)", kind: ErrDriverTooOld}
			l.CUDA.Err = err
			return nil, err
		}
		l.CUDA.lib, l.CUDA.Path, l.CUDA.Err = lib, lib.Path(), nil
	}
	d := &Driver{native: n, libs: l, cfg: cfg}
	if err := d.cudaError("cuInit", n.cuInit(), ""); err != nil {
		return nil, err
	}
	v, rc := n.driverVersion()
	if err := d.cudaError("cuDriverGetVersion", rc, ""); err != nil {
		return nil, err
	}
	d.version = v
	l.CUDA.Version = versionString(v)
	if v < MinDriverVersion {
		return nil, &Error{Library: l.CUDA.File(), Call: "cuDriverGetVersion", Detail: "driver supports CUDA " + versionString(v),
			Hint: "gidedge needs a driver for CUDA 12.0 or newer (NVIDIA driver 525+): update the driver", kind: ErrDriverTooOld}
	}
	return d, nil
}

func versionString(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// Version is the CUDA version the driver supports, as 1000·major + 10·minor.
func (d *Driver) Version() int { return d.version }

// DeviceInfo describes one GPU.
type DeviceInfo struct {
	Ordinal          int
	Name             string
	Major, Minor     int // compute capability
	Multiprocessors  int
	TotalMemoryBytes uint64
}

// ComputeCapability is 10·major + minor, e.g. 90 for Hopper.
func (i DeviceInfo) ComputeCapability() int { return 10*i.Major + i.Minor }

func (i DeviceInfo) String() string {
	return fmt.Sprintf("%s, compute capability %d.%d, %d multiprocessors, %.1f GiB", i.Name, i.Major, i.Minor, i.Multiprocessors, float64(i.TotalMemoryBytes)/(1<<30))
}

// Devices describes every GPU the driver sees.
func (d *Driver) Devices() ([]DeviceInfo, error) {
	count, rc := d.native.deviceCount()
	if err := d.cudaError("cuDeviceGetCount", rc, ""); err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, 0, count)
	for i := 0; i < count; i++ {
		info, _, err := d.device(i)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (d *Driver) device(ordinal int) (DeviceInfo, int32, error) {
	n := d.native
	dev, rc := n.device(ordinal)
	if err := d.cudaError("cuDeviceGet", rc, fmt.Sprintf("device %d", ordinal)); err != nil {
		return DeviceInfo{}, 0, err
	}
	info := DeviceInfo{Ordinal: ordinal}
	if info.Name, rc = n.deviceName(dev); rc != 0 {
		return info, dev, d.cudaError("cuDeviceGetName", rc, "")
	}
	attrs := []struct {
		attr int
		dst  *int
	}{
		{16, &info.Multiprocessors}, // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
		{75, &info.Major},           // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
		{76, &info.Minor},           // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
	}
	for _, a := range attrs {
		if *a.dst, rc = n.deviceAttribute(dev, a.attr); rc != 0 {
			return info, dev, d.cudaError("cuDeviceGetAttribute", rc, fmt.Sprintf("attribute %d", a.attr))
		}
	}
	if info.TotalMemoryBytes, rc = n.deviceTotalMem(dev); rc != 0 {
		return info, dev, d.cudaError("cuDeviceTotalMem_v2", rc, "")
	}
	return info, dev, nil
}

// Context is a device's primary context: the one the CUDA runtime, PyTorch
// and ONNX Runtime share, which is why gidedge retains it rather than
// creating its own (cuCtxCreate also changed signature in CUDA 13). Every
// call made through it makes it current on the calling thread first, so
// it can be used from any goroutine.
type Context struct {
	d      *Driver
	dev    int32
	h      unsafe.Pointer
	info   DeviceInfo
	mu     sync.Mutex
	closed bool
}

// Context retains device ordinal's primary context. It fails with a clear
// error on a GPU older than MinComputeCapability.
func (d *Driver) Context(ordinal int) (*Context, error) {
	count, rc := d.native.deviceCount()
	if err := d.cudaError("cuDeviceGetCount", rc, ""); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= count {
		return nil, &Error{Library: d.libs.CUDA.File(), Call: "cuDeviceGet", Detail: fmt.Sprintf("device %d of %d", ordinal, count),
			Hint: "choose a device that `nvidia-smi` lists (numbering starts at 0)", kind: ErrNoDevice}
	}
	info, dev, err := d.device(ordinal)
	if err != nil {
		return nil, err
	}
	if info.ComputeCapability() < MinComputeCapability {
		return nil, &Error{Library: d.libs.CUDA.File(), Call: "Context", Detail: fmt.Sprintf("%s has compute capability %d.%d", info.Name, info.Major, info.Minor),
			Hint: "gidedge's CUDA kernels need compute capability 8.0 or newer (Ampere, Hopper, Ada, Jetson Orin); train on the CPU (--device cpu) on this machine", kind: ErrUnavailable}
	}
	h, rc := d.native.primaryCtxRetain(dev)
	if err := d.cudaError("cuDevicePrimaryCtxRetain", rc, info.Name); err != nil {
		return nil, err
	}
	return &Context{d: d, dev: dev, h: h, info: info}, nil
}

// Device describes the context's GPU.
func (c *Context) Device() DeviceInfo { return c.info }

// Driver is the driver the context belongs to.
func (c *Context) Driver() *Driver { return c.d }

// Close releases the primary context (once; later calls do nothing).
// Streams, events, modules and memory must be released first.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.d.cudaError("cuDevicePrimaryCtxRelease_v2", c.d.native.primaryCtxRelease(c.dev), "")
}

// Synchronize waits for all work on the device, returning any error an
// earlier asynchronous launch or copy left behind.
func (c *Context) Synchronize() error {
	return c.d.cudaError("cuCtxSynchronize", c.d.native.ctxSynchronize(c.h), "")
}

// MemInfo returns the device's free and total memory in bytes.
func (c *Context) MemInfo() (free, total uint64, err error) {
	free, total, rc := c.d.native.memGetInfo(c.h)
	return free, total, c.d.cudaError("cuMemGetInfo_v2", rc, "")
}

// Alloc allocates bytes of device memory directly from the driver; most
// callers want an Allocator, which caches freed blocks.
func (c *Context) Alloc(bytes int) (DevicePtr, error) {
	if bytes <= 0 {
		return 0, argError("cuMemAlloc_v2", "%d bytes requested, want a positive size", bytes)
	}
	p, rc := c.d.native.memAlloc(c.h, uint64(bytes))
	if err := c.d.cudaError("cuMemAlloc_v2", rc, formatBytes(uint64(bytes))); err != nil {
		return 0, err
	}
	return p, nil
}

// Free returns memory from Alloc to the driver.
func (c *Context) Free(p DevicePtr) error {
	if p == 0 {
		return argError("cuMemFree_v2", "null device pointer")
	}
	return c.d.cudaError("cuMemFree_v2", c.d.native.memFree(c.h, p), "")
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// loadOnce runs load for one library the first time it is asked for
// (loading is once per process) and reports, then and later, whether the
// library is usable: nil, or why not.
func (l *libraries) loadOnce(info *LibraryInfo, load func() (*dynlib.Library, error)) error {
	if !info.tried {
		info.tried = true
		if lib, err := load(); err != nil {
			info.Err = err
		} else {
			info.lib, info.Path, info.Err = lib, lib.Path(), nil
		}
	}
	if info.Found() {
		return nil
	}
	return info.Err
}

// loadCUBLAS loads cuBLAS (and cuBLASLt ahead of it, from the same folder)
// once per process: version 13 first when the driver supports CUDA 13,
// else 12.
func (d *Driver) loadCUBLAS() error {
	l := d.libs
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadOnce(&l.CUBLAS, func() (*dynlib.Library, error) {
		l.CUBLAS.Want = []string{"libcublas.so.12"}
		if d.version >= 13000 {
			l.CUBLAS.Want = []string{"libcublas.so.13", "libcublas.so.12"}
		}
		// cuBLAS needs cuBLASLt of its own version. In a pip wheel's or the
		// toolkit's folder the loader would not find it, so it is loaded
		// globally from the folder cuBLAS is about to be opened from.
		lib, err := search(d.cfg, l.CUBLAS.Want, false, func(dir string) {
			for _, want := range l.CUBLAS.Want {
				lt := filepath.Join(dir, strings.Replace(want, "libcublas", "libcublasLt", 1))
				if !fileExists(lt) {
					continue
				}
				l.CUBLASLt.tried = true
				if h, err := dynlib.OpenGlobal(lt); err == nil {
					l.CUBLASLt.lib, l.CUBLASLt.Path, l.CUBLASLt.Err = h, h.Path(), nil
				} else {
					l.CUBLASLt.Err = err
				}
				return
			}
		})
		if err != nil {
			return nil, &Error{Library: l.CUBLAS.Want[0], Call: "dlopen", Detail: err.Error(), Hint: installHint(err, l.CUBLAS.Install), kind: ErrUnavailable}
		}
		l.CUBLASLt.Want = []string{strings.Replace(filepath.Base(lib.Path()), "libcublas", "libcublasLt", 1)}
		if missing := d.native.bind(libCUBLAS, lib.Handle()); missing != "" {
			return nil, &Error{Library: lib.Path(), Call: "dlsym", Detail: missing + " is missing", Hint: "this cuBLAS is too old: install cuBLAS 12 or 13", kind: ErrUnavailable}
		}
		var parts [3]int
		for i := range parts {
			v, rc := d.native.cublasGetProperty(i)
			if rc != 0 {
				return nil, statusError(&l.CUBLAS, "cublasGetProperty", rc, "", d.native.cublasStatusName(rc), cublasNames, "CUBLAS_STATUS_", cublasHint, reportBug)
			}
			parts[i] = v
		}
		l.CUBLAS.Version = fmt.Sprintf("%d.%d.%d", parts[0], parts[1], parts[2])
		return lib, nil
	})
}

// loadCUDNN loads cuDNN 9 once per process. libcudnn.so.9 opens its
// sub-libraries (libcudnn_ops, _cnn, …) by name, which the loader would not
// find in a pip wheel's folder, so they are loaded globally from cuDNN's
// folder first.
func (d *Driver) loadCUDNN() error {
	l := d.libs
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadOnce(&l.CUDNN, func() (*dynlib.Library, error) {
		lib, err := search(d.cfg, l.CUDNN.Want, false, func(dir string) {
			for _, sub := range []string{"libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9",
				"libcudnn_heuristic.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9"} {
				// A missing sub-library is cuDNN's to report, as a status,
				// when a call needs it.
				if p := filepath.Join(dir, sub); fileExists(p) {
					_, _ = dynlib.OpenGlobal(p)
				}
			}
		})
		if err != nil {
			return nil, &Error{Library: "libcudnn.so.9", Call: "dlopen", Detail: err.Error(), Hint: installHint(err, l.CUDNN.Install), kind: ErrUnavailable}
		}
		if missing := d.native.bind(libCUDNN, lib.Handle()); missing != "" {
			return nil, &Error{Library: lib.Path(), Call: "dlsym", Detail: missing + " is missing", Hint: "gidedge needs cuDNN 9: " + l.CUDNN.Install, kind: ErrUnavailable}
		}
		v := d.native.cudnnVersion()
		if v < 90000 {
			return nil, &Error{Library: lib.Path(), Call: "cudnnGetVersion", Detail: fmt.Sprintf("version %d", v), Hint: "gidedge needs cuDNN 9: " + l.CUDNN.Install, kind: ErrUnavailable}
		}
		l.CUDNN.Version = fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
		return lib, nil
	})
}

// driverVersionString asks NVML for the driver's version (e.g. "580.95.05");
// NVML is optional, so failures leave it empty.
func (d *Driver) driverVersionString() string {
	l := d.libs
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.loadOnce(&l.NVML, func() (*dynlib.Library, error) {
		lib, err := search(d.cfg, l.NVML.Want, false, nil)
		if err != nil {
			return nil, err
		}
		if missing := d.native.bind(libNVML, lib.Handle()); missing != "" {
			return nil, errors.New(lib.Path() + " lacks " + missing)
		}
		return lib, nil
	})
	if err != nil {
		return ""
	}

	if rc := d.native.nvmlInit(); rc != 0 {
		l.NVML.Err = fmt.Errorf("nvmlInit_v2 returned %d", rc)
		return ""
	}
	defer d.native.nvmlShutdown()
	v, rc := d.native.nvmlDriverVersion()
	if rc != 0 {
		return ""
	}
	l.NVML.Version = v
	return v
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
