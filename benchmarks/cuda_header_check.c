/* Checks gidedge's own CUDA declarations (engine/cuda/driver/cuda_decl.h)
 * against NVIDIA's headers, at compile time: every function-pointer typedef
 * against the real prototype, every constant against the real enum value,
 * our handle and enum types against the real sizes, and the cuDNN
 * algorithm-performance struct's layout. It compiles (and does nothing)
 * when all agree; each disagreement is a compile error naming the entry
 * point or constant.
 *
 *   cc -fsyntax-only -I/usr/local/cuda/include [-DGD_CHECK_CUDNN -I<cudnn include>] \
 *      benchmarks/cuda_header_check.c
 *
 * benchmarks/gpu_check.sh runs it on the GPU machine (CUDA 13 toolkit). */
#include <cuda.h>
#include <cublas_v2.h>
#include <nvml.h>
#include <stddef.h>
#ifdef GD_CHECK_CUDNN
#include <cudnn.h>
#endif

/* Our types, as NVIDIA's: each typedef below must then match exactly. */
#define GD_REAL_TYPES 1
typedef CUresult gd_CUresult;
typedef CUdevice gd_CUdevice;
typedef CUdevice_attribute gd_CUdevice_attribute;
typedef CUjit_option gd_CUjit_option;
typedef CUdeviceptr gd_CUdeviceptr;
typedef CUcontext gd_CUcontext;
typedef CUmodule gd_CUmodule;
typedef CUfunction gd_CUfunction;
typedef CUstream gd_CUstream;
typedef CUevent gd_CUevent;
typedef cublasStatus_t gd_cublasStatus_t;
typedef cublasHandle_t gd_cublasHandle_t;
typedef cublasOperation_t gd_cublasOperation_t;
typedef cublasMath_t gd_cublasMath_t;
typedef cublasComputeType_t gd_cublasComputeType_t;
typedef cublasGemmAlgo_t gd_cublasGemmAlgo_t;
typedef cudaDataType gd_cudaDataType;
typedef libraryPropertyType gd_libraryPropertyType;
typedef cudaStream_t gd_cudaStream_t;
typedef nvmlReturn_t gd_nvmlReturn_t;
#ifdef GD_CHECK_CUDNN
#define GD_REAL_CUDNN_TYPES 1
typedef cudnnStatus_t gd_cudnnStatus_t;
typedef cudnnHandle_t gd_cudnnHandle_t;
typedef cudnnTensorDescriptor_t gd_cudnnTensorDescriptor_t;
typedef cudnnFilterDescriptor_t gd_cudnnFilterDescriptor_t;
typedef cudnnConvolutionDescriptor_t gd_cudnnConvolutionDescriptor_t;
typedef cudnnTensorFormat_t gd_cudnnTensorFormat_t;
typedef cudnnDataType_t gd_cudnnDataType_t;
typedef cudnnConvolutionMode_t gd_cudnnConvolutionMode_t;
typedef cudnnMathType_t gd_cudnnMathType_t;
typedef cudnnConvolutionFwdAlgo_t gd_cudnnConvolutionFwdAlgo_t;
typedef cudnnConvolutionBwdDataAlgo_t gd_cudnnConvolutionBwdDataAlgo_t;
typedef cudnnConvolutionBwdFilterAlgo_t gd_cudnnConvolutionBwdFilterAlgo_t;
typedef cudnnConvolutionFwdAlgoPerf_t gd_cudnnConvolutionFwdAlgoPerf_t;
typedef cudnnConvolutionBwdDataAlgoPerf_t gd_cudnnConvolutionBwdDataAlgoPerf_t;
typedef cudnnConvolutionBwdFilterAlgoPerf_t gd_cudnnConvolutionBwdFilterAlgoPerf_t;
#endif

#include "../engine/cuda/driver/cuda_decl.h"

#define GD_CHECK_FUNCTION(ret, name, params, required) \
	_Static_assert(__builtin_types_compatible_p(gd_##name##_t, __typeof__(&name)), #name ": gidedge's declaration differs from NVIDIA's prototype");
GD_CUDA_FUNCS(GD_CHECK_FUNCTION)
GD_CUBLAS_FUNCS(GD_CHECK_FUNCTION)
GD_NVML_FUNCS(GD_CHECK_FUNCTION)
#ifdef GD_CHECK_CUDNN
GD_CUDNN_FUNCS(GD_CHECK_FUNCTION)
#endif

/* Without GD_REAL_TYPES gidedge passes enums as int, handles as void* and
 * device pointers as unsigned long long: same sizes as NVIDIA's. */
_Static_assert(sizeof(CUresult) == sizeof(int), "CUresult is not int-sized");
_Static_assert(sizeof(CUdevice) == sizeof(int), "CUdevice is not int-sized");
_Static_assert(sizeof(CUdevice_attribute) == sizeof(int), "CUdevice_attribute is not int-sized");
_Static_assert(sizeof(CUjit_option) == sizeof(int), "CUjit_option is not int-sized");
_Static_assert(sizeof(CUdeviceptr) == sizeof(unsigned long long), "CUdeviceptr is not 64-bit");
_Static_assert(sizeof(CUcontext) == sizeof(void*), "CUcontext is not a pointer");
_Static_assert(sizeof(cublasStatus_t) == sizeof(int), "cublasStatus_t is not int-sized");
_Static_assert(sizeof(cublasComputeType_t) == sizeof(int), "cublasComputeType_t is not int-sized");
_Static_assert(sizeof(cudaDataType) == sizeof(int), "cudaDataType is not int-sized");
_Static_assert(sizeof(nvmlReturn_t) == sizeof(int), "nvmlReturn_t is not int-sized");

/* Constants: NVIDIA's value must be ours. */
#define GD_CHECK_CONSTANT(ours, theirs, value) \
	_Static_assert((long long)(ours) == (long long)(theirs), #ours " differs from " #theirs);
GD_CUDA_CONSTANTS(GD_CHECK_CONSTANT)
GD_CUBLAS_CONSTANTS(GD_CHECK_CONSTANT)
GD_NVML_CONSTANTS(GD_CHECK_CONSTANT)
#ifdef GD_CHECK_CUDNN
GD_CUDNN_CONSTANTS(GD_CHECK_CONSTANT)
_Static_assert(sizeof(gd_conv_algo_perf) == sizeof(cudnnConvolutionFwdAlgoPerf_t), "cuDNN perf struct size");
_Static_assert(offsetof(gd_conv_algo_perf, algo) == offsetof(cudnnConvolutionFwdAlgoPerf_t, algo), "perf.algo");
_Static_assert(offsetof(gd_conv_algo_perf, status) == offsetof(cudnnConvolutionFwdAlgoPerf_t, status), "perf.status");
_Static_assert(offsetof(gd_conv_algo_perf, memory) == offsetof(cudnnConvolutionFwdAlgoPerf_t, memory), "perf.memory");
_Static_assert(sizeof(cudnnConvolutionBwdDataAlgoPerf_t) == sizeof(gd_conv_algo_perf), "cuDNN bwd-data perf struct size");
_Static_assert(sizeof(cudnnConvolutionBwdFilterAlgoPerf_t) == sizeof(gd_conv_algo_perf), "cuDNN bwd-filter perf struct size");
_Static_assert(sizeof(cudnnStatus_t) == sizeof(int), "cudnnStatus_t is not int-sized");
#endif

int gidedge_cuda_header_check;
