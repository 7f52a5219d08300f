/* Our own declarations of every CUDA driver, cuBLAS, cuDNN and NVML entry
 * point gidedge calls, so that nothing NVIDIA ships is needed to build.
 *
 * Each library's functions form one X-macro list of
 * X(return type, name, (parameter types), required). The lists generate the
 * function-pointer typedefs and the dispatch tables here (binding.c), and
 * benchmarks/cuda_header_check.c, compiled on a machine with the CUDA
 * toolkit, static-asserts each typedef against NVIDIA's prototype (defining
 * GD_REAL_TYPES to substitute NVIDIA's handle and enum types for ours) and
 * each constant below against NVIDIA's value. */
#ifndef GIDEDGE_CUDA_DECL_H
#define GIDEDGE_CUDA_DECL_H

#include <stddef.h>

#ifndef GD_REAL_TYPES
typedef int gd_CUresult;
typedef int gd_CUdevice;
typedef int gd_CUdevice_attribute;
typedef int gd_CUjit_option;
typedef unsigned long long gd_CUdeviceptr;
typedef void* gd_CUcontext;
typedef void* gd_CUmodule;
typedef void* gd_CUfunction;
typedef void* gd_CUstream;
typedef void* gd_CUevent;
typedef int gd_cublasStatus_t;
typedef void* gd_cublasHandle_t;
typedef int gd_cublasOperation_t;
typedef int gd_cublasMath_t;
typedef int gd_cublasComputeType_t;
typedef int gd_cublasGemmAlgo_t;
typedef int gd_cudaDataType;
typedef int gd_libraryPropertyType;
typedef void* gd_cudaStream_t;
typedef int gd_cudnnStatus_t;
typedef void* gd_cudnnHandle_t;
typedef void* gd_cudnnTensorDescriptor_t;
typedef void* gd_cudnnFilterDescriptor_t;
typedef void* gd_cudnnConvolutionDescriptor_t;
typedef int gd_cudnnTensorFormat_t;
typedef int gd_cudnnDataType_t;
typedef int gd_cudnnConvolutionMode_t;
typedef int gd_cudnnMathType_t;
typedef int gd_cudnnConvolutionFwdAlgo_t;
typedef int gd_cudnnConvolutionBwdDataAlgo_t;
typedef int gd_cudnnConvolutionBwdFilterAlgo_t;
typedef int gd_nvmlReturn_t;
#endif

/* cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t share this layout;
 * the header check asserts size and offsets. */
typedef struct {
	int algo;
	int status;
	float time;
	size_t memory;
	int determinism;
	int mathType;
	int reserved[3];
} gd_conv_algo_perf;

#ifndef GD_REAL_TYPES
typedef gd_conv_algo_perf gd_cudnnConvolutionFwdAlgoPerf_t;
typedef gd_conv_algo_perf gd_cudnnConvolutionBwdDataAlgoPerf_t;
typedef gd_conv_algo_perf gd_cudnnConvolutionBwdFilterAlgoPerf_t;
#endif

/* libcuda.so.1 */
#define GD_CUDA_FUNCS(X)                                                                                                   \
	X(gd_CUresult, cuInit, (unsigned int), 1)                                                                          \
	X(gd_CUresult, cuDriverGetVersion, (int*), 1)                                                                      \
	X(gd_CUresult, cuGetErrorName, (gd_CUresult, const char**), 1)                                                    \
	X(gd_CUresult, cuGetErrorString, (gd_CUresult, const char**), 1)                                                  \
	X(gd_CUresult, cuDeviceGetCount, (int*), 1)                                                                        \
	X(gd_CUresult, cuDeviceGet, (gd_CUdevice*, int), 1)                                                                \
	X(gd_CUresult, cuDeviceGetName, (char*, int, gd_CUdevice), 1)                                                      \
	X(gd_CUresult, cuDeviceGetAttribute, (int*, gd_CUdevice_attribute, gd_CUdevice), 1)                               \
	X(gd_CUresult, cuDeviceTotalMem_v2, (size_t*, gd_CUdevice), 1)                                                     \
	X(gd_CUresult, cuDevicePrimaryCtxRetain, (gd_CUcontext*, gd_CUdevice), 1)                                          \
	X(gd_CUresult, cuDevicePrimaryCtxRelease_v2, (gd_CUdevice), 1)                                                     \
	X(gd_CUresult, cuCtxSetCurrent, (gd_CUcontext), 1)                                                                 \
	X(gd_CUresult, cuCtxGetCurrent, (gd_CUcontext*), 1)                                                                \
	X(gd_CUresult, cuCtxSynchronize, (void), 1)                                                                        \
	X(gd_CUresult, cuMemAlloc_v2, (gd_CUdeviceptr*, size_t), 1)                                                        \
	X(gd_CUresult, cuMemFree_v2, (gd_CUdeviceptr), 1)                                                                  \
	X(gd_CUresult, cuMemGetInfo_v2, (size_t*, size_t*), 1)                                                             \
	X(gd_CUresult, cuMemAllocHost_v2, (void**, size_t), 1)                                                             \
	X(gd_CUresult, cuMemFreeHost, (void*), 1)                                                                          \
	X(gd_CUresult, cuMemcpyHtoDAsync_v2, (gd_CUdeviceptr, const void*, size_t, gd_CUstream), 1)                       \
	X(gd_CUresult, cuMemcpyDtoHAsync_v2, (void*, gd_CUdeviceptr, size_t, gd_CUstream), 1)                             \
	X(gd_CUresult, cuMemcpyDtoDAsync_v2, (gd_CUdeviceptr, gd_CUdeviceptr, size_t, gd_CUstream), 1)                    \
	X(gd_CUresult, cuMemsetD32Async, (gd_CUdeviceptr, unsigned int, size_t, gd_CUstream), 1)                          \
	X(gd_CUresult, cuStreamCreate, (gd_CUstream*, unsigned int), 1)                                                    \
	X(gd_CUresult, cuStreamDestroy_v2, (gd_CUstream), 1)                                                               \
	X(gd_CUresult, cuStreamSynchronize, (gd_CUstream), 1)                                                              \
	X(gd_CUresult, cuStreamWaitEvent, (gd_CUstream, gd_CUevent, unsigned int), 1)                                      \
	X(gd_CUresult, cuEventCreate, (gd_CUevent*, unsigned int), 1)                                                      \
	X(gd_CUresult, cuEventDestroy_v2, (gd_CUevent), 1)                                                                 \
	X(gd_CUresult, cuEventRecord, (gd_CUevent, gd_CUstream), 1)                                                        \
	X(gd_CUresult, cuEventSynchronize, (gd_CUevent), 1)                                                                \
	X(gd_CUresult, cuEventElapsedTime, (float*, gd_CUevent, gd_CUevent), 1)                                           \
	X(gd_CUresult, cuModuleLoadDataEx, (gd_CUmodule*, const void*, unsigned int, gd_CUjit_option*, void**), 1)        \
	X(gd_CUresult, cuModuleUnload, (gd_CUmodule), 1)                                                                   \
	X(gd_CUresult, cuModuleGetFunction, (gd_CUfunction*, gd_CUmodule, const char*), 1)                                 \
	X(gd_CUresult, cuLaunchKernel,                                                                                     \
	  (gd_CUfunction, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, \
	   gd_CUstream, void**, void**),                                                                                   \
	  1)

/* libcublas.so.13 / .12 */
#define GD_CUBLAS_FUNCS(X)                                                                                                 \
	X(gd_cublasStatus_t, cublasCreate_v2, (gd_cublasHandle_t*), 1)                                                     \
	X(gd_cublasStatus_t, cublasDestroy_v2, (gd_cublasHandle_t), 1)                                                     \
	X(gd_cublasStatus_t, cublasSetStream_v2, (gd_cublasHandle_t, gd_cudaStream_t), 1)                                  \
	X(gd_cublasStatus_t, cublasSetMathMode, (gd_cublasHandle_t, gd_cublasMath_t), 1)                                   \
	X(gd_cublasStatus_t, cublasGetProperty, (gd_libraryPropertyType, int*), 1)                                         \
	X(gd_cublasStatus_t, cublasSgemm_v2,                                                                               \
	  (gd_cublasHandle_t, gd_cublasOperation_t, gd_cublasOperation_t, int, int, int, const float*, const float*, int,   \
	   const float*, int, const float*, float*, int),                                                                  \
	  1)                                                                                                               \
	X(gd_cublasStatus_t, cublasSgemmStridedBatched,                                                                    \
	  (gd_cublasHandle_t, gd_cublasOperation_t, gd_cublasOperation_t, int, int, int, const float*, const float*, int,   \
	   long long int, const float*, int, long long int, const float*, float*, int, long long int, int),                \
	  1)                                                                                                               \
	X(gd_cublasStatus_t, cublasGemmEx,                                                                                 \
	  (gd_cublasHandle_t, gd_cublasOperation_t, gd_cublasOperation_t, int, int, int, const void*, const void*,          \
	   gd_cudaDataType, int, const void*, gd_cudaDataType, int, const void*, void*, gd_cudaDataType, int,               \
	   gd_cublasComputeType_t, gd_cublasGemmAlgo_t),                                                                   \
	  1)                                                                                                               \
	X(gd_cublasStatus_t, cublasGemmStridedBatchedEx,                                                                   \
	  (gd_cublasHandle_t, gd_cublasOperation_t, gd_cublasOperation_t, int, int, int, const void*, const void*,          \
	   gd_cudaDataType, int, long long int, const void*, gd_cudaDataType, int, long long int, const void*, void*,       \
	   gd_cudaDataType, int, long long int, int, gd_cublasComputeType_t, gd_cublasGemmAlgo_t),                          \
	  1)                                                                                                               \
	X(const char*, cublasGetStatusName, (gd_cublasStatus_t), 0)

/* libcudnn.so.9: the legacy convolution API (deprecated in 9.x, still
 * shipped), behind driver.DNN so the graph API can replace it. */
#define GD_CUDNN_FUNCS(X)                                                                                                  \
	X(size_t, cudnnGetVersion, (void), 1)                                                                              \
	X(const char*, cudnnGetErrorString, (gd_cudnnStatus_t), 1)                                                         \
	X(gd_cudnnStatus_t, cudnnCreate, (gd_cudnnHandle_t*), 1)                                                           \
	X(gd_cudnnStatus_t, cudnnDestroy, (gd_cudnnHandle_t), 1)                                                           \
	X(gd_cudnnStatus_t, cudnnSetStream, (gd_cudnnHandle_t, gd_cudaStream_t), 1)                                        \
	X(gd_cudnnStatus_t, cudnnCreateTensorDescriptor, (gd_cudnnTensorDescriptor_t*), 1)                                 \
	X(gd_cudnnStatus_t, cudnnSetTensor4dDescriptor,                                                                    \
	  (gd_cudnnTensorDescriptor_t, gd_cudnnTensorFormat_t, gd_cudnnDataType_t, int, int, int, int), 1)                \
	X(gd_cudnnStatus_t, cudnnDestroyTensorDescriptor, (gd_cudnnTensorDescriptor_t), 1)                                 \
	X(gd_cudnnStatus_t, cudnnCreateFilterDescriptor, (gd_cudnnFilterDescriptor_t*), 1)                                 \
	X(gd_cudnnStatus_t, cudnnSetFilter4dDescriptor,                                                                    \
	  (gd_cudnnFilterDescriptor_t, gd_cudnnDataType_t, gd_cudnnTensorFormat_t, int, int, int, int), 1)                \
	X(gd_cudnnStatus_t, cudnnDestroyFilterDescriptor, (gd_cudnnFilterDescriptor_t), 1)                                 \
	X(gd_cudnnStatus_t, cudnnCreateConvolutionDescriptor, (gd_cudnnConvolutionDescriptor_t*), 1)                       \
	X(gd_cudnnStatus_t, cudnnSetConvolution2dDescriptor,                                                               \
	  (gd_cudnnConvolutionDescriptor_t, int, int, int, int, int, int, gd_cudnnConvolutionMode_t, gd_cudnnDataType_t),   \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnSetConvolutionGroupCount, (gd_cudnnConvolutionDescriptor_t, int), 1)                      \
	X(gd_cudnnStatus_t, cudnnSetConvolutionMathType, (gd_cudnnConvolutionDescriptor_t, gd_cudnnMathType_t), 1)         \
	X(gd_cudnnStatus_t, cudnnDestroyConvolutionDescriptor, (gd_cudnnConvolutionDescriptor_t), 1)                       \
	X(gd_cudnnStatus_t, cudnnGetConvolutionForwardAlgorithm_v7,                                                        \
	  (gd_cudnnHandle_t, gd_cudnnTensorDescriptor_t, gd_cudnnFilterDescriptor_t, gd_cudnnConvolutionDescriptor_t,       \
	   gd_cudnnTensorDescriptor_t, int, int*, gd_cudnnConvolutionFwdAlgoPerf_t*),                                       \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnGetConvolutionForwardWorkspaceSize,                                                       \
	  (gd_cudnnHandle_t, gd_cudnnTensorDescriptor_t, gd_cudnnFilterDescriptor_t, gd_cudnnConvolutionDescriptor_t,       \
	   gd_cudnnTensorDescriptor_t, gd_cudnnConvolutionFwdAlgo_t, size_t*),                                              \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnConvolutionForward,                                                                       \
	  (gd_cudnnHandle_t, const void*, gd_cudnnTensorDescriptor_t, const void*, gd_cudnnFilterDescriptor_t, const void*, \
	   gd_cudnnConvolutionDescriptor_t, gd_cudnnConvolutionFwdAlgo_t, void*, size_t, const void*,                       \
	   gd_cudnnTensorDescriptor_t, void*),                                                                             \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnGetConvolutionBackwardDataAlgorithm_v7,                                                   \
	  (gd_cudnnHandle_t, gd_cudnnFilterDescriptor_t, gd_cudnnTensorDescriptor_t, gd_cudnnConvolutionDescriptor_t,       \
	   gd_cudnnTensorDescriptor_t, int, int*, gd_cudnnConvolutionBwdDataAlgoPerf_t*),                                   \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnGetConvolutionBackwardDataWorkspaceSize,                                                  \
	  (gd_cudnnHandle_t, gd_cudnnFilterDescriptor_t, gd_cudnnTensorDescriptor_t, gd_cudnnConvolutionDescriptor_t,       \
	   gd_cudnnTensorDescriptor_t, gd_cudnnConvolutionBwdDataAlgo_t, size_t*),                                          \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnConvolutionBackwardData,                                                                  \
	  (gd_cudnnHandle_t, const void*, gd_cudnnFilterDescriptor_t, const void*, gd_cudnnTensorDescriptor_t, const void*, \
	   gd_cudnnConvolutionDescriptor_t, gd_cudnnConvolutionBwdDataAlgo_t, void*, size_t, const void*,                   \
	   gd_cudnnTensorDescriptor_t, void*),                                                                             \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnGetConvolutionBackwardFilterAlgorithm_v7,                                                 \
	  (gd_cudnnHandle_t, gd_cudnnTensorDescriptor_t, gd_cudnnTensorDescriptor_t, gd_cudnnConvolutionDescriptor_t,       \
	   gd_cudnnFilterDescriptor_t, int, int*, gd_cudnnConvolutionBwdFilterAlgoPerf_t*),                                 \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnGetConvolutionBackwardFilterWorkspaceSize,                                                \
	  (gd_cudnnHandle_t, gd_cudnnTensorDescriptor_t, gd_cudnnTensorDescriptor_t, gd_cudnnConvolutionDescriptor_t,       \
	   gd_cudnnFilterDescriptor_t, gd_cudnnConvolutionBwdFilterAlgo_t, size_t*),                                        \
	  1)                                                                                                               \
	X(gd_cudnnStatus_t, cudnnConvolutionBackwardFilter,                                                                \
	  (gd_cudnnHandle_t, const void*, gd_cudnnTensorDescriptor_t, const void*, gd_cudnnTensorDescriptor_t, const void*, \
	   gd_cudnnConvolutionDescriptor_t, gd_cudnnConvolutionBwdFilterAlgo_t, void*, size_t, const void*,                 \
	   gd_cudnnFilterDescriptor_t, void*),                                                                             \
	  1)

/* libnvidia-ml.so.1, for the driver's version string only. */
#define GD_NVML_FUNCS(X)                                                                                                   \
	X(gd_nvmlReturn_t, nvmlInit_v2, (void), 1)                                                                         \
	X(gd_nvmlReturn_t, nvmlShutdown, (void), 1)                                                                        \
	X(gd_nvmlReturn_t, nvmlSystemGetDriverVersion, (char*, unsigned int), 1)

#define GD_TYPEDEF(ret, name, params, required) typedef ret(*gd_##name##_t) params;
GD_CUDA_FUNCS(GD_TYPEDEF)
GD_CUBLAS_FUNCS(GD_TYPEDEF)
GD_NVML_FUNCS(GD_TYPEDEF)
/* The header check substitutes cuDNN's types only when it has cudnn.h. */
#if !defined(GD_REAL_TYPES) || defined(GD_REAL_CUDNN_TYPES)
GD_CUDNN_FUNCS(GD_TYPEDEF)
#endif
#undef GD_TYPEDEF

/* The enum values we pass, per library, as X(our name, NVIDIA's name, value). */
#define GD_CUDA_CONSTANTS(X)                                                                                \
	X(GD_CUDA_SUCCESS, CUDA_SUCCESS, 0)                                                                 \
	X(GD_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 16)        \
	X(GD_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 75) \
	X(GD_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 76) \
	X(GD_CU_STREAM_NON_BLOCKING, CU_STREAM_NON_BLOCKING, 1)                                             \
	X(GD_CU_EVENT_DEFAULT, CU_EVENT_DEFAULT, 0)                                                         \
	X(GD_CU_EVENT_DISABLE_TIMING, CU_EVENT_DISABLE_TIMING, 2)                                           \
	X(GD_CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER, 3)                                             \
	X(GD_CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, 4)                       \
	X(GD_CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER, 5)                                           \
	X(GD_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, 6)

#define GD_CUBLAS_CONSTANTS(X)                                                                              \
	X(GD_CUBLAS_STATUS_SUCCESS, CUBLAS_STATUS_SUCCESS, 0)                                               \
	X(GD_CUBLAS_OP_N, CUBLAS_OP_N, 0)                                                                   \
	X(GD_CUBLAS_OP_T, CUBLAS_OP_T, 1)                                                                   \
	X(GD_CUBLAS_DEFAULT_MATH, CUBLAS_DEFAULT_MATH, 0)                                                   \
	X(GD_CUBLAS_PEDANTIC_MATH, CUBLAS_PEDANTIC_MATH, 2)                                                 \
	X(GD_CUBLAS_TF32_TENSOR_OP_MATH, CUBLAS_TF32_TENSOR_OP_MATH, 3)                                     \
	X(GD_CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F, 68)                                                    \
	X(GD_CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_32F_FAST_TF32, 77)                                \
	X(GD_CUBLAS_GEMM_DEFAULT, CUBLAS_GEMM_DEFAULT, -1)                                                  \
	X(GD_CUDA_R_32F, CUDA_R_32F, 0)                                                                     \
	X(GD_MAJOR_VERSION, MAJOR_VERSION, 0)                                                               \
	X(GD_MINOR_VERSION, MINOR_VERSION, 1)                                                               \
	X(GD_PATCH_LEVEL, PATCH_LEVEL, 2)

#define GD_CUDNN_CONSTANTS(X)                                                                               \
	X(GD_CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS, 0)                                                 \
	X(GD_CUDNN_TENSOR_NCHW, CUDNN_TENSOR_NCHW, 0)                                                       \
	X(GD_CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, 0)                                                         \
	X(GD_CUDNN_CROSS_CORRELATION, CUDNN_CROSS_CORRELATION, 1)                                           \
	X(GD_CUDNN_DEFAULT_MATH, CUDNN_DEFAULT_MATH, 0)                                                     \
	X(GD_CUDNN_FMA_MATH, CUDNN_FMA_MATH, 3)

#define GD_NVML_CONSTANTS(X) X(GD_NVML_SUCCESS, NVML_SUCCESS, 0)

#define GD_DEFINE_CONSTANT(ours, theirs, value) enum { ours = value };
GD_CUDA_CONSTANTS(GD_DEFINE_CONSTANT)
GD_CUBLAS_CONSTANTS(GD_DEFINE_CONSTANT)
GD_CUDNN_CONSTANTS(GD_DEFINE_CONSTANT)
GD_NVML_CONSTANTS(GD_DEFINE_CONSTANT)
#undef GD_DEFINE_CONSTANT

#endif
