// Helpers every kernel file includes. The kernels are written in a
// restricted CUDA C so that one source compiles three ways: to PTX with
// clang (gidedge_cuda.h), and to host code with g++ for the emulation and
// the driver simulator (../emu/emulate.h, selected by GIDEDGE_EMULATE).
//
// The restrictions: kernels are extern "C" and take pointers, int, float and
// the structs of types.h by value; shared memory is fixed-size __shared__
// arrays of GD_BLOCK entries; __syncthreads is reached by every thread of a
// block the same number of times (never under a thread-dependent branch);
// no warp shuffles, no dynamic shared memory, no device-side allocation.
// Kernels whose body calls __syncthreads must be launched with exactly
// GD_BLOCK threads in x (kernels.Spec.Block says so).
#ifndef GIDEDGE_COMMON_CUH
#define GIDEDGE_COMMON_CUH

#include "types.h"

#if defined(GIDEDGE_EMULATE)
#include "../emu/emulate.h"
#else
#include "gidedge_cuda.h"

static __device__ __forceinline__ float gd_exp2(float x) { return __nvvm_ex2_approx_f(x); }
static __device__ __forceinline__ float gd_log2(float x) { return __nvvm_lg2_approx_f(x); }
static __device__ __forceinline__ float gd_sqrt(float x) { return __nvvm_sqrt_rn_f(x); }
static __device__ __forceinline__ float gd_floor(float x) { return __nvvm_floor_f(x); }
static __device__ __forceinline__ float gd_ceil(float x) { return __nvvm_ceil_f(x); }
static __device__ __forceinline__ float gd_mul_rn(float a, float b) { return __nvvm_mul_rn_f(a, b); }
static __device__ __forceinline__ float gd_atomic_add(float* p, float v) { return __nvvm_atom_add_gen_f(p, v); }
static __device__ __forceinline__ int gd_atomic_add_int(int* p, int v) { return __nvvm_atom_add_gen_i(p, v); }
#endif

#define GD_INF __builtin_inff()
#define GD_NAN __builtin_nanf("")
#define GD_LOG2E 1.4426950408889634f
#define GD_LN2 0.6931471805599453f

static __device__ __forceinline__ float gd_exp(float x) { return gd_exp2(x * GD_LOG2E); }
static __device__ __forceinline__ float gd_log(float x) { return gd_log2(x) * GD_LN2; }
static __device__ __forceinline__ float gd_abs(float x) { return x < 0.f ? -x : x; }
static __device__ __forceinline__ float gd_max(float a, float b) { return a > b ? a : b; }
static __device__ __forceinline__ float gd_min(float a, float b) { return a < b ? a : b; }
static __device__ __forceinline__ bool gd_isfinite(float x) { return x == x && gd_abs(x) <= 3.402823466e38f; }

// gd_greater orders floats for maxima with NaN above every number (as
// PyTorch's max and the engine do), so a NaN input shows in the result.
static __device__ __forceinline__ bool gd_greater(float a, float b) { return a > b || (a != a && b == b); }

// Numerically stable logistic function.
static __device__ __forceinline__ float gd_sigmoid(float x) {
	if (x >= 0.f) return 1.f / (1.f + gd_exp(-x));
	float e = gd_exp(x);
	return e / (1.f + e);
}

// log(1 + e^(-|x|)), the stable tail of the logistic loss.
static __device__ __forceinline__ float gd_softplus_neg(float x) { return gd_log(1.f + gd_exp(-gd_abs(x))); }

// Grid-stride loops: a thread starts at gd_first() and advances gd_step().
// Element counts stay below 2^31 − 2^27 (the Go launchers check), so the
// int arithmetic cannot overflow.
static __device__ __forceinline__ int gd_first() { return (int)(blockIdx.x * blockDim.x + threadIdx.x); }
static __device__ __forceinline__ int gd_step() { return (int)(gridDim.x * blockDim.x); }

// gd_offsets maps index i of l's index space to the offsets of its first
// `ops` operands.
static __device__ __forceinline__ void gd_offsets(const gd_layout& l, int i, int ops, int* off) {
	off[0] = 0;
	off[1] = 0;
	off[2] = 0;
	for (int d = GD_MAX_RANK - 1; d >= 0; d--) {
		if (d >= l.rank) continue;
		int q = i / l.shape[d];
		int c = i - q * l.shape[d];
		for (int k = 0; k < 3; k++) {
			if (k < ops) off[k] += c * l.stride[k][d];
		}
		i = q;
	}
}

// gd_block_sum returns the sum of v over the GD_BLOCK threads of the block
// to every thread, by a fixed-order tree in buf (a __shared__ float[GD_BLOCK]).
// Every thread of the block must call it.
static __device__ __forceinline__ float gd_block_sum(float v, float* buf) {
	int t = (int)threadIdx.x;
	buf[t] = v;
	__syncthreads();
	for (int s = GD_BLOCK / 2; s > 0; s >>= 1) {
		if (t < s) buf[t] += buf[t + s];
		__syncthreads();
	}
	float r = buf[0];
	__syncthreads();
	return r;
}

// gd_block_max is gd_block_sum for the maximum.
static __device__ __forceinline__ float gd_block_max(float v, float* buf) {
	int t = (int)threadIdx.x;
	buf[t] = v;
	__syncthreads();
	for (int s = GD_BLOCK / 2; s > 0; s >>= 1) {
		if (t < s) buf[t] = gd_max(buf[t], buf[t + s]);
		__syncthreads();
	}
	float r = buf[0];
	__syncthreads();
	return r;
}

// gd_store writes v into *y, adding beta·*y unless beta is 0 (then *y is
// not read, so uninitialised memory never leaks NaN into the result).
static __device__ __forceinline__ void gd_store(float* y, float v, float beta) {
	*y = beta == 0.f ? v : v + beta * *y;
}

#endif
