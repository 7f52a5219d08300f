/* The trampolines of binding.c, as cgo sees them. */
#ifndef GIDEDGE_BINDING_H
#define GIDEDGE_BINDING_H

#include <stddef.h>

#include "cuda_decl.h"

enum { GD_LIB_CUDA = 0, GD_LIB_CUBLAS = 1, GD_LIB_CUDNN = 2, GD_LIB_NVML = 3 };

/* Most kernel parameters a launch passes (ours take at most 13). */
#define GD_MAX_KERNEL_ARGS 32

/* Returned by the cuDNN algorithm pickers when no algorithm works; outside
 * cuDNN's status range. */
#define GD_NO_ALGORITHM 99999

/* gd_bind resolves every entry point of one library from a dlopen handle;
 * it returns the name of the first missing required one, or NULL. */
const char* gd_bind(int lib, void* handle);

int gd_cuInit(unsigned flags);
int gd_cuDriverGetVersion(int* v);
const char* gd_cuGetErrorName(int code);
const char* gd_cuGetErrorString(int code);
int gd_cuDeviceGetCount(int* n);
int gd_cuDeviceGet(int* dev, int ordinal);
int gd_cuDeviceGetName(char* name, int len, int dev);
int gd_cuDeviceGetAttribute(int* v, int attr, int dev);
int gd_cuDeviceTotalMem(size_t* bytes, int dev);
int gd_cuDevicePrimaryCtxRetain(void** ctx, int dev);
int gd_cuDevicePrimaryCtxRelease(int dev);
int gd_cuCtxSynchronize(void* ctx);
int gd_cuMemAlloc(void* ctx, unsigned long long* ptr, size_t bytes);
int gd_cuMemFree(void* ctx, unsigned long long ptr);
int gd_cuMemGetInfo(void* ctx, size_t* free_bytes, size_t* total);
int gd_cuMemAllocHost(void* ctx, void** p, size_t bytes);
int gd_cuMemFreeHost(void* ctx, void* p);
int gd_cuMemcpyHtoDAsync(void* ctx, unsigned long long dst, const void* src, size_t bytes, void* stream);
int gd_cuMemcpyDtoHAsync(void* ctx, void* dst, unsigned long long src, size_t bytes, void* stream);
int gd_cuMemcpyDtoDAsync(void* ctx, unsigned long long dst, unsigned long long src, size_t bytes, void* stream);
int gd_cuMemsetD32Async(void* ctx, unsigned long long dst, unsigned value, size_t count, void* stream);
int gd_cuStreamCreate(void* ctx, void** stream, unsigned flags);
int gd_cuStreamDestroy(void* ctx, void* stream);
int gd_cuStreamSynchronize(void* ctx, void* stream);
int gd_cuStreamWaitEvent(void* ctx, void* stream, void* event);
int gd_cuEventCreate(void* ctx, void** event, unsigned flags);
int gd_cuEventDestroy(void* ctx, void* event);
int gd_cuEventRecord(void* ctx, void* event, void* stream);
int gd_cuEventSynchronize(void* ctx, void* event);
int gd_cuEventElapsedTime(void* ctx, float* ms, void* start, void* end);
int gd_cuModuleLoadDataEx(void* ctx, void** module, const void* image, char* log, unsigned log_size);
int gd_cuModuleUnload(void* ctx, void* module);
int gd_cuModuleGetFunction(void* ctx, void** fn, void* module, const char* name);
int gd_cuLaunchKernel(void* ctx, void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared, void* stream, const unsigned char* data, const unsigned* offsets, int n);
int gd_cublasCreate(void* ctx, void** handle);
int gd_cublasDestroy(void* ctx, void* handle);
int gd_cublasSetStream(void* ctx, void* handle, void* stream);
int gd_cublasSetMathMode(void* ctx, void* handle, int mode);
int gd_cublasGetProperty(int type, int* value);
const char* gd_cublasGetStatusName(int status);
int gd_cublasSgemm(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha, unsigned long long a, int lda, unsigned long long b, int ldb, float beta, unsigned long long c, int ldc);
int gd_cublasSgemmStridedBatched(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha, unsigned long long a, int lda, long long sa, unsigned long long b, int ldb, long long sb, float beta, unsigned long long c, int ldc, long long sc, int batch);
int gd_cublasGemmEx(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha, unsigned long long a, int lda, unsigned long long b, int ldb, float beta, unsigned long long c, int ldc, int compute);
int gd_cublasGemmStridedBatchedEx(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha, unsigned long long a, int lda, long long sa, unsigned long long b, int ldb, long long sb, float beta, unsigned long long c, int ldc, long long sc, int batch, int compute);
size_t gd_cudnnGetVersion(void);
const char* gd_cudnnGetErrorString(int status);
int gd_cudnnCreate(void* ctx, void** handle);
int gd_cudnnDestroy(void* ctx, void* handle);
int gd_cudnnSetStream(void* ctx, void* handle, void* stream);
int gd_cudnnCreateTensorDescriptor(void** d);
int gd_cudnnSetTensor4dDescriptor(void* d, int n, int c, int h, int w);
int gd_cudnnDestroyTensorDescriptor(void* d);
int gd_cudnnCreateFilterDescriptor(void** d);
int gd_cudnnSetFilter4dDescriptor(void* d, int k, int c, int h, int w);
int gd_cudnnDestroyFilterDescriptor(void* d);
int gd_cudnnCreateConvolutionDescriptor(void** d);
int gd_cudnnSetConvolution2dDescriptor(void* d, int ph, int pw, int sh, int sw, int dh, int dw);
int gd_cudnnSetConvolutionGroupCount(void* d, int groups);
int gd_cudnnSetConvolutionMathType(void* d, int math);
int gd_cudnnDestroyConvolutionDescriptor(void* d);
int gd_cudnnGetConvolutionForwardAlgorithm(void* ctx, void* h, void* x, void* w, void* conv, void* y, int* algo, size_t* ws);
int gd_cudnnConvolutionForward(void* ctx, void* h, float alpha, void* xd, unsigned long long x, void* wd, unsigned long long w, void* conv, int algo, unsigned long long ws, size_t ws_size, float beta, void* yd, unsigned long long y);
int gd_cudnnGetConvolutionBackwardDataAlgorithm(void* ctx, void* h, void* w, void* dy, void* conv, void* dx, int* algo, size_t* ws);
int gd_cudnnConvolutionBackwardData(void* ctx, void* h, float alpha, void* wd, unsigned long long w, void* dyd, unsigned long long dy, void* conv, int algo, unsigned long long ws, size_t ws_size, float beta, void* dxd, unsigned long long dx);
int gd_cudnnGetConvolutionBackwardFilterAlgorithm(void* ctx, void* h, void* x, void* dy, void* conv, void* dw, int* algo, size_t* ws);
int gd_cudnnConvolutionBackwardFilter(void* ctx, void* h, float alpha, void* xd, unsigned long long x, void* dyd, unsigned long long dy, void* conv, int algo, unsigned long long ws, size_t ws_size, float beta, void* dwd, unsigned long long dw);
int gd_nvmlInit(void);
int gd_nvmlShutdown(void);
int gd_nvmlSystemGetDriverVersion(char* buf, unsigned len);

#endif
