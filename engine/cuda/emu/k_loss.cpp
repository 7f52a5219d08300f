// Emulation build of ../kernels/loss.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/loss.cu"
#include "registry.h"

GD_REGISTER(gidedge_sigmoid_focal_forward)
GD_REGISTER(gidedge_sigmoid_focal_backward)
GD_REGISTER(gidedge_pair_loss)
GD_REGISTER(gidedge_pair_loss_backward)
GD_REGISTER(gidedge_giou_forward)
GD_REGISTER(gidedge_giou_backward)
