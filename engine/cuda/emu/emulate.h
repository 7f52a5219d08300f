// Host emulation of the CUDA C subset our kernels use (see
// ../kernels/common.cuh). Compiled with a host C++17 compiler, a kernel is an
// ordinary function; runtime.cpp calls it once per CUDA thread, one block at
// a time. Kernels that reach __syncthreads run each CUDA thread as a fiber on
// its own stack and switch fibers at the barrier, which is a real barrier:
// no thread passes it before every thread of the block has reached it.
#ifndef GIDEDGE_EMULATE_H
#define GIDEDGE_EMULATE_H

#include <cmath>
#include <cstdint>

struct dim3 {
	unsigned x, y, z;
};

namespace gidedge_emu {
extern thread_local dim3 thread_index, block_index, block_dim, grid_dim;
void barrier();
float atomic_add(float* p, float v);
int atomic_add(int* p, int v);
}  // namespace gidedge_emu

#define threadIdx (::gidedge_emu::thread_index)
#define blockIdx (::gidedge_emu::block_index)
#define blockDim (::gidedge_emu::block_dim)
#define gridDim (::gidedge_emu::grid_dim)
#define __global__
#define __device__
// Blocks of one launch run one at a time on one OS thread, so a function-
// local static is one block's shared memory; thread_local keeps concurrent
// launches on other threads (other streams) apart.
#define __shared__ static thread_local
#define __forceinline__ inline

static inline void __syncthreads() { gidedge_emu::barrier(); }
static inline float gd_exp2(float x) { return std::exp2(x); }
static inline float gd_log2(float x) { return std::log2(x); }
static inline float gd_sqrt(float x) { return std::sqrt(x); }
static inline float gd_floor(float x) { return std::floor(x); }
// A product rounded on its own, never fused into an FMA with a later sum.
static inline float gd_mul_rn(float a, float b) {
	volatile float r = a * b;
	return r;
}
static inline float gd_ceil(float x) { return std::ceil(x); }
static inline float gd_atomic_add(float* p, float v) { return gidedge_emu::atomic_add(p, v); }
static inline int gd_atomic_add_int(int* p, int v) { return gidedge_emu::atomic_add(p, v); }

#endif
