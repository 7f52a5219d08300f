//go:build cgo

package driver

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"unsafe"
)

type cgoNative struct{}

var _ native = cgoNative{}

func newNative() native { return cgoNative{} }

func goString(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

func (cgoNative) bind(lib int, handle unsafe.Pointer) string {
	return goString(C.gd_bind(C.int(lib), handle))
}

func (cgoNative) cuInit() int { return int(C.gd_cuInit(0)) }

func (cgoNative) driverVersion() (int, int) {
	var v C.int
	rc := C.gd_cuDriverGetVersion(&v)
	return int(v), int(rc)
}

func (cgoNative) errorName(code int) string   { return goString(C.gd_cuGetErrorName(C.int(code))) }
func (cgoNative) errorString(code int) string { return goString(C.gd_cuGetErrorString(C.int(code))) }

func (cgoNative) deviceCount() (int, int) {
	var n C.int
	rc := C.gd_cuDeviceGetCount(&n)
	return int(n), int(rc)
}

func (cgoNative) device(ordinal int) (int32, int) {
	var d C.int
	rc := C.gd_cuDeviceGet(&d, C.int(ordinal))
	return int32(d), int(rc)
}

func (cgoNative) deviceName(dev int32) (string, int) {
	var buf [256]C.char
	rc := C.gd_cuDeviceGetName(&buf[0], C.int(len(buf)), C.int(dev))
	if rc != 0 {
		return "", int(rc)
	}
	return C.GoString(&buf[0]), 0
}

func (cgoNative) deviceAttribute(dev int32, attr int) (int, int) {
	var v C.int
	rc := C.gd_cuDeviceGetAttribute(&v, C.int(attr), C.int(dev))
	return int(v), int(rc)
}

func (cgoNative) deviceTotalMem(dev int32) (uint64, int) {
	var n C.size_t
	rc := C.gd_cuDeviceTotalMem(&n, C.int(dev))
	return uint64(n), int(rc)
}

func (cgoNative) primaryCtxRetain(dev int32) (unsafe.Pointer, int) {
	var h unsafe.Pointer
	rc := C.gd_cuDevicePrimaryCtxRetain(&h, C.int(dev))
	return h, int(rc)
}

func (cgoNative) primaryCtxRelease(dev int32) int {
	return int(C.gd_cuDevicePrimaryCtxRelease(C.int(dev)))
}

func (cgoNative) ctxSynchronize(ctx unsafe.Pointer) int { return int(C.gd_cuCtxSynchronize(ctx)) }

func (cgoNative) memAlloc(ctx unsafe.Pointer, bytes uint64) (DevicePtr, int) {
	var p C.ulonglong
	rc := C.gd_cuMemAlloc(ctx, &p, C.size_t(bytes))
	return DevicePtr(p), int(rc)
}

func (cgoNative) memFree(ctx unsafe.Pointer, p DevicePtr) int {
	return int(C.gd_cuMemFree(ctx, C.ulonglong(p)))
}

func (cgoNative) memGetInfo(ctx unsafe.Pointer) (uint64, uint64, int) {
	var free, total C.size_t
	rc := C.gd_cuMemGetInfo(ctx, &free, &total)
	return uint64(free), uint64(total), int(rc)
}

func (cgoNative) memAllocHost(ctx unsafe.Pointer, bytes uint64) (unsafe.Pointer, int) {
	var p unsafe.Pointer
	rc := C.gd_cuMemAllocHost(ctx, &p, C.size_t(bytes))
	return p, int(rc)
}

func (cgoNative) memFreeHost(ctx, p unsafe.Pointer) int { return int(C.gd_cuMemFreeHost(ctx, p)) }

func (cgoNative) memcpyHtoD(ctx unsafe.Pointer, dst DevicePtr, src unsafe.Pointer, bytes uint64, stream unsafe.Pointer) int {
	return int(C.gd_cuMemcpyHtoDAsync(ctx, C.ulonglong(dst), src, C.size_t(bytes), stream))
}

func (cgoNative) memcpyDtoH(ctx unsafe.Pointer, dst unsafe.Pointer, src DevicePtr, bytes uint64, stream unsafe.Pointer) int {
	return int(C.gd_cuMemcpyDtoHAsync(ctx, dst, C.ulonglong(src), C.size_t(bytes), stream))
}

func (cgoNative) memcpyDtoD(ctx unsafe.Pointer, dst, src DevicePtr, bytes uint64, stream unsafe.Pointer) int {
	return int(C.gd_cuMemcpyDtoDAsync(ctx, C.ulonglong(dst), C.ulonglong(src), C.size_t(bytes), stream))
}

func (cgoNative) memsetD32(ctx unsafe.Pointer, dst DevicePtr, value uint32, count uint64, stream unsafe.Pointer) int {
	return int(C.gd_cuMemsetD32Async(ctx, C.ulonglong(dst), C.uint(value), C.size_t(count), stream))
}

func (cgoNative) streamCreate(ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int) {
	var s unsafe.Pointer
	rc := C.gd_cuStreamCreate(ctx, &s, C.uint(flags))
	return s, int(rc)
}

func (cgoNative) streamDestroy(ctx, s unsafe.Pointer) int { return int(C.gd_cuStreamDestroy(ctx, s)) }
func (cgoNative) streamSynchronize(ctx, s unsafe.Pointer) int {
	return int(C.gd_cuStreamSynchronize(ctx, s))
}
func (cgoNative) streamWaitEvent(ctx, s, e unsafe.Pointer) int {
	return int(C.gd_cuStreamWaitEvent(ctx, s, e))
}

func (cgoNative) eventCreate(ctx unsafe.Pointer, flags uint32) (unsafe.Pointer, int) {
	var e unsafe.Pointer
	rc := C.gd_cuEventCreate(ctx, &e, C.uint(flags))
	return e, int(rc)
}

func (cgoNative) eventDestroy(ctx, e unsafe.Pointer) int   { return int(C.gd_cuEventDestroy(ctx, e)) }
func (cgoNative) eventRecord(ctx, e, s unsafe.Pointer) int { return int(C.gd_cuEventRecord(ctx, e, s)) }
func (cgoNative) eventSynchronize(ctx, e unsafe.Pointer) int {
	return int(C.gd_cuEventSynchronize(ctx, e))
}

func (cgoNative) eventElapsed(ctx, start, end unsafe.Pointer) (float32, int) {
	var ms C.float
	rc := C.gd_cuEventElapsedTime(ctx, &ms, start, end)
	return float32(ms), int(rc)
}

func (cgoNative) moduleLoad(ctx unsafe.Pointer, image []byte) (unsafe.Pointer, string, int) {
	var m unsafe.Pointer
	const logSize = 8 << 10
	log := (*C.char)(C.malloc(logSize))
	defer C.free(unsafe.Pointer(log))
	rc := C.gd_cuModuleLoadDataEx(ctx, &m, unsafe.Pointer(&image[0]), log, logSize)
	return m, C.GoString(log), int(rc)
}

func (cgoNative) moduleUnload(ctx, m unsafe.Pointer) int { return int(C.gd_cuModuleUnload(ctx, m)) }

func (cgoNative) moduleFunction(ctx, m unsafe.Pointer, name string) (unsafe.Pointer, int) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var f unsafe.Pointer
	rc := C.gd_cuModuleGetFunction(ctx, &f, m, cn)
	return f, int(rc)
}

func (cgoNative) launch(ctx, fn unsafe.Pointer, grid, block Dim3, shared uint32, stream unsafe.Pointer, data []byte, offsets []uint32) int {
	var dp *C.uchar
	var op *C.uint
	if len(offsets) > 0 {
		dp = (*C.uchar)(unsafe.Pointer(&data[0]))
		op = (*C.uint)(unsafe.Pointer(&offsets[0]))
	}
	return int(C.gd_cuLaunchKernel(ctx, fn, C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z), C.uint(block.X), C.uint(block.Y), C.uint(block.Z),
		C.uint(shared), stream, dp, op, C.int(len(offsets))))
}

func (cgoNative) cublasCreate(ctx unsafe.Pointer) (unsafe.Pointer, int) {
	var h unsafe.Pointer
	rc := C.gd_cublasCreate(ctx, &h)
	return h, int(rc)
}

func (cgoNative) cublasDestroy(ctx, h unsafe.Pointer) int { return int(C.gd_cublasDestroy(ctx, h)) }
func (cgoNative) cublasSetStream(ctx, h, s unsafe.Pointer) int {
	return int(C.gd_cublasSetStream(ctx, h, s))
}
func (cgoNative) cublasSetMathMode(ctx, h unsafe.Pointer, mode int) int {
	return int(C.gd_cublasSetMathMode(ctx, h, C.int(mode)))
}

func (cgoNative) cublasGetProperty(prop int) (int, int) {
	var v C.int
	rc := C.gd_cublasGetProperty(C.int(prop), &v)
	return int(v), int(rc)
}

func (cgoNative) cublasStatusName(code int) string {
	return goString(C.gd_cublasGetStatusName(C.int(code)))
}

func cublasOp(t bool) C.int {
	if t {
		return 1 // CUBLAS_OP_T
	}
	return 0 // CUBLAS_OP_N
}

func (cgoNative) cublasGemm(ctx, h unsafe.Pointer, g *colMajorGemm) int {
	ta, tb := cublasOp(g.transA), cublasOp(g.transB)
	m, n, k := C.int(g.m), C.int(g.n), C.int(g.k)
	a, b, c := C.ulonglong(g.a), C.ulonglong(g.b), C.ulonglong(g.c)
	lda, ldb, ldc := C.int(g.lda), C.int(g.ldb), C.int(g.ldc)
	alpha, beta := C.float(g.alpha), C.float(g.beta)
	switch {
	case g.batch > 0 && g.compute != 0:
		return int(C.gd_cublasGemmStridedBatchedEx(ctx, h, ta, tb, m, n, k, alpha, a, lda, C.longlong(g.strideA), b, ldb, C.longlong(g.strideB),
			beta, c, ldc, C.longlong(g.strideC), C.int(g.batch), C.int(g.compute)))
	case g.batch > 0:
		return int(C.gd_cublasSgemmStridedBatched(ctx, h, ta, tb, m, n, k, alpha, a, lda, C.longlong(g.strideA), b, ldb, C.longlong(g.strideB),
			beta, c, ldc, C.longlong(g.strideC), C.int(g.batch)))
	case g.compute != 0:
		return int(C.gd_cublasGemmEx(ctx, h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, C.int(g.compute)))
	}
	return int(C.gd_cublasSgemm(ctx, h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
}

func (cgoNative) cudnnVersion() uint64 { return uint64(C.gd_cudnnGetVersion()) }
func (cgoNative) cudnnErrorString(code int) string {
	return goString(C.gd_cudnnGetErrorString(C.int(code)))
}

func (cgoNative) cudnnCreate(ctx unsafe.Pointer) (unsafe.Pointer, int) {
	var h unsafe.Pointer
	rc := C.gd_cudnnCreate(ctx, &h)
	return h, int(rc)
}

func (cgoNative) cudnnDestroy(ctx, h unsafe.Pointer) int { return int(C.gd_cudnnDestroy(ctx, h)) }
func (cgoNative) cudnnSetStream(ctx, h, s unsafe.Pointer) int {
	return int(C.gd_cudnnSetStream(ctx, h, s))
}

func (cgoNative) cudnnTensor(n, c, h, w int) (unsafe.Pointer, int) {
	var d unsafe.Pointer
	if rc := C.gd_cudnnCreateTensorDescriptor(&d); rc != 0 {
		return nil, int(rc)
	}
	if rc := C.gd_cudnnSetTensor4dDescriptor(d, C.int(n), C.int(c), C.int(h), C.int(w)); rc != 0 {
		C.gd_cudnnDestroyTensorDescriptor(d)
		return nil, int(rc)
	}
	return d, 0
}

func (cgoNative) cudnnDestroyTensor(d unsafe.Pointer) int {
	return int(C.gd_cudnnDestroyTensorDescriptor(d))
}

func (cgoNative) cudnnFilter(k, c, h, w int) (unsafe.Pointer, int) {
	var d unsafe.Pointer
	if rc := C.gd_cudnnCreateFilterDescriptor(&d); rc != 0 {
		return nil, int(rc)
	}
	if rc := C.gd_cudnnSetFilter4dDescriptor(d, C.int(k), C.int(c), C.int(h), C.int(w)); rc != 0 {
		C.gd_cudnnDestroyFilterDescriptor(d)
		return nil, int(rc)
	}
	return d, 0
}

func (cgoNative) cudnnDestroyFilter(d unsafe.Pointer) int {
	return int(C.gd_cudnnDestroyFilterDescriptor(d))
}

func (cgoNative) cudnnConvolution(c Conv) (unsafe.Pointer, int) {
	var d unsafe.Pointer
	if rc := C.gd_cudnnCreateConvolutionDescriptor(&d); rc != 0 {
		return nil, int(rc)
	}
	rc := C.gd_cudnnSetConvolution2dDescriptor(d, C.int(c.PadH), C.int(c.PadW), C.int(c.StrideH), C.int(c.StrideW), C.int(c.DilationH), C.int(c.DilationW))
	if rc == 0 {
		rc = C.gd_cudnnSetConvolutionGroupCount(d, C.int(c.Groups))
	}
	if rc == 0 {
		math := C.int(3) // CUDNN_FMA_MATH: no TF32
		if c.TF32 {
			math = 0 // CUDNN_DEFAULT_MATH
		}
		rc = C.gd_cudnnSetConvolutionMathType(d, math)
	}
	if rc != 0 {
		C.gd_cudnnDestroyConvolutionDescriptor(d)
		return nil, int(rc)
	}
	return d, 0
}

func (cgoNative) cudnnDestroyConvolution(d unsafe.Pointer) int {
	return int(C.gd_cudnnDestroyConvolutionDescriptor(d))
}

func (cgoNative) cudnnPick(ctx, h unsafe.Pointer, pass convPass, d *convDescriptors) (int, uint64, int) {
	var algo C.int
	var ws C.size_t
	var rc C.int
	switch pass {
	case convForward:
		rc = C.gd_cudnnGetConvolutionForwardAlgorithm(ctx, h, d.x, d.w, d.conv, d.y, &algo, &ws)
	case convBackwardData:
		rc = C.gd_cudnnGetConvolutionBackwardDataAlgorithm(ctx, h, d.w, d.y, d.conv, d.x, &algo, &ws)
	default:
		rc = C.gd_cudnnGetConvolutionBackwardFilterAlgorithm(ctx, h, d.x, d.y, d.conv, d.w, &algo, &ws)
	}
	return int(algo), uint64(ws), int(rc)
}

func (cgoNative) cudnnRun(ctx, h unsafe.Pointer, pass convPass, d *convDescriptors, alpha float32, in1, in2, ws DevicePtr, wsBytes uint64, beta float32, out DevicePtr) int {
	algo := C.int(d.algo[pass])
	a, b := C.float(alpha), C.float(beta)
	switch pass {
	case convForward:
		return int(C.gd_cudnnConvolutionForward(ctx, h, a, d.x, C.ulonglong(in1), d.w, C.ulonglong(in2), d.conv, algo, C.ulonglong(ws), C.size_t(wsBytes), b, d.y, C.ulonglong(out)))
	case convBackwardData:
		return int(C.gd_cudnnConvolutionBackwardData(ctx, h, a, d.w, C.ulonglong(in1), d.y, C.ulonglong(in2), d.conv, algo, C.ulonglong(ws), C.size_t(wsBytes), b, d.x, C.ulonglong(out)))
	}
	return int(C.gd_cudnnConvolutionBackwardFilter(ctx, h, a, d.x, C.ulonglong(in1), d.y, C.ulonglong(in2), d.conv, algo, C.ulonglong(ws), C.size_t(wsBytes), b, d.w, C.ulonglong(out)))
}

func (cgoNative) nvmlInit() int     { return int(C.gd_nvmlInit()) }
func (cgoNative) nvmlShutdown() int { return int(C.gd_nvmlShutdown()) }

func (cgoNative) nvmlDriverVersion() (string, int) {
	var buf [96]C.char
	rc := C.gd_nvmlSystemGetDriverVersion(&buf[0], C.uint(len(buf)))
	if rc != 0 {
		return "", int(rc)
	}
	return C.GoString(&buf[0]), 0
}
