// Emulation build of ../kernels/roi.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/roi.cu"
#include "registry.h"

GD_REGISTER(gidedge_roi_align_forward)
GD_REGISTER(gidedge_roi_align_backward)
