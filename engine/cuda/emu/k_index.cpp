// Emulation build of ../kernels/index.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/index.cu"
#include "registry.h"

GD_REGISTER(gidedge_index_select)
GD_REGISTER(gidedge_index_add)
GD_REGISTER(gidedge_gather)
GD_REGISTER(gidedge_scatter_add)
