// Reductions: sums, maxima and sums of squares over any set of axes,
// softmax and cross-entropy along an axis, and the global gradient norm.
#include "common.cuh"

// gd_dims_offset is the offset of index i, row-major over shape[0:rank],
// with the given strides.
static __device__ __forceinline__ int gd_dims_offset(int i, int rank, const int* shape, const int* stride) {
	int off = 0;
	for (int d = GD_MAX_RANK - 1; d >= 0; d--) {
		if (d >= rank) continue;
		int q = i / shape[d];
		off += (i - q * shape[d]) * stride[d];
		i = q;
	}
	return off;
}

// gd_take_max folds candidate (v, i) into (*acc, *best): the larger value
// (NaN above every number) wins and, on a tie, the smaller index (the first
// maximum in row-major order). best < 0 marks an empty accumulator.
static __device__ __forceinline__ void gd_take_max(float* acc, int* best, float v, int i) {
	bool tie = v == *acc || (v != v && *acc != *acc);
	if (i >= 0 && (*best < 0 || gd_greater(v, *acc) || (tie && i < *best))) {
		*acc = v;
		*best = i;
	}
}

// gd_fold folds the reduced elements r0, r0 + step, … of output o into
// *acc (and, for GD_REDUCE_MAX, the offset of the maximum into *best).
static __device__ __forceinline__ void gd_fold(const float* x, int op, const gd_reduce& g, int o, int r0, int step, float* acc, int* best) {
	int keep = gd_dims_offset(o, g.keep_rank, g.keep_shape, g.keep_stride);
	*acc = op == GD_REDUCE_MAX ? -GD_INF : 0.f;
	*best = -1;
	for (int r = r0; r < g.nred; r += step) {
		int off = keep + gd_dims_offset(r, g.red_rank, g.red_shape, g.red_stride);
		float v = x[off];
		if (op == GD_REDUCE_MAX) {
			gd_take_max(acc, best, v, off);
		} else {
			*acc += op == GD_REDUCE_SUMSQ ? v * v : v;
		}
	}
}

// gidedge_reduce reduces with one block of GD_BLOCK threads per output:
// y[o] = alpha·op(x over the reduced dimensions) + beta·y[o]. For
// GD_REDUCE_MAX a non-null arg receives the element offset in x of the
// first maximum. Outputs are taken in a grid-stride loop over blocks.
extern "C" __global__ void gidedge_reduce(float* y, int* arg, const float* x, int op, float alpha, float beta, gd_reduce g) {
	__shared__ float val[GD_BLOCK];
	__shared__ int idx[GD_BLOCK];
	int t = (int)threadIdx.x;
	for (int o = (int)blockIdx.x; o < g.nkeep; o += (int)gridDim.x) {
		float acc;
		int best;
		gd_fold(x, op, g, o, t, GD_BLOCK, &acc, &best);
		val[t] = acc;
		idx[t] = best;
		__syncthreads();
		for (int s = GD_BLOCK / 2; s > 0; s >>= 1) {
			if (t < s) {
				if (op == GD_REDUCE_MAX) {
					float a = val[t];
					int b = idx[t];
					gd_take_max(&a, &b, val[t + s], idx[t + s]);
					val[t] = a;
					idx[t] = b;
				} else {
					val[t] += val[t + s];
				}
			}
			__syncthreads();
		}
		if (t == 0) {
			gd_store(&y[o], alpha * val[0], beta);
			if (arg) arg[o] = idx[0];
		}
		__syncthreads();
	}
}

// gidedge_reduce_small is gidedge_reduce with one thread per output, for
// reductions too short to fill a block (nred below a few dozen).
extern "C" __global__ void gidedge_reduce_small(float* y, int* arg, const float* x, int op, float alpha, float beta, gd_reduce g) {
	for (int o = gd_first(); o < g.nkeep; o += gd_step()) {
		float acc;
		int best;
		gd_fold(x, op, g, o, 0, 1, &acc, &best);
		gd_store(&y[o], alpha * acc, beta);
		if (arg) arg[o] = best;
	}
}

// gidedge_softmax normalises x [outer, size, inner] along the middle axis,
// one block per (outer, inner) row: y = softmax(x), or log-softmax when log
// is non-zero. y may be x.
extern "C" __global__ void gidedge_softmax(float* y, const float* x, int outer, int size, int inner, int log) {
	__shared__ float buf[GD_BLOCK];
	int t = (int)threadIdx.x;
	for (int row = (int)blockIdx.x; row < outer * inner; row += (int)gridDim.x) {
		int base = (row / inner) * size * inner + row % inner;
		float m = -GD_INF;
		for (int s = t; s < size; s += GD_BLOCK) m = gd_max(m, x[base + s * inner]);
		m = gd_block_max(m, buf);
		float z = 0.f;
		for (int s = t; s < size; s += GD_BLOCK) z += gd_exp(x[base + s * inner] - m);
		z = gd_block_sum(z, buf);
		if (log) {
			float lz = m + gd_log(z);
			for (int s = t; s < size; s += GD_BLOCK) y[base + s * inner] = x[base + s * inner] - lz;
		} else {
			float inv = 1.f / z;
			for (int s = t; s < size; s += GD_BLOCK) y[base + s * inner] = gd_exp(x[base + s * inner] - m) * inv;
		}
	}
}

// gidedge_softmax_backward takes the forward output y and the upstream
// gradient gy and sets gx = dx + beta·gx, where dx = y·(gy − Σ gy·y) for
// softmax and gy − e^y·Σ gy for log-softmax.
extern "C" __global__ void gidedge_softmax_backward(float* gx, const float* gy, const float* y, int outer, int size, int inner, int log, float beta) {
	__shared__ float buf[GD_BLOCK];
	int t = (int)threadIdx.x;
	for (int row = (int)blockIdx.x; row < outer * inner; row += (int)gridDim.x) {
		int base = (row / inner) * size * inner + row % inner;
		float acc = 0.f;
		for (int s = t; s < size; s += GD_BLOCK) {
			int i = base + s * inner;
			acc += log ? gy[i] : gy[i] * y[i];
		}
		acc = gd_block_sum(acc, buf);
		for (int s = t; s < size; s += GD_BLOCK) {
			int i = base + s * inner;
			float d = log ? gy[i] - gd_exp(y[i]) * acc : y[i] * (gy[i] - acc);
			gd_store(&gx[i], d, beta);
		}
	}
}

// gidedge_cross_entropy computes, per row of logits x [n, c], logz = log Σ e^x
// and loss = logz − x[label]; a negative label marks an ignored row (loss 0).
extern "C" __global__ void gidedge_cross_entropy(float* loss, float* logz, const float* x, const int* labels, int n, int c) {
	__shared__ float buf[GD_BLOCK];
	int t = (int)threadIdx.x;
	for (int row = (int)blockIdx.x; row < n; row += (int)gridDim.x) {
		const float* xr = x + row * c;
		float m = -GD_INF;
		for (int k = t; k < c; k += GD_BLOCK) m = gd_max(m, xr[k]);
		m = gd_block_max(m, buf);
		float z = 0.f;
		for (int k = t; k < c; k += GD_BLOCK) z += gd_exp(xr[k] - m);
		z = gd_block_sum(z, buf);
		if (t == 0) {
			float lz = m + gd_log(z);
			int label = labels[row];
			logz[row] = lz;
			loss[row] = label >= 0 ? lz - xr[label] : 0.f;
		}
	}
}

// gidedge_cross_entropy_backward sets gx[i][k] = gy[i]·(e^(x−logz) − [k = label])
// + beta·gx[i][k]; ignored rows get 0.
extern "C" __global__ void gidedge_cross_entropy_backward(float* gx, const float* gy, const float* x, const float* logz, const int* labels, float beta, int n, int c) {
	for (int e = gd_first(); e < n * c; e += gd_step()) {
		int row = e / c, k = e - row * c;
		int label = labels[row];
		float d = 0.f;
		if (label >= 0 && gy[row] != 0.f) d = gy[row] * (gd_exp(x[e] - logz[row]) - (k == label ? 1.f : 0.f));
		gd_store(&gx[e], d, beta);
	}
}

// gidedge_sum_squares writes each block's share of Σ x² over x[0:n) into
// partial[blockIdx.x] (grid-stride order is fixed, so the result is
// deterministic for a given grid). Sum the partials with gidedge_clip_coef
// or gidedge_reduce.
extern "C" __global__ void gidedge_sum_squares(float* partial, const float* x, int n) {
	__shared__ float buf[GD_BLOCK];
	float acc = 0.f;
	for (int i = gd_first(); i < n; i += gd_step()) acc += x[i] * x[i];
	acc = gd_block_sum(acc, buf);
	if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// gidedge_clip_coef runs as one block: it sums count partial sums of
// squares into the global norm and writes out[0] = norm and out[1] =
// max_norm/(norm + 1e-6) when that is below 1, else 1 (PyTorch's
// clip_grad_norm_). A non-finite norm gives coefficient 1: nothing is scaled
// and the caller reports out[0].
extern "C" __global__ void gidedge_clip_coef(float* out, const float* partial, int count, float max_norm) {
	__shared__ float buf[GD_BLOCK];
	float acc = 0.f;
	for (int i = (int)threadIdx.x; i < count; i += GD_BLOCK) acc += partial[i];
	acc = gd_block_sum(acc, buf);
	if (threadIdx.x == 0) {
		float norm = gd_sqrt(acc);
		float coef = max_norm / (norm + 1e-6f);
		out[0] = norm;
		out[1] = coef < 1.f ? coef : 1.f;
	}
}
