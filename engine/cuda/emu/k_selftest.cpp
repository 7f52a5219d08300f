// A kernel that breaks the restricted style on purpose, so the tests can
// check that the emulation reports a __syncthreads not reached by every
// thread (TestEmulationCatchesBarrierMisuse). Not part of package kernels.
#define GIDEDGE_EMULATE 1
#include "../kernels/common.cuh"
#include "registry.h"

extern "C" __global__ void gidedge_emu_selftest_divergent(int* out) {
	if (threadIdx.x < 3) return;  // these threads never reach the barrier
	__syncthreads();
	out[threadIdx.x] = 1;
}

GD_REGISTER(gidedge_emu_selftest_divergent)
