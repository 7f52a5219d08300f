// libnvidia-ml.so.1 of the driver simulator: the driver version string.
#include <cstdio>
#include <type_traits>

#include "../../driver/cuda_decl.h"

extern "C" {

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }

int nvmlSystemGetDriverVersion(char* buf, unsigned int len) {
	std::snprintf(buf, len, "simulator");
	return 0;
}

}  // extern "C"

#define GD_SAME_TYPE(ret, name, params, required) \
	static_assert(std::is_same<decltype(&name), gd_##name##_t>::value, #name " differs from cuda_decl.h");
GD_NVML_FUNCS(GD_SAME_TYPE)
