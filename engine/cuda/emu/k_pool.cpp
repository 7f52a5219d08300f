// Emulation build of ../kernels/pool.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/pool.cu"
#include "registry.h"

GD_REGISTER(gidedge_maxpool_forward)
GD_REGISTER(gidedge_maxpool_backward)
GD_REGISTER(gidedge_avgpool_forward)
GD_REGISTER(gidedge_avgpool_backward)
GD_REGISTER(gidedge_upsample_nearest_forward)
GD_REGISTER(gidedge_upsample_nearest_backward)
GD_REGISTER(gidedge_resize_linear_forward)
GD_REGISTER(gidedge_resize_linear_backward)
