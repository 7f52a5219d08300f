// What clang needs to compile our CUDA C to PTX with no CUDA SDK installed
// (clang++ -x cuda --cuda-device-only -nocudainc -nocudalib): the function
// and variable qualifiers, and clang's own threadIdx/blockIdx/blockDim/gridDim.
// Everything else the kernels use is a clang NVPTX builtin (__syncthreads,
// __nvvm_*), wrapped in common.cuh.
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __attribute__((always_inline)) inline
#include <__clang_cuda_builtin_vars.h>
