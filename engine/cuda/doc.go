// Package cuda is the engine's GPU backend: backend.Backend on an NVIDIA
// GPU through the CUDA driver API (package driver, loaded at run time with
// dlopen), gidedge's own kernels (package kernels, PTX embedded in the
// binary), cuBLAS for every GEMM and, when it is installed, cuDNN for
// convolutions. Importing it registers the device "cuda" (in builds with
// cgo).
//
// # Execution
//
// Every kernel is queued on one compute stream and returns at once; the
// host runs ahead of the GPU. ToHost waits for the queued work (it is the
// only synchronisation a training step needs), Sync waits and reports an
// asynchronous error. Uploads from page-locked memory (AllocPinned,
// UploadPinned) run on a second stream, overlapping kernels, and the
// compute stream waits for them with an event.
//
// # Memory
//
// Buffers come from a caching allocator (driver.Allocator): freed blocks
// are reused in stream order, so Free never waits for the GPU. A buffer
// the engine drops without Free (a tensor made from host data) is handed
// back by a cleanup when the garbage collector finds it; since Go's
// collector does not see device memory, Alloc runs a collection whenever
// the memory newly taken from the driver since the last one passes a
// share of the GPU's memory. Figures gives the gidedge_cuda_* memory
// counters for the run log.
//
// # Algorithms
//
// GEMMs are cuBLAS SGEMM (strided batched for batches), FP32 unless TF32
// is switched on (Options.TF32, GIDEDGE_CUDA_TF32=1, gidedge's --tf32).
// Convolutions run on cuDNN's legacy API when libcudnn.so.9 is found
// (Options.NoDNN or GIDEDGE_CUDA_CUDNN=0 turns it off), else as im2col +
// cuBLAS GEMM, with col2im for the input gradient; depthwise convolutions
// use gidedge's direct kernels either way. Everything else is one of
// gidedge's kernels, mostly one launch per call.
//
// # Errors
//
// Arguments are checked in Go before any launch: a buffer of another
// backend, of the wrong dtype, too short, or released panics with a
// *backend.Error wrapping backend.ErrArgument, as on the CPU. A failing
// CUDA call (out of memory, a refused launch, a kernel that faulted,
// reported at the next synchronisation) panics with a *backend.Error whose
// error matches both backend.ErrDevice and the driver's sentinel
// (driver.ErrOutOfMemory, driver.ErrLaunchFailed, …) and names the
// library, the call and what to do; Sync returns the same error instead.
// After a kernel fault the CUDA context is unusable for the rest of the
// process, as with any CUDA program.
//
// Nothing in this package has run on a real GPU yet: it is tested on the
// driver simulator (package sim), which runs the same kernels emulated on
// the CPU, against the reference backend (engine/backendtest).
package cuda
