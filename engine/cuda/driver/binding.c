//go:build cgo

/* Dispatch tables filled by dlsym, and one trampoline per entry point:
 * cgo cannot call a C function pointer, so Go calls these. Trampolines of
 * calls that need a CUDA context make ctx current on the calling OS thread
 * first (a goroutine may move between threads between two calls). Values
 * that CUDA takes by address (cuBLAS alpha/beta, kernel arguments) are
 * taken by value or as a flat buffer and addressed here, so no Go pointer is
 * retained by C. */
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "binding.h"

#define GD_FIELD(ret, name, params, required) gd_##name##_t name;
static struct { GD_CUDA_FUNCS(GD_FIELD) } cu;
static struct { GD_CUBLAS_FUNCS(GD_FIELD) } blas;
static struct { GD_CUDNN_FUNCS(GD_FIELD) } dnn;
static struct { GD_NVML_FUNCS(GD_FIELD) } nvml;
#undef GD_FIELD

#define GD_BIND(ret, name, params, required)                              \
	table->name = (gd_##name##_t)dlsym(handle, #name);                \
	if (table->name == NULL && (required) && missing == NULL) missing = #name;

const char* gd_bind(int lib, void* handle) {
	const char* missing = NULL;
	switch (lib) {
	case GD_LIB_CUDA: {
		__typeof__(cu)* table = &cu;
		GD_CUDA_FUNCS(GD_BIND)
		break;
	}
	case GD_LIB_CUBLAS: {
		__typeof__(blas)* table = &blas;
		GD_CUBLAS_FUNCS(GD_BIND)
		break;
	}
	case GD_LIB_CUDNN: {
		__typeof__(dnn)* table = &dnn;
		GD_CUDNN_FUNCS(GD_BIND)
		break;
	}
	case GD_LIB_NVML: {
		__typeof__(nvml)* table = &nvml;
		GD_NVML_FUNCS(GD_BIND)
		break;
	}
	default:
		return "unknown library";
	}
	return missing;
}
#undef GD_BIND

static int gd_ensure(void* ctx) {
	gd_CUcontext cur = NULL;
	int rc = cu.cuCtxGetCurrent(&cur);
	if (rc != 0) return rc;
	if (cur == ctx) return 0;
	return cu.cuCtxSetCurrent(ctx);
}

#define ENSURE(ctx)                              \
	do {                                     \
		int rc_ = gd_ensure(ctx);        \
		if (rc_ != 0) return rc_;        \
	} while (0)

/* ---- libcuda ---- */

int gd_cuInit(unsigned flags) { return cu.cuInit(flags); }
int gd_cuDriverGetVersion(int* v) { return cu.cuDriverGetVersion(v); }

const char* gd_cuGetErrorName(int code) {
	const char* s = NULL;
	if (cu.cuGetErrorName == NULL || cu.cuGetErrorName(code, &s) != 0) return NULL;
	return s;
}

const char* gd_cuGetErrorString(int code) {
	const char* s = NULL;
	if (cu.cuGetErrorString == NULL || cu.cuGetErrorString(code, &s) != 0) return NULL;
	return s;
}

int gd_cuDeviceGetCount(int* n) { return cu.cuDeviceGetCount(n); }
int gd_cuDeviceGet(int* dev, int ordinal) { return cu.cuDeviceGet(dev, ordinal); }
int gd_cuDeviceGetName(char* name, int len, int dev) { return cu.cuDeviceGetName(name, len, dev); }
int gd_cuDeviceGetAttribute(int* v, int attr, int dev) { return cu.cuDeviceGetAttribute(v, attr, dev); }
int gd_cuDeviceTotalMem(size_t* bytes, int dev) { return cu.cuDeviceTotalMem_v2(bytes, dev); }
int gd_cuDevicePrimaryCtxRetain(void** ctx, int dev) { return cu.cuDevicePrimaryCtxRetain(ctx, dev); }
int gd_cuDevicePrimaryCtxRelease(int dev) { return cu.cuDevicePrimaryCtxRelease_v2(dev); }

int gd_cuCtxSynchronize(void* ctx) {
	ENSURE(ctx);
	return cu.cuCtxSynchronize();
}

int gd_cuMemAlloc(void* ctx, unsigned long long* ptr, size_t bytes) {
	ENSURE(ctx);
	return cu.cuMemAlloc_v2(ptr, bytes);
}

int gd_cuMemFree(void* ctx, unsigned long long ptr) {
	ENSURE(ctx);
	return cu.cuMemFree_v2(ptr);
}

int gd_cuMemGetInfo(void* ctx, size_t* free_bytes, size_t* total) {
	ENSURE(ctx);
	return cu.cuMemGetInfo_v2(free_bytes, total);
}

int gd_cuMemAllocHost(void* ctx, void** p, size_t bytes) {
	ENSURE(ctx);
	return cu.cuMemAllocHost_v2(p, bytes);
}

int gd_cuMemFreeHost(void* ctx, void* p) {
	ENSURE(ctx);
	return cu.cuMemFreeHost(p);
}

int gd_cuMemcpyHtoDAsync(void* ctx, unsigned long long dst, const void* src, size_t bytes, void* stream) {
	ENSURE(ctx);
	return cu.cuMemcpyHtoDAsync_v2(dst, src, bytes, stream);
}

int gd_cuMemcpyDtoHAsync(void* ctx, void* dst, unsigned long long src, size_t bytes, void* stream) {
	ENSURE(ctx);
	return cu.cuMemcpyDtoHAsync_v2(dst, src, bytes, stream);
}

int gd_cuMemcpyDtoDAsync(void* ctx, unsigned long long dst, unsigned long long src, size_t bytes, void* stream) {
	ENSURE(ctx);
	return cu.cuMemcpyDtoDAsync_v2(dst, src, bytes, stream);
}

int gd_cuMemsetD32Async(void* ctx, unsigned long long dst, unsigned value, size_t count, void* stream) {
	ENSURE(ctx);
	return cu.cuMemsetD32Async(dst, value, count, stream);
}

int gd_cuStreamCreate(void* ctx, void** stream, unsigned flags) {
	ENSURE(ctx);
	return cu.cuStreamCreate(stream, flags);
}

int gd_cuStreamDestroy(void* ctx, void* stream) {
	ENSURE(ctx);
	return cu.cuStreamDestroy_v2(stream);
}

int gd_cuStreamSynchronize(void* ctx, void* stream) {
	ENSURE(ctx);
	return cu.cuStreamSynchronize(stream);
}

int gd_cuStreamWaitEvent(void* ctx, void* stream, void* event) {
	ENSURE(ctx);
	return cu.cuStreamWaitEvent(stream, event, 0);
}

int gd_cuEventCreate(void* ctx, void** event, unsigned flags) {
	ENSURE(ctx);
	return cu.cuEventCreate(event, flags);
}

int gd_cuEventDestroy(void* ctx, void* event) {
	ENSURE(ctx);
	return cu.cuEventDestroy_v2(event);
}

int gd_cuEventRecord(void* ctx, void* event, void* stream) {
	ENSURE(ctx);
	return cu.cuEventRecord(event, stream);
}

int gd_cuEventSynchronize(void* ctx, void* event) {
	ENSURE(ctx);
	return cu.cuEventSynchronize(event);
}

int gd_cuEventElapsedTime(void* ctx, float* ms, void* start, void* end) {
	ENSURE(ctx);
	return cu.cuEventElapsedTime(ms, start, end);
}

int gd_cuModuleLoadDataEx(void* ctx, void** module, const void* image, char* log, unsigned log_size) {
	ENSURE(ctx);
	gd_CUjit_option opts[2] = {GD_CU_JIT_ERROR_LOG_BUFFER, GD_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void* vals[2] = {log, (void*)(uintptr_t)log_size};
	if (log_size > 0) log[0] = 0;
	return cu.cuModuleLoadDataEx(module, image, log_size > 0 ? 2 : 0, opts, vals);
}

int gd_cuModuleUnload(void* ctx, void* module) {
	ENSURE(ctx);
	return cu.cuModuleUnload(module);
}

int gd_cuModuleGetFunction(void* ctx, void** fn, void* module, const char* name) {
	ENSURE(ctx);
	return cu.cuModuleGetFunction(fn, module, name);
}

int gd_cuLaunchKernel(void* ctx, void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
		      unsigned shared, void* stream, const unsigned char* data, const unsigned* offsets, int n) {
	void* params[GD_MAX_KERNEL_ARGS];
	if (n < 0 || n > GD_MAX_KERNEL_ARGS) return 1; /* CUDA_ERROR_INVALID_VALUE; Go checks first */
	for (int i = 0; i < n; i++) params[i] = (void*)(data + offsets[i]);
	ENSURE(ctx);
	return cu.cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, shared, stream, params, NULL);
}

/* ---- cuBLAS ---- */

int gd_cublasCreate(void* ctx, void** handle) {
	ENSURE(ctx);
	return blas.cublasCreate_v2(handle);
}

int gd_cublasDestroy(void* ctx, void* handle) {
	ENSURE(ctx);
	return blas.cublasDestroy_v2(handle);
}

int gd_cublasSetStream(void* ctx, void* handle, void* stream) {
	ENSURE(ctx);
	return blas.cublasSetStream_v2(handle, stream);
}

int gd_cublasSetMathMode(void* ctx, void* handle, int mode) {
	ENSURE(ctx);
	return blas.cublasSetMathMode(handle, mode);
}

int gd_cublasGetProperty(int type, int* value) { return blas.cublasGetProperty(type, value); }

const char* gd_cublasGetStatusName(int status) {
	if (blas.cublasGetStatusName == NULL) return NULL;
	return blas.cublasGetStatusName(status);
}

int gd_cublasSgemm(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha, unsigned long long a, int lda,
		   unsigned long long b, int ldb, float beta, unsigned long long c, int ldc) {
	ENSURE(ctx);
	return blas.cublasSgemm_v2(handle, ta, tb, m, n, k, &alpha, (const float*)(uintptr_t)a, lda, (const float*)(uintptr_t)b,
				   ldb, &beta, (float*)(uintptr_t)c, ldc);
}

int gd_cublasSgemmStridedBatched(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha,
				 unsigned long long a, int lda, long long sa, unsigned long long b, int ldb, long long sb,
				 float beta, unsigned long long c, int ldc, long long sc, int batch) {
	ENSURE(ctx);
	return blas.cublasSgemmStridedBatched(handle, ta, tb, m, n, k, &alpha, (const float*)(uintptr_t)a, lda, sa,
					      (const float*)(uintptr_t)b, ldb, sb, &beta, (float*)(uintptr_t)c, ldc, sc,
					      batch);
}

int gd_cublasGemmEx(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha, unsigned long long a, int lda,
		    unsigned long long b, int ldb, float beta, unsigned long long c, int ldc, int compute) {
	ENSURE(ctx);
	return blas.cublasGemmEx(handle, ta, tb, m, n, k, &alpha, (const void*)(uintptr_t)a, GD_CUDA_R_32F, lda,
				 (const void*)(uintptr_t)b, GD_CUDA_R_32F, ldb, &beta, (void*)(uintptr_t)c, GD_CUDA_R_32F, ldc,
				 compute, GD_CUBLAS_GEMM_DEFAULT);
}

int gd_cublasGemmStridedBatchedEx(void* ctx, void* handle, int ta, int tb, int m, int n, int k, float alpha,
				  unsigned long long a, int lda, long long sa, unsigned long long b, int ldb, long long sb,
				  float beta, unsigned long long c, int ldc, long long sc, int batch, int compute) {
	ENSURE(ctx);
	return blas.cublasGemmStridedBatchedEx(handle, ta, tb, m, n, k, &alpha, (const void*)(uintptr_t)a, GD_CUDA_R_32F,
					       lda, sa, (const void*)(uintptr_t)b, GD_CUDA_R_32F, ldb, sb, &beta,
					       (void*)(uintptr_t)c, GD_CUDA_R_32F, ldc, sc, batch, compute,
					       GD_CUBLAS_GEMM_DEFAULT);
}

/* ---- cuDNN ---- */

size_t gd_cudnnGetVersion(void) { return dnn.cudnnGetVersion(); }
const char* gd_cudnnGetErrorString(int status) { return dnn.cudnnGetErrorString(status); }

int gd_cudnnCreate(void* ctx, void** handle) {
	ENSURE(ctx);
	return dnn.cudnnCreate(handle);
}

int gd_cudnnDestroy(void* ctx, void* handle) {
	ENSURE(ctx);
	return dnn.cudnnDestroy(handle);
}

int gd_cudnnSetStream(void* ctx, void* handle, void* stream) {
	ENSURE(ctx);
	return dnn.cudnnSetStream(handle, stream);
}

int gd_cudnnCreateTensorDescriptor(void** d) { return dnn.cudnnCreateTensorDescriptor(d); }
int gd_cudnnSetTensor4dDescriptor(void* d, int n, int c, int h, int w) {
	return dnn.cudnnSetTensor4dDescriptor(d, GD_CUDNN_TENSOR_NCHW, GD_CUDNN_DATA_FLOAT, n, c, h, w);
}
int gd_cudnnDestroyTensorDescriptor(void* d) { return dnn.cudnnDestroyTensorDescriptor(d); }
int gd_cudnnCreateFilterDescriptor(void** d) { return dnn.cudnnCreateFilterDescriptor(d); }
int gd_cudnnSetFilter4dDescriptor(void* d, int k, int c, int h, int w) {
	return dnn.cudnnSetFilter4dDescriptor(d, GD_CUDNN_DATA_FLOAT, GD_CUDNN_TENSOR_NCHW, k, c, h, w);
}
int gd_cudnnDestroyFilterDescriptor(void* d) { return dnn.cudnnDestroyFilterDescriptor(d); }
int gd_cudnnCreateConvolutionDescriptor(void** d) { return dnn.cudnnCreateConvolutionDescriptor(d); }
int gd_cudnnSetConvolution2dDescriptor(void* d, int ph, int pw, int sh, int sw, int dh, int dw) {
	return dnn.cudnnSetConvolution2dDescriptor(d, ph, pw, sh, sw, dh, dw, GD_CUDNN_CROSS_CORRELATION, GD_CUDNN_DATA_FLOAT);
}
int gd_cudnnSetConvolutionGroupCount(void* d, int groups) { return dnn.cudnnSetConvolutionGroupCount(d, groups); }
int gd_cudnnSetConvolutionMathType(void* d, int math) { return dnn.cudnnSetConvolutionMathType(d, math); }
int gd_cudnnDestroyConvolutionDescriptor(void* d) { return dnn.cudnnDestroyConvolutionDescriptor(d); }

int gd_cudnnGetConvolutionForwardAlgorithm(void* ctx, void* h, void* x, void* w, void* conv, void* y, int* algo, size_t* ws) {
	ENSURE(ctx);
	gd_conv_algo_perf perf[8];
	int got = 0;
	memset(perf, 0, sizeof perf);
	int rc = dnn.cudnnGetConvolutionForwardAlgorithm_v7(h, x, w, conv, y, 8, &got, (void*)perf);
	if (rc != 0) return rc;
	for (int i = 0; i < got; i++) {
		if (perf[i].status == 0) {
			*algo = perf[i].algo;
			return dnn.cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, perf[i].algo, ws);
		}
	}
	return GD_NO_ALGORITHM;
}

int gd_cudnnConvolutionForward(void* ctx, void* h, float alpha, void* xd, unsigned long long x, void* wd, unsigned long long w,
			       void* conv, int algo, unsigned long long ws, size_t ws_size, float beta, void* yd,
			       unsigned long long y) {
	ENSURE(ctx);
	return dnn.cudnnConvolutionForward(h, &alpha, xd, (const void*)(uintptr_t)x, wd, (const void*)(uintptr_t)w, conv, algo,
					   (void*)(uintptr_t)ws, ws_size, &beta, yd, (void*)(uintptr_t)y);
}

int gd_cudnnGetConvolutionBackwardDataAlgorithm(void* ctx, void* h, void* w, void* dy, void* conv, void* dx, int* algo, size_t* ws) {
	ENSURE(ctx);
	gd_conv_algo_perf perf[8];
	int got = 0;
	memset(perf, 0, sizeof perf);
	int rc = dnn.cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w, dy, conv, dx, 8, &got, (void*)perf);
	if (rc != 0) return rc;
	for (int i = 0; i < got; i++) {
		if (perf[i].status == 0) {
			*algo = perf[i].algo;
			return dnn.cudnnGetConvolutionBackwardDataWorkspaceSize(h, w, dy, conv, dx, perf[i].algo, ws);
		}
	}
	return GD_NO_ALGORITHM;
}

int gd_cudnnConvolutionBackwardData(void* ctx, void* h, float alpha, void* wd, unsigned long long w, void* dyd,
				    unsigned long long dy, void* conv, int algo, unsigned long long ws, size_t ws_size,
				    float beta, void* dxd, unsigned long long dx) {
	ENSURE(ctx);
	return dnn.cudnnConvolutionBackwardData(h, &alpha, wd, (const void*)(uintptr_t)w, dyd, (const void*)(uintptr_t)dy, conv,
						algo, (void*)(uintptr_t)ws, ws_size, &beta, dxd, (void*)(uintptr_t)dx);
}

int gd_cudnnGetConvolutionBackwardFilterAlgorithm(void* ctx, void* h, void* x, void* dy, void* conv, void* dw, int* algo, size_t* ws) {
	ENSURE(ctx);
	gd_conv_algo_perf perf[8];
	int got = 0;
	memset(perf, 0, sizeof perf);
	int rc = dnn.cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x, dy, conv, dw, 8, &got, (void*)perf);
	if (rc != 0) return rc;
	for (int i = 0; i < got; i++) {
		if (perf[i].status == 0) {
			*algo = perf[i].algo;
			return dnn.cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x, dy, conv, dw, perf[i].algo, ws);
		}
	}
	return GD_NO_ALGORITHM;
}

int gd_cudnnConvolutionBackwardFilter(void* ctx, void* h, float alpha, void* xd, unsigned long long x, void* dyd,
				      unsigned long long dy, void* conv, int algo, unsigned long long ws, size_t ws_size,
				      float beta, void* dwd, unsigned long long dw) {
	ENSURE(ctx);
	return dnn.cudnnConvolutionBackwardFilter(h, &alpha, xd, (const void*)(uintptr_t)x, dyd, (const void*)(uintptr_t)dy, conv,
						  algo, (void*)(uintptr_t)ws, ws_size, &beta, dwd, (void*)(uintptr_t)dw);
}

/* ---- NVML ---- */

int gd_nvmlInit(void) { return nvml.nvmlInit_v2(); }
int gd_nvmlShutdown(void) { return nvml.nvmlShutdown(); }
int gd_nvmlSystemGetDriverVersion(char* buf, unsigned len) { return nvml.nvmlSystemGetDriverVersion(buf, len); }
