// Emulation build of ../kernels/memory.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/memory.cu"
#include "registry.h"

GD_REGISTER(gidedge_fill)
GD_REGISTER(gidedge_copy)
GD_REGISTER(gidedge_strided_copy)
GD_REGISTER(gidedge_axpby)
GD_REGISTER(gidedge_scale_by)
GD_REGISTER(gidedge_count_nonfinite)
