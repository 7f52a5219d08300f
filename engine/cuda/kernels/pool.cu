// Pooling and nearest-neighbour resizing over independent planes (N·C of
// an NCHW tensor). Backward passes gather per input element: no atomics.
#include "common.cuh"

// gd_window sets [*lo, *hi) to the outputs whose window (o·stride − pad,
// size k) contains input position i.
static __device__ __forceinline__ void gd_window(int i, int k, int stride, int pad, int out, int* lo, int* hi) {
	int a = i + pad - k + 1;
	*lo = a <= 0 ? 0 : (a + stride - 1) / stride;
	int b = (i + pad) / stride + 1;
	*hi = b < out ? b : out;
}

// gidedge_maxpool_forward takes window maxima (padding is −∞, NaN above
// every number) and writes the in-plane index of each maximum (the first,
// row-major; −1 for a window wholly in the padding) into arg (null: not
// wanted).
extern "C" __global__ void gidedge_maxpool_forward(float* y, int* arg, const float* x, gd_pool g) {
	int ohw = g.oh * g.ow, total = g.planes * ohw;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int p = e / ohw, pos = e - p * ohw;
		int oy = pos / g.ow, ox = pos - oy * g.ow;
		const float* src = x + p * g.h * g.w;
		float best = -GD_INF;
		int bi = -1;
		for (int ky = 0; ky < g.kh; ky++) {
			int iy = oy * g.sh - g.ph + ky;
			if (iy < 0 || iy >= g.h) continue;
			for (int kx = 0; kx < g.kw; kx++) {
				int ix = ox * g.sw - g.pw + kx;
				if (ix < 0 || ix >= g.w) continue;
				float v = src[iy * g.w + ix];
				if (bi < 0 || gd_greater(v, best)) {
					best = v;
					bi = iy * g.w + ix;
				}
			}
		}
		y[e] = best;
		if (arg) arg[e] = bi;
	}
}

// gd_pool_gather sums the output gradients gy of the windows that hold
// input element e: all of them scaled by scale (average pooling), or, with
// arg, those whose maximum e is.
static __device__ float gd_pool_gather(const float* gy, const int* arg, float scale, int e, const gd_pool& g) {
	int plane = g.h * g.w, ohw = g.oh * g.ow;
	int p = e / plane, pix = e - p * plane;
	int iy = pix / g.w, ix = pix - iy * g.w;
	int y0, y1, x0, x1;
	gd_window(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
	gd_window(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
	float acc = 0.f;
	for (int oy = y0; oy < y1; oy++) {
		for (int ox = x0; ox < x1; ox++) {
			int o = p * ohw + oy * g.ow + ox;
			if (!arg || arg[o] == pix) acc += gy[o] * scale;
		}
	}
	return acc;
}

// gidedge_maxpool_backward sets gx = (Σ gy of the windows whose maximum is
// this element) + beta·gx.
extern "C" __global__ void gidedge_maxpool_backward(float* gx, const float* gy, const int* arg, float beta, gd_pool g) {
	for (int e = gd_first(); e < g.planes * g.h * g.w; e += gd_step()) gd_store(&gx[e], gd_pool_gather(gy, arg, 1.f, e, g), beta);
}

// gidedge_avgpool_forward averages windows; padded positions count in the
// divisor kh·kw (PyTorch's count_include_pad=True).
extern "C" __global__ void gidedge_avgpool_forward(float* y, const float* x, gd_pool g) {
	int ohw = g.oh * g.ow, total = g.planes * ohw;
	float inv = 1.f / (float)(g.kh * g.kw);
	for (int e = gd_first(); e < total; e += gd_step()) {
		int p = e / ohw, pos = e - p * ohw;
		int oy = pos / g.ow, ox = pos - oy * g.ow;
		const float* src = x + p * g.h * g.w;
		float acc = 0.f;
		for (int ky = 0; ky < g.kh; ky++) {
			int iy = oy * g.sh - g.ph + ky;
			if (iy < 0 || iy >= g.h) continue;
			for (int kx = 0; kx < g.kw; kx++) {
				int ix = ox * g.sw - g.pw + kx;
				if (ix >= 0 && ix < g.w) acc += src[iy * g.w + ix] * inv;
			}
		}
		y[e] = acc;
	}
}

// gidedge_avgpool_backward sets gx = Σ gy/(kh·kw) over the windows holding
// each element + beta·gx.
extern "C" __global__ void gidedge_avgpool_backward(float* gx, const float* gy, float beta, gd_pool g) {
	float inv = 1.f / (float)(g.kh * g.kw);
	for (int e = gd_first(); e < g.planes * g.h * g.w; e += gd_step()) gd_store(&gx[e], gd_pool_gather(gy, nullptr, inv, e, g), beta);
}

// gidedge_upsample_nearest_forward resizes planes h×w to oh×ow taking source
// index ⌊dst·in/out⌋ (PyTorch's mode="nearest").
extern "C" __global__ void gidedge_upsample_nearest_forward(float* y, const float* x, int planes, int h, int w, int oh, int ow) {
	int ohw = oh * ow, total = planes * ohw;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int p = e / ohw, pos = e - p * ohw;
		int oy = pos / ow, ox = pos - oy * ow;
		int iy = oy * h / oh, ix = ox * w / ow;
		y[e] = x[p * h * w + iy * w + ix];
	}
}

// gidedge_upsample_nearest_backward sets gx = Σ gy over the outputs that
// copied each input + beta·gx: rows ⌈iy·oh/h⌉ … ⌈(iy+1)·oh/h⌉ − 1, and
// likewise for columns.
extern "C" __global__ void gidedge_upsample_nearest_backward(float* gx, const float* gy, float beta, int planes, int h, int w, int oh, int ow) {
	int plane = h * w, total = planes * plane;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int p = e / plane, pix = e - p * plane;
		int iy = pix / w, ix = pix - iy * w;
		int y0 = (iy * oh + h - 1) / h, y1 = ((iy + 1) * oh + h - 1) / h;
		int x0 = (ix * ow + w - 1) / w, x1 = ((ix + 1) * ow + w - 1) / w;
		float acc = 0.f;
		for (int oy = y0; oy < y1 && oy < oh; oy++) {
			for (int ox = x0; ox < x1 && ox < ow; ox++) acc += gy[p * oh * ow + oy * ow + ox];
		}
		gd_store(&gx[e], acc, beta);
	}
}

// gd_linear_tap finds the taps i0, i1 and weight λ of output position o
// along one axis of a bilinear resize (backend.LinearAxis): src = o·scale
// rounded to float, plus offset, clamped to [0, in−1]; i0 = ⌊src⌋,
// i1 = min(i0+1, in−1), λ = src − i0. The product is rounded on its own
// (gd_mul_rn) so the compiler cannot fuse it with the sum into an FMA: every
// backend computes the same src.
static __device__ __forceinline__ void gd_linear_tap(int o, float scale, float offset, int in, int* i0, int* i1, float* l) {
	float src = gd_mul_rn((float)o, scale) + offset;
	if (!(src > 0.f)) src = 0.f;
	float top = (float)(in - 1);
	if (src > top) src = top;
	int i = (int)gd_floor(src);
	*i0 = i;
	*i1 = i + 1 < in ? i + 1 : in - 1;
	*l = src - (float)i;
}

// gd_bilinear_taps are output element e's plane offset, its two tap rows
// and columns and their weights.
struct gd_bilinear_taps {
	int plane, y0, y1, x0, x1;
	float ly, lx;
};

static __device__ __forceinline__ gd_bilinear_taps gd_resize_taps(int e, int h, int w, int oh, int ow, float row_scale,
                                                                  float row_offset, float col_scale, float col_offset) {
	gd_bilinear_taps t;
	int ohw = oh * ow, p = e / ohw, pos = e - p * ohw;
	int oy = pos / ow, ox = pos - oy * ow;
	t.plane = p * h * w;
	gd_linear_tap(oy, row_scale, row_offset, h, &t.y0, &t.y1, &t.ly);
	gd_linear_tap(ox, col_scale, col_offset, w, &t.x0, &t.x1, &t.lx);
	return t;
}

// gidedge_resize_linear_forward resizes planes h×w to oh×ow by bilinear
// interpolation: the blend of the two column taps on each tap row, then of
// the two rows (the order backend.ResizeLinearArgs gives).
extern "C" __global__ void gidedge_resize_linear_forward(float* y, const float* x, int planes, int h, int w, int oh, int ow,
                                                         float row_scale, float row_offset, float col_scale, float col_offset) {
	for (int e = gd_first(); e < planes * oh * ow; e += gd_step()) {
		gd_bilinear_taps t = gd_resize_taps(e, h, w, oh, ow, row_scale, row_offset, col_scale, col_offset);
		const float* top = x + t.plane + t.y0 * w;
		const float* bottom = x + t.plane + t.y1 * w;
		float upper = (1.f - t.lx) * top[t.x0] + t.lx * top[t.x1];
		float lower = (1.f - t.lx) * bottom[t.x0] + t.lx * bottom[t.x1];
		y[e] = (1.f - t.ly) * upper + t.ly * lower;
	}
}

// gidedge_resize_linear_backward adds each output gradient to the four
// inputs it read, times their weights (gx already holds beta·gx: the caller
// zeroes it for beta = 0).
extern "C" __global__ void gidedge_resize_linear_backward(float* gx, const float* gy, int planes, int h, int w, int oh, int ow,
                                                          float row_scale, float row_offset, float col_scale, float col_offset) {
	for (int e = gd_first(); e < planes * oh * ow; e += gd_step()) {
		gd_bilinear_taps t = gd_resize_taps(e, h, w, oh, ow, row_scale, row_offset, col_scale, col_offset);
		float g = gy[e];
		float* plane = gx + t.plane;
		gd_atomic_add(&plane[t.y0 * w + t.x0], g * (1.f - t.ly) * (1.f - t.lx));
		gd_atomic_add(&plane[t.y0 * w + t.x1], g * (1.f - t.ly) * t.lx);
		gd_atomic_add(&plane[t.y1 * w + t.x0], g * t.ly * (1.f - t.lx));
		gd_atomic_add(&plane[t.y1 * w + t.x1], g * t.ly * t.lx);
	}
}
