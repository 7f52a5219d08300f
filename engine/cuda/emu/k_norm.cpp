// Emulation build of ../kernels/norm.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/norm.cu"
#include "registry.h"

GD_REGISTER(gidedge_bn_stats)
GD_REGISTER(gidedge_bn_forward)
GD_REGISTER(gidedge_bn_forward_eval)
GD_REGISTER(gidedge_bn_backward_reduce)
GD_REGISTER(gidedge_bn_backward_data)
