// Emulation build of ../kernels/reduce.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/reduce.cu"
#include "registry.h"

GD_REGISTER(gidedge_reduce)
GD_REGISTER(gidedge_reduce_small)
GD_REGISTER(gidedge_softmax)
GD_REGISTER(gidedge_softmax_backward)
GD_REGISTER(gidedge_cross_entropy)
GD_REGISTER(gidedge_cross_entropy_backward)
GD_REGISTER(gidedge_sum_squares)
GD_REGISTER(gidedge_clip_coef)
