// Indexing: selecting rows along an axis and its adjoint, and PyTorch-style
// gather with its scatter-add adjoint.
#include "common.cuh"

// gidedge_index_select sets y [outer, m, inner] to x [outer, size, inner] at
// rows idx[0:m) of the middle axis, plus beta·y. Indices are checked by the
// caller.
extern "C" __global__ void gidedge_index_select(float* y, const float* x, const int* idx, float beta, int outer, int size, int inner, int m) {
	int total = outer * m * inner;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int o = e / (m * inner), rem = e - o * m * inner;
		int j = rem / inner, i = rem - j * inner;
		gd_store(&y[e], x[(o * size + idx[j]) * inner + i], beta);
	}
}

// gidedge_index_add adds src [outer, m, inner] into y [outer, size, inner]
// at rows idx[0:m) (PyTorch's index_add_, the adjoint of index_select).
// Repeated indices are summed with atomics, so the order of the additions
// (and the last bits of the result) may vary between runs.
extern "C" __global__ void gidedge_index_add(float* y, const float* src, const int* idx, int outer, int size, int inner, int m) {
	int total = outer * m * inner;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int o = e / (m * inner), rem = e - o * m * inner;
		int j = rem / inner, i = rem - j * inner;
		gd_atomic_add(&y[(o * size + idx[j]) * inner + i], src[e]);
	}
}

// gd_gather_offset is the offset in x of element i of gather's index space
// l (see gidedge_gather), or −1, counted into *bad, when its index value
// is not an integer in [0, axis_size).
static __device__ __forceinline__ int gd_gather_offset(const gd_layout& l, int i, const float* idx, int axis_stride, int axis_size, int* bad) {
	int off[3];
	gd_offsets(l, i, 2, off);
	float v = idx[off[1]];
	if (!(v >= 0.f) || v >= (float)axis_size || gd_floor(v) != v) {
		if (bad) gd_atomic_add_int(bad, 1);
		return -1;
	}
	return off[0] + (int)v * axis_stride;
}

// gidedge_gather is PyTorch's gather: l spans the index tensor's shape,
// l.stride[0] holds x's strides with 0 on the gathered axis, l.stride[1] the
// index tensor's strides; y (contiguous over l) takes x at the offset plus
// idx·axis_stride. Index values are floats holding integers in
// [0, axis_size); any other value yields NaN and is counted into *bad (when
// bad is not null).
extern "C" __global__ void gidedge_gather(float* y, int* bad, const float* x, const float* idx, int axis_stride, int axis_size, gd_layout l) {
	for (int i = gd_first(); i < l.n; i += gd_step()) {
		int off = gd_gather_offset(l, i, idx, axis_stride, axis_size, bad);
		y[i] = off < 0 ? GD_NAN : x[off];
	}
}

// gidedge_scatter_add is gidedge_gather's adjoint: it adds g (contiguous
// over l) into gx at the offsets gather read from, with atomics. Invalid
// indices add nothing and are counted into *bad.
extern "C" __global__ void gidedge_scatter_add(float* gx, int* bad, const float* g, const float* idx, int axis_stride, int axis_size, gd_layout l) {
	for (int i = gd_first(); i < l.n; i += gd_step()) {
		int off = gd_gather_offset(l, i, idx, axis_stride, axis_size, bad);
		if (off >= 0) gd_atomic_add(&gx[off], g[i]);
	}
}
