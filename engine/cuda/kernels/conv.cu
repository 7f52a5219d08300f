// Convolution helpers: im2col/col2im around cuBLAS GEMMs, and direct
// depthwise convolution with both backward passes. Geometry in gd_conv;
// images are NCHW with image_stride elements between images.
#include "common.cuh"

// gidedge_im2col writes the patch matrix of each of g.n images,
// [c·kh·kw, oh·ow] row-major, one after another into col (zeros where a tap
// falls in the padding). The same layout as engine/cpu's Im2Col.
extern "C" __global__ void gidedge_im2col(float* col, const float* image, gd_conv g) {
	int taps = g.kh * g.kw, cols = g.oh * g.ow, rows = g.c * taps;
	int total = g.n * rows * cols;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int img = e / (rows * cols), rem = e - img * rows * cols;
		int row = rem / cols, pos = rem - row * cols;
		int ch = row / taps, tap = row - ch * taps;
		int ky = tap / g.kw, kx = tap - ky * g.kw;
		int oy = pos / g.ow, ox = pos - oy * g.ow;
		int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
		float v = 0.f;
		if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = image[img * g.image_stride + (ch * g.h + iy) * g.w + ix];
		col[e] = v;
	}
}

// gd_tap_hit reports whether tap k of an output position reads input
// position i (o·stride − pad + k·dil = i) and sets that output position.
static __device__ __forceinline__ bool gd_tap_hit(int i, int k, int stride, int pad, int dil, int out, int* o) {
	int num = i + pad - k * dil;
	if (num < 0 || num % stride != 0) return false;
	*o = num / stride;
	return *o < out;
}

// gd_gather_taps sums, over the taps (ky, kx) whose output position
// (oy, ox) reads input pixel (iy, ix), weight[tap]·src[tap·tap_stride +
// oy·ow + ox] (weight null: 1). col2im gathers the patch matrix this way,
// the depthwise input gradient the output gradient.
static __device__ float gd_gather_taps(const float* src, int tap_stride, const float* weight, int iy, int ix, const gd_conv& g) {
	float acc = 0.f;
	for (int ky = 0; ky < g.kh; ky++) {
		int oy;
		if (!gd_tap_hit(iy, ky, g.sh, g.ph, g.dh, g.oh, &oy)) continue;
		for (int kx = 0; kx < g.kw; kx++) {
			int ox;
			if (!gd_tap_hit(ix, kx, g.sw, g.pw, g.dw, g.ow, &ox)) continue;
			int tap = ky * g.kw + kx;
			float v = src[tap * tap_stride + oy * g.ow + ox];
			acc += weight ? weight[tap] * v : v;
		}
	}
	return acc;
}

// gidedge_col2im is im2col's adjoint: it sets each image element to the sum
// of the col entries im2col copied from it, plus beta times its old value
// (beta 1: accumulate into a gradient). One thread per image element, so
// no atomics and a fixed summation order.
extern "C" __global__ void gidedge_col2im(float* image, const float* col, float beta, gd_conv g) {
	int taps = g.kh * g.kw, cols = g.oh * g.ow, rows = g.c * taps;
	int plane = g.h * g.w, total = g.n * g.c * plane;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int img = e / (g.c * plane), rem = e - img * g.c * plane;
		int ch = rem / plane, pix = rem - ch * plane;
		int iy = pix / g.w, ix = pix - iy * g.w;
		float acc = gd_gather_taps(col + img * rows * cols + ch * taps * cols, cols, nullptr, iy, ix, g);
		gd_store(&image[img * g.image_stride + rem], acc, beta);
	}
}

// gidedge_depthwise_forward convolves each channel of x [n, c, h, w] with
// its own kh×kw filter w [c, kh·kw] and adds bias [c] (null: none) into
// y [n, c, oh, ow].
extern "C" __global__ void gidedge_depthwise_forward(float* y, const float* x, const float* w, const float* bias, gd_conv g) {
	int ohw = g.oh * g.ow, total = g.n * g.c * ohw;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int t = e / ohw, pos = e - t * ohw;
		int ch = t % g.c, img = t / g.c;
		int oy = pos / g.ow, ox = pos - oy * g.ow;
		const float* src = x + img * g.image_stride + ch * g.h * g.w;
		const float* filt = w + ch * g.kh * g.kw;
		float acc = bias ? bias[ch] : 0.f;
		for (int ky = 0; ky < g.kh; ky++) {
			int iy = oy * g.sh - g.ph + ky * g.dh;
			if (iy < 0 || iy >= g.h) continue;
			for (int kx = 0; kx < g.kw; kx++) {
				int ix = ox * g.sw - g.pw + kx * g.dw;
				if (ix < 0 || ix >= g.w) continue;
				acc += filt[ky * g.kw + kx] * src[iy * g.w + ix];
			}
		}
		y[e] = acc;
	}
}

// gidedge_depthwise_backward_data sets gx = (gradient of the input) +
// beta·gx, one thread per input element gathering its taps.
extern "C" __global__ void gidedge_depthwise_backward_data(float* gx, const float* gy, const float* w, float beta, gd_conv g) {
	int plane = g.h * g.w, ohw = g.oh * g.ow, total = g.n * g.c * plane;
	for (int e = gd_first(); e < total; e += gd_step()) {
		int t = e / plane, pix = e - t * plane;
		int ch = t % g.c, img = t / g.c;
		int iy = pix / g.w, ix = pix - iy * g.w;
		float acc = gd_gather_taps(gy + t * ohw, 0, w + ch * g.kh * g.kw, iy, ix, g);
		gd_store(&gx[img * g.image_stride + ch * plane + pix], acc, beta);
	}
}

// gidedge_depthwise_backward_filter sets gw[ch][tap] = Σ gy·x over images
// and output positions + beta·gw, one block of GD_BLOCK threads per filter
// tap (blocks loop over c·kh·kw taps).
extern "C" __global__ void gidedge_depthwise_backward_filter(float* gw, const float* gy, const float* x, float beta, gd_conv g) {
	__shared__ float buf[GD_BLOCK];
	int taps = g.kh * g.kw, ohw = g.oh * g.ow;
	for (int q = (int)blockIdx.x; q < g.c * taps; q += (int)gridDim.x) {
		int ch = q / taps, tap = q - ch * taps;
		int ky = tap / g.kw, kx = tap - ky * g.kw;
		float acc = 0.f;
		for (int e = (int)threadIdx.x; e < g.n * ohw; e += GD_BLOCK) {
			int img = e / ohw, pos = e - img * ohw;
			int oy = pos / g.ow, ox = pos - oy * g.ow;
			int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
			if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
			acc += gy[(img * g.c + ch) * ohw + pos] * x[img * g.image_stride + (ch * g.h + iy) * g.w + ix];
		}
		acc = gd_block_sum(acc, buf);
		if (threadIdx.x == 0) gd_store(&gw[q], acc, beta);
	}
}
