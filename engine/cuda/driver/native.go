package driver

import "unsafe"

// native is the C boundary: one method per trampoline of binding.c, taking
// and returning plain values and the libraries' status codes. cgo.go
// implements it; a binary built without cgo has none, and Open reports the
// backend unavailable. Everything above it is ordinary Go that validates
// arguments before a call and turns codes into *Error values.
type native interface {
	bind(lib int, handle unsafe.Pointer) (missing string)

	cuInit() int
	driverVersion() (int, int)
	errorName(code int) string
	errorString(code int) string
	deviceCount() (int, int)
	device(ordinal int) (int32, int)
	deviceName(dev int32) (string, int)
	deviceAttribute(dev int32, attr int) (int, int)
	deviceTotalMem(dev int32) (uint64, int)
	primaryCtxRetain(dev int32) (unsafe.Pointer, int)
	primaryCtxRelease(dev int32) int
	ctxSynchronize(ctx unsafe.Pointer) int
	memAlloc(ctx unsafe.Pointer, bytes uint64) (DevicePtr, int)
	memFree(ctx unsafe.Pointer, p DevicePtr) int
	memGetInfo(ctx unsafe.Pointer) (free, total uint64, code int)
	memAllocHost(ctx unsafe.Pointer, bytes uint64) (unsafe.Pointer, int)
	memFreeHost(ctx unsafe.Pointer, p unsafe.Pointer) int
	memcpyHtoD(ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes uint64, stream unsafe.Pointer) int
	memcpyDtoH(ctx unsafe.Pointer, dst unsafe.Pointer, src DevicePtr, bytes uint64, stream unsafe.Pointer) int
	memcpyDtoD(ctx unsafe.Pointer, dst, src DevicePtr, bytes uint64, stream unsafe.Pointer) int
	memsetD32(ctx unsafe.Pointer, dst DevicePtr, value uint32, count uint64, stream unsafe.Pointer) int
	streamCreate(ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int)
	streamDestroy(ctx, stream unsafe.Pointer) int
	streamSynchronize(ctx, stream unsafe.Pointer) int
	streamWaitEvent(ctx, stream, event unsafe.Pointer) int
	eventCreate(ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int)
	eventDestroy(ctx, event unsafe.Pointer) int
	eventRecord(ctx, event, stream unsafe.Pointer) int
	eventSynchronize(ctx, event unsafe.Pointer) int
	eventElapsed(ctx, start, end unsafe.Pointer) (float32, int)
	moduleLoad(ctx unsafe.Pointer, image []byte) (unsafe.Pointer, string, int)
	moduleUnload(ctx, module unsafe.Pointer) int
	moduleFunction(ctx, module unsafe.Pointer, name string) (unsafe.Pointer, int)
	launch(ctx, fn unsafe.Pointer, grid, block Dim3, shared uint32, stream unsafe.Pointer, data []byte, offsets []uint32) int

	cublasCreate(ctx unsafe.Pointer) (unsafe.Pointer, int)
	cublasDestroy(ctx, handle unsafe.Pointer) int
	cublasSetStream(ctx, handle, stream unsafe.Pointer) int
	cublasSetMathMode(ctx, handle unsafe.Pointer, mode int) int
	cublasGetProperty(prop int) (int, int)
	cublasStatusName(code int) string
	cublasGemm(ctx, handle unsafe.Pointer, g *colMajorGemm) int

	cudnnVersion() uint64
	cudnnErrorString(code int) string
	cudnnCreate(ctx unsafe.Pointer) (unsafe.Pointer, int)
	cudnnDestroy(ctx, handle unsafe.Pointer) int
	cudnnSetStream(ctx, handle, stream unsafe.Pointer) int
	cudnnTensor(n, c, h, w int) (unsafe.Pointer, int)
	cudnnDestroyTensor(d unsafe.Pointer) int
	cudnnFilter(k, c, h, w int) (unsafe.Pointer, int)
	cudnnDestroyFilter(d unsafe.Pointer) int
	cudnnConvolution(c Conv) (unsafe.Pointer, int)
	cudnnDestroyConvolution(d unsafe.Pointer) int
	cudnnPick(ctx, handle unsafe.Pointer, pass convPass, d *convDescriptors) (algo int, workspace uint64, code int)
	cudnnRun(ctx, handle unsafe.Pointer, pass convPass, d *convDescriptors, alpha float32, in1, in2 DevicePtr, workspace DevicePtr, workspaceBytes uint64, beta float32, out DevicePtr) int

	nvmlInit() int
	nvmlShutdown() int
	nvmlDriverVersion() (string, int)
}

// colMajorGemm is one cuBLAS call in cuBLAS's own (column-major) terms.
type colMajorGemm struct {
	transA, transB            bool
	m, n, k                   int
	alpha, beta               float32
	a, b, c                   DevicePtr
	lda, ldb, ldc             int
	strideA, strideB, strideC int64
	batch                     int // 0: a single GEMM
	compute                   int // 0: cublasSgemm; else cublasGemmEx with this compute type
}

// convPass is one of cuDNN's three convolution passes.
type convPass int

const (
	convForward convPass = iota
	convBackwardData
	convBackwardFilter
)

func (p convPass) String() string {
	return [...]string{"cudnnConvolutionForward", "cudnnConvolutionBackwardData", "cudnnConvolutionBackwardFilter"}[p]
}

// convDescriptors are the cuDNN descriptors of one convolution geometry.
type convDescriptors struct {
	x, y, w, conv unsafe.Pointer
	algo          [3]int
	workspace     [3]uint64
	picked        [3]bool
}

// The libraries of the dispatch tables (binding.h's GD_LIB_*).
const (
	libCUDA = iota
	libCUBLAS
	libCUDNN
	libNVML
)
