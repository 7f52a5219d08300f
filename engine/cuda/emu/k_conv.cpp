// Emulation build of ../kernels/conv.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/conv.cu"
#include "registry.h"

GD_REGISTER(gidedge_im2col)
GD_REGISTER(gidedge_col2im)
GD_REGISTER(gidedge_depthwise_forward)
GD_REGISTER(gidedge_depthwise_backward_data)
GD_REGISTER(gidedge_depthwise_backward_filter)
