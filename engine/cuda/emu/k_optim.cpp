// Emulation build of ../kernels/optim.cu: the kernels compiled for the host
// and registered by name (TestEmulationRegistersEveryKernel checks the list).
#define GIDEDGE_EMULATE 1
#include "../kernels/optim.cu"
#include "registry.h"

GD_REGISTER(gidedge_adamw)
GD_REGISTER(gidedge_sgd)
