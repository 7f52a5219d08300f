// Fill, copies and scaling: the kernels every backend op is built around.
#include "common.cuh"

// gidedge_fill sets y[0:n) to value.
extern "C" __global__ void gidedge_fill(float* y, float value, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) y[i] = value;
}

// gidedge_copy sets y[i] = x[i] + beta·y[i] for i < n (beta 0: plain copy).
extern "C" __global__ void gidedge_copy(float* y, const float* x, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) gd_store(&y[i], x[i], beta);
}

// gidedge_strided_copy walks l's index space and sets
// y[off0] = x[off1] + beta·y[off0], off0 and off1 from l.stride[0] and [1]:
// permutes, slices, concatenation parts and broadcast expansion (stride 0 in
// x) are all this one kernel. The destination offsets must not repeat.
extern "C" __global__ void gidedge_strided_copy(float* y, const float* x, float beta, gd_layout l) {
	for (int i = gd_first(); i < l.n; i += gd_step()) {
		int off[3];
		gd_offsets(l, i, 2, off);
		gd_store(&y[off[0]], x[off[1]], beta);
	}
}

// gidedge_axpby sets y = alpha·x + beta·y over n elements.
extern "C" __global__ void gidedge_axpby(float* y, const float* x, float alpha, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) gd_store(&y[i], alpha * x[i], beta);
}

// gidedge_scale_by multiplies y[0:n) by the device-resident factor s[0]
// (e.g. a gradient-clipping coefficient computed on the device).
extern "C" __global__ void gidedge_scale_by(float* y, const float* s, int n) {
	float f = s[0];
	for (int i = gd_first(); i < n; i += gd_step()) y[i] *= f;
}

// gidedge_count_nonfinite adds the number of NaN and infinite values of
// x[0:n) to *count.
extern "C" __global__ void gidedge_count_nonfinite(int* count, const float* x, int n) {
	int bad = 0;
	for (int i = gd_first(); i < n; i += gd_step()) {
		if (!gd_isfinite(x[i])) bad++;
	}
	if (bad > 0) gd_atomic_add_int(count, bad);
}
