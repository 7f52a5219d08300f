package driver

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels for the conditions callers act on; every *Error matches the one
// its code implies (errors.Is).
var (
	// ErrUnavailable: the binary was built without cgo, or a library the
	// call needs is not installed.
	ErrUnavailable = errors.New("cuda: unavailable")
	// ErrNoDevice: the driver loads but sees no usable GPU.
	ErrNoDevice = errors.New("cuda: no GPU")
	// ErrDriverTooOld: the driver predates the CUDA version gidedge needs.
	ErrDriverTooOld = errors.New("cuda: driver too old")
	// ErrOutOfMemory: device (or pinned host) memory is exhausted.
	ErrOutOfMemory = errors.New("cuda: out of memory")
	// ErrLaunchFailed: a kernel failed on the device; the context is
	// unusable for the rest of the process.
	ErrLaunchFailed = errors.New("cuda: kernel failed")
	// ErrInvalidArgument: a call was rejected before reaching the device.
	ErrInvalidArgument = errors.New("cuda: invalid argument")
)

// Error is a failed call into a CUDA library: which library, which entry
// point, the library's own status name, and what to do about it.
type Error struct {
	Library string // file name, e.g. "libcuda.so.1"
	Call    string // entry point, e.g. "cuMemAlloc_v2"
	Code    int    // the library's status code (0 for failures found before calling)
	Name    string // the status's symbolic name, e.g. "CUDA_ERROR_OUT_OF_MEMORY"
	Detail  string // what was being done, e.g. "256 MiB"
	Hint    string // what to do
	kind    error  // sentinel matched by Is
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cuda: ")
	if e.Library != "" {
		b.WriteString(e.Library)
		b.WriteString(": ")
	}
	b.WriteString(e.Call)
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	if e.Name != "" {
		fmt.Fprintf(&b, " failed with %s (%d)", e.Name, e.Code)
	} else {
		b.WriteString(" failed")
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Is reports whether target is the sentinel this error's code implies.
func (e *Error) Is(target error) bool { return e.kind != nil && target == e.kind }

// Unwrap exposes the sentinel.
func (e *Error) Unwrap() error { return e.kind }

// The CUDA driver's status codes gidedge distinguishes (cuda.h's CUresult).
const (
	cudaSuccess                    = 0
	cudaErrorInvalidValue          = 1
	cudaErrorOutOfMemory           = 2
	cudaErrorNotInitialized        = 3
	cudaErrorDeinitialized         = 4
	cudaErrorStubLibrary           = 34
	cudaErrorInsufficientDriver    = 35
	cudaErrorDeviceUnavailable     = 46
	cudaErrorNoDevice              = 100
	cudaErrorInvalidDevice         = 101
	cudaErrorInvalidImage          = 200
	cudaErrorInvalidContext        = 201
	cudaErrorNoBinaryForGPU        = 209
	cudaErrorInvalidPTX            = 218
	cudaErrorUnsupportedPTXVersion = 222
	cudaErrorInvalidHandle         = 400
	cudaErrorNotFound              = 500
	cudaErrorIllegalAddress        = 700
	cudaErrorLaunchOutOfResources  = 701
	cudaErrorLaunchTimeout         = 702
	cudaErrorLaunchFailed          = 719
	cudaErrorSystemDriverMismatch  = 803
	cudaErrorCompatNotSupported    = 804
	cudaErrorUnknown               = 999
)

// cudaNames backs cuGetErrorName for codes met before the driver is bound.
var cudaNames = map[int]string{
	cudaErrorInvalidValue:          "CUDA_ERROR_INVALID_VALUE",
	cudaErrorOutOfMemory:           "CUDA_ERROR_OUT_OF_MEMORY",
	cudaErrorNotInitialized:        "CUDA_ERROR_NOT_INITIALIZED",
	cudaErrorDeinitialized:         "CUDA_ERROR_DEINITIALIZED",
	cudaErrorStubLibrary:           "CUDA_ERROR_STUB_LIBRARY",
	cudaErrorInsufficientDriver:    "CUDA_ERROR_INSUFFICIENT_DRIVER",
	cudaErrorDeviceUnavailable:     "CUDA_ERROR_DEVICE_UNAVAILABLE",
	cudaErrorNoDevice:              "CUDA_ERROR_NO_DEVICE",
	cudaErrorInvalidDevice:         "CUDA_ERROR_INVALID_DEVICE",
	cudaErrorInvalidImage:          "CUDA_ERROR_INVALID_IMAGE",
	cudaErrorInvalidContext:        "CUDA_ERROR_INVALID_CONTEXT",
	cudaErrorNoBinaryForGPU:        "CUDA_ERROR_NO_BINARY_FOR_GPU",
	cudaErrorInvalidPTX:            "CUDA_ERROR_INVALID_PTX",
	cudaErrorUnsupportedPTXVersion: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	cudaErrorInvalidHandle:         "CUDA_ERROR_INVALID_HANDLE",
	cudaErrorNotFound:              "CUDA_ERROR_NOT_FOUND",
	cudaErrorIllegalAddress:        "CUDA_ERROR_ILLEGAL_ADDRESS",
	cudaErrorLaunchOutOfResources:  "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	cudaErrorLaunchTimeout:         "CUDA_ERROR_LAUNCH_TIMEOUT",
	cudaErrorLaunchFailed:          "CUDA_ERROR_LAUNCH_FAILED",
	cudaErrorSystemDriverMismatch:  "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
	cudaErrorCompatNotSupported:    "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
	cudaErrorUnknown:               "CUDA_ERROR_UNKNOWN",
}

const reportBug = "this is a gidedge bug: please report it with the command line and `gidedge doctor` output"

// cudaHint says what to do about a driver status, and which sentinel it is.
func cudaHint(code int) (string, error) {
	switch code {
	case cudaErrorOutOfMemory:
		return "the GPU is out of memory: use a smaller --batch or image size, or stop the other processes `nvidia-smi` lists on this GPU", ErrOutOfMemory
	case cudaErrorNoDevice, cudaErrorInvalidDevice, cudaErrorDeviceUnavailable:
		return "no usable GPU is visible: check `nvidia-smi`, CUDA_VISIBLE_DEVICES, and that the container was started with GPU access (--gpus all)", ErrNoDevice
	case cudaErrorInsufficientDriver, cudaErrorCompatNotSupported, cudaErrorSystemDriverMismatch:
		return "the NVIDIA driver is too old for this CUDA library, or its kernel module and user library differ: install a driver for CUDA 12.0 or newer (525+) and reboot", ErrDriverTooOld
	case cudaErrorStubLibrary:
		return "the loader found the toolkit's stub libcuda.so instead of the driver's: remove the stubs folder from LD_LIBRARY_PATH or GIDEDGE_CUDA_LIBS", ErrUnavailable
	case cudaErrorNotInitialized, cudaErrorDeinitialized:
		return "the CUDA driver is not initialised (cuInit failed earlier or the process is exiting)", ErrUnavailable
	case cudaErrorNoBinaryForGPU, cudaErrorInvalidPTX, cudaErrorUnsupportedPTXVersion, cudaErrorInvalidImage:
		return "the driver could not compile gidedge's kernels (PTX 7.0 for compute capability 8.0+): update the NVIDIA driver; GPUs older than Ampere (compute capability < 8.0) are not supported", ErrUnavailable
	case cudaErrorIllegalAddress, cudaErrorLaunchFailed, cudaErrorLaunchTimeout:
		return "a kernel failed on the GPU and the CUDA context is now unusable: the run stops here; restart it (training resumes from the last checkpoint) and report the failure with the command line", ErrLaunchFailed
	case cudaErrorLaunchOutOfResources:
		return "the kernel launch asks for more threads, registers or shared memory than the GPU offers; " + reportBug, ErrLaunchFailed
	case cudaErrorNotFound:
		return "a kernel is missing from the loaded PTX: rebuild gidedge (make ptx && make build)", ErrInvalidArgument
	case cudaErrorInvalidValue, cudaErrorInvalidHandle, cudaErrorInvalidContext:
		return reportBug, ErrInvalidArgument
	}
	return "", nil
}

// cuBLAS statuses (cublas_api.h).
var cublasNames = map[int]string{
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func cublasHint(code int) (string, error) {
	switch code {
	case 1:
		return "cuBLAS could not initialise: the GPU may be out of memory, or this cuBLAS needs a newer driver (cuBLAS 13 needs a CUDA 13 driver; set GIDEDGE_CUDA_LIBS to a folder with cuBLAS 12 otherwise)", ErrUnavailable
	case 3:
		return "cuBLAS could not allocate GPU memory: use a smaller --batch", ErrOutOfMemory
	case 8:
		return "this GPU lacks a feature cuBLAS needs for the requested mode (TF32 needs compute capability 8.0+)", ErrUnavailable
	case 13, 14:
		return "a cuBLAS kernel failed on the GPU: restart the run (training resumes from the last checkpoint) and report the failure", ErrLaunchFailed
	case 7, 11, 15:
		return reportBug, ErrInvalidArgument
	}
	return "", nil
}

// cudnnHint says what to do about a cuDNN 9 status (cudnn_graph.h).
func cudnnHint(code int) (string, error) {
	switch {
	case code >= 1000 && code < 2000:
		return "cuDNN could not initialise: it needs its sub-libraries (libcudnn_*.so.9) beside libcudnn.so.9 and a matching cuBLAS; reinstall the nvidia-cudnn wheel, or take cuDNN off the search path so that gidedge's own convolution kernels are used", ErrUnavailable
	case code >= 2000 && code < 3000:
		return reportBug, ErrInvalidArgument
	case code >= 3000 && code < 4000:
		return "cuDNN does not support this convolution on this GPU; take cuDNN off the search path so that gidedge's own convolution kernels are used", ErrUnavailable
	case code >= 4000 && code < 5000:
		return "cuDNN failed while running: restart the run and report the failure", ErrLaunchFailed
	case code == noAlgorithm:
		return "cuDNN offered no working algorithm for this convolution; take cuDNN off the search path so that gidedge's own convolution kernels are used", ErrUnavailable
	}
	return "", nil
}

// statusError builds the *Error of a library status (nil for 0): the name
// the library gives it, else one from table, else prefix and the code; the
// hint and sentinel from hints, else fallbackHint.
func statusError(lib *LibraryInfo, call string, code int, detail, name string, table map[int]string, prefix string, hints func(int) (string, error), fallbackHint string) error {
	if code == 0 {
		return nil
	}
	if name == "" || name == "<unknown>" {
		name = table[code]
	}
	if name == "" {
		name = fmt.Sprintf("%s%d", prefix, code)
	}
	hint, kind := hints(code)
	if hint == "" {
		hint = fallbackHint
	}
	return &Error{Library: lib.File(), Call: call, Code: code, Name: name, Detail: detail, Hint: hint, kind: kind}
}

func (d *Driver) cudaError(call string, code int, detail string) error {
	if code == cudaSuccess {
		return nil
	}
	fallback := d.native.errorString(code)
	if fallback == "" {
		fallback = reportBug
	}
	return statusError(&d.libs.CUDA, call, code, detail, d.native.errorName(code), cudaNames, "CUDA_ERROR_", cudaHint, fallback)
}

// argError reports arguments rejected in Go before any C call.
func argError(call, format string, args ...any) error {
	return &Error{Call: call, Detail: fmt.Sprintf(format, args...), Hint: reportBug, kind: ErrInvalidArgument}
}
