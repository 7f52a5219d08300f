// Emulation build of ../kernels/distance.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/distance.cu"
#include "registry.h"

GD_REGISTER(gidedge_pairwise_sqdist)
GD_REGISTER(gidedge_pairwise_sqdist_backward)
GD_REGISTER(gidedge_pairwise_distance)
GD_REGISTER(gidedge_pairwise_distance_backward)
