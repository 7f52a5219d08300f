// Emulation build of ../kernels/elementwise.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/elementwise.cu"
#include "registry.h"

GD_REGISTER(gidedge_unary)
GD_REGISTER(gidedge_unary_backward)
GD_REGISTER(gidedge_binary)
GD_REGISTER(gidedge_binary_backward)
GD_REGISTER(gidedge_where)
GD_REGISTER(gidedge_where_backward)
