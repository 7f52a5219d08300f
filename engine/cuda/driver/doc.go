// Package driver binds the CUDA driver API (libcuda.so.1), cuBLAS and,
// optionally, cuDNN 9 and NVML at run time with dlopen and gidedge's own
// declarations (cuda_decl.h), so gidedge builds and runs without any NVIDIA
// software and uses a GPU where one is installed.
//
// Libraries are searched in this order (Config.SearchDirs): the folders of
// GIDEDGE_CUDA_LIBS; the site-packages/nvidia/*/lib folders of Python
// environments (where PyTorch's and JAX's pip wheels put cuBLAS and cuDNN:
// nvidia/cu13/lib, nvidia/cublas/lib, nvidia/cudnn/lib); /usr/local/cuda;
// the driver folders of NVIDIA's container runtime and JetPack; and last the
// loader's own path.
//
// The API is small and explicit: a Driver, a Context per GPU (its primary
// context), Streams and Events, device memory (raw Alloc/Free or the
// caching Allocator), pinned HostBuffers, Modules of PTX with Functions to
// Launch, a cuBLAS handle (BLAS) and a DNN interface whose first
// implementation is cuDNN's legacy convolution API. Matrices are row-major
// like the engine's.
//
// Errors: every failure is an *Error naming the library, the entry point,
// the library's status name and what to do; errors.Is matches the
// sentinels (ErrUnavailable, ErrNoDevice, ErrDriverTooOld, ErrOutOfMemory,
// ErrLaunchFailed, ErrInvalidArgument). Arguments are checked in Go before
// any C call. Built without cgo, the package compiles and Open returns an
// error matching ErrUnavailable.
//
// The tests run against the driver simulator of package sim (a C library
// standing in for libcuda, cuBLAS and cuDNN, running the emulated kernels)
// unless GIDEDGE_CUDA_LIBS points at real libraries: the simulator proves
// gidedge's code, not NVIDIA's.
package driver
