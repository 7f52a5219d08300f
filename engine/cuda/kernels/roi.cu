// ROIAlign with torchvision roi_align semantics (the same as engine's
// ROIAlign): bins of bilinear samples averaged, samples more than one cell
// outside the map dropped, samples within it clamped to the border.
#include "common.cuh"

// gd_roi_geometry reads roi r and sets the bin origin, bin size, sample
// grid and batch index; it returns false for a batch index outside [0, n).
static __device__ bool gd_roi_geometry(const float* rois, int r, const gd_roi& g, float* start_y, float* start_x, float* bin_h, float* bin_w, int* grid_h, int* grid_w, int* batch) {
	const float* roi = rois + r * 5;
	float b = roi[0];
	if (!(b >= 0.f) || b >= (float)g.n) return false;
	*batch = (int)b;
	float offset = g.aligned ? 0.5f : 0.f;
	float sx = roi[1] * g.scale - offset, sy = roi[2] * g.scale - offset;
	float ex = roi[3] * g.scale - offset, ey = roi[4] * g.scale - offset;
	float rw = ex - sx, rh = ey - sy;
	if (!g.aligned) {
		rw = gd_max(rw, 1.f);
		rh = gd_max(rh, 1.f);
	}
	*start_y = sy;
	*start_x = sx;
	*bin_h = rh / (float)g.oh;
	*bin_w = rw / (float)g.ow;
	if (g.sampling > 0) {
		*grid_h = g.sampling;
		*grid_w = g.sampling;
	} else {
		*grid_h = (int)gd_ceil(rh / (float)g.oh);
		*grid_w = (int)gd_ceil(rw / (float)g.ow);
	}
	if (*grid_h < 0) *grid_h = 0;
	if (*grid_w < 0) *grid_w = 0;
	return true;
}

// gd_bilinear sets the four taps and weights of sample (y, x) on an h×w map
// and returns false when the sample lies outside the map by more than a cell.
static __device__ bool gd_bilinear(float y, float x, int h, int w, int* idx, float* wt) {
	if (y < -1.f || y > (float)h || x < -1.f || x > (float)w) return false;
	y = gd_max(y, 0.f);
	x = gd_max(x, 0.f);
	int y0 = (int)y, x0 = (int)x, y1, x1;
	if (y0 >= h - 1) {
		y0 = y1 = h - 1;
		y = (float)y0;
	} else {
		y1 = y0 + 1;
	}
	if (x0 >= w - 1) {
		x0 = x1 = w - 1;
		x = (float)x0;
	} else {
		x1 = x0 + 1;
	}
	float ly = y - (float)y0, lx = x - (float)x0, hy = 1.f - ly, hx = 1.f - lx;
	idx[0] = y0 * w + x0;
	idx[1] = y0 * w + x1;
	idx[2] = y1 * w + x0;
	idx[3] = y1 * w + x1;
	wt[0] = hy * hx;
	wt[1] = hy * lx;
	wt[2] = ly * hx;
	wt[3] = ly * lx;
	return true;
}

// gd_roi_bin visits the bilinear samples of output element e ([rois, c,
// oh, ow]): forward (x not null) it returns their average over x; backward
// (gx not null) it adds gv/count·weight to each tap of gx with atomics and
// returns 0. A roi with an invalid batch index has no samples.
static __device__ float gd_roi_bin(int e, const float* rois, const gd_roi& g, const float* x, float* gx, float gv) {
	int bins = g.oh * g.ow;
	int t = e / bins, bin = e - t * bins;
	int r = t / g.c, ch = t - r * g.c;
	int ph = bin / g.ow, pw = bin - ph * g.ow;
	float sy, sx, bh, bw;
	int gh, gw, b;
	if (!gd_roi_geometry(rois, r, g, &sy, &sx, &bh, &bw, &gh, &gw, &b)) return 0.f;
	int plane = (b * g.c + ch) * g.h * g.w;
	float inv = 1.f / (float)(gh * gw > 1 ? gh * gw : 1);
	gv *= inv;
	float acc = 0.f;
	for (int iy = 0; iy < gh; iy++) {
		float yy = sy + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
		for (int ix = 0; ix < gw; ix++) {
			float xx = sx + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
			int idx[4];
			float wt[4];
			if (!gd_bilinear(yy, xx, g.h, g.w, idx, wt)) continue;
			if (x) {
				const float* p = x + plane;
				acc += wt[0] * p[idx[0]] + wt[1] * p[idx[1]] + wt[2] * p[idx[2]] + wt[3] * p[idx[3]];
			} else {
				for (int q = 0; q < 4; q++) gd_atomic_add(&gx[plane + idx[q]], gv * wt[q]);
			}
		}
	}
	return acc * inv;
}

// gidedge_roi_align_forward pools x [n, c, h, w] into y [rois, c, oh, ow],
// one thread per output. A roi with an invalid batch index yields zeros.
extern "C" __global__ void gidedge_roi_align_forward(float* y, const float* x, const float* rois, gd_roi g) {
	for (int e = gd_first(); e < g.rois * g.c * g.oh * g.ow; e += gd_step()) y[e] = gd_roi_bin(e, rois, g, x, nullptr, 0.f);
}

// gidedge_roi_align_backward adds the gradient of each output gy [rois, c,
// oh, ow] into gx [n, c, h, w] with atomics (regions overlap), as
// torchvision's CUDA kernel does; gx is not cleared first.
extern "C" __global__ void gidedge_roi_align_backward(float* gx, const float* gy, const float* rois, gd_roi g) {
	for (int e = gd_first(); e < g.rois * g.c * g.oh * g.ow; e += gd_step()) {
		if (gy[e] != 0.f) gd_roi_bin(e, rois, g, nullptr, gx, gy[e]);
	}
}
