// Batch normalisation over NCHW, per channel, following engine's
// BatchNorm2d: biased variance to normalise, unbiased for the running
// estimate, PyTorch's momentum convention.
#include "common.cuh"

// gidedge_bn_stats computes, one block per channel, the batch mean and
// 1/√(var + eps) of x [n, c, hw] into mean and invstd [c], and when
// running_mean/running_var are not null updates them:
// r = (1 − momentum)·r + momentum·batch (unbiased variance).
extern "C" __global__ void gidedge_bn_stats(float* mean, float* invstd, float* running_mean, float* running_var, const float* x, float eps, float momentum, int n, int c, int hw) {
	__shared__ float buf[GD_BLOCK];
	int count = n * hw;
	for (int ch = (int)blockIdx.x; ch < c; ch += (int)gridDim.x) {
		float s = 0.f;
		for (int e = (int)threadIdx.x; e < count; e += GD_BLOCK) {
			int i = e / hw;
			s += x[(i * c + ch) * hw + e - i * hw];
		}
		float mu = gd_block_sum(s, buf) / (float)count;
		float ss = 0.f;
		for (int e = (int)threadIdx.x; e < count; e += GD_BLOCK) {
			int i = e / hw;
			float d = x[(i * c + ch) * hw + e - i * hw] - mu;
			ss += d * d;
		}
		ss = gd_block_sum(ss, buf);
		if (threadIdx.x == 0) {
			mean[ch] = mu;
			invstd[ch] = 1.f / gd_sqrt(ss / (float)count + eps);
			if (running_mean) running_mean[ch] = (1.f - momentum) * running_mean[ch] + momentum * mu;
			if (running_var) running_var[ch] = (1.f - momentum) * running_var[ch] + momentum * (ss / (float)(count - 1));
		}
	}
}

// gidedge_bn_forward sets y = x·s + (beta − mean·s), s = gamma·invstd, per
// channel of x [n, c, hw] (training, with gidedge_bn_stats's outputs).
extern "C" __global__ void gidedge_bn_forward(float* y, const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta, int n, int c, int hw) {
	for (int e = gd_first(); e < n * c * hw; e += gd_step()) {
		int ch = (e / hw) % c;
		float s = gamma[ch] * invstd[ch];
		y[e] = x[e] * s + (beta[ch] - mean[ch] * s);
	}
}

// gidedge_bn_forward_eval normalises with the running statistics and, when
// mean and invstd are not null, writes the statistics it used there for
// the backward pass (the running mean and 1/√(running var + eps)).
extern "C" __global__ void gidedge_bn_forward_eval(float* y, float* mean, float* invstd, const float* x, const float* running_mean, const float* running_var, const float* gamma, const float* beta, float eps, int n, int c, int hw) {
	for (int e = gd_first(); e < n * c * hw; e += gd_step()) {
		int ch = (e / hw) % c;
		float is = 1.f / gd_sqrt(running_var[ch] + eps);
		float s = gamma[ch] * is;
		y[e] = x[e] * s + (beta[ch] - running_mean[ch] * s);
		if (e < c) {
			if (mean) mean[e] = running_mean[e];
			if (invstd) invstd[e] = 1.f / gd_sqrt(running_var[e] + eps);
		}
	}
}

// gidedge_bn_backward_reduce computes per channel, one block each,
// sum_g = Σ gy (beta's gradient) and sum_gxhat = Σ gy·(x − mean)·invstd
// (gamma's gradient), written, not accumulated.
extern "C" __global__ void gidedge_bn_backward_reduce(float* sum_g, float* sum_gxhat, const float* gy, const float* x, const float* mean, const float* invstd, int n, int c, int hw) {
	__shared__ float buf[GD_BLOCK];
	int count = n * hw;
	for (int ch = (int)blockIdx.x; ch < c; ch += (int)gridDim.x) {
		float mu = mean[ch], is = invstd[ch];
		float sg = 0.f, sgx = 0.f;
		for (int e = (int)threadIdx.x; e < count; e += GD_BLOCK) {
			int i = e / hw;
			int off = (i * c + ch) * hw + e - i * hw;
			sg += gy[off];
			sgx += gy[off] * ((x[off] - mu) * is);
		}
		sg = gd_block_sum(sg, buf);
		sgx = gd_block_sum(sgx, buf);
		if (threadIdx.x == 0) {
			sum_g[ch] = sg;
			sum_gxhat[ch] = sgx;
		}
	}
}

// gidedge_bn_backward_data sets gx = d + beta·gx where, with s = gamma·invstd,
// d = s·(gy − sum_g/m − x̂·sum_gxhat/m) in training (m = n·hw) and d = s·gy
// in eval (then sum_g and sum_gxhat are not read and may be null).
extern "C" __global__ void gidedge_bn_backward_data(float* gx, const float* gy, const float* x, const float* mean, const float* invstd, const float* gamma, const float* sum_g, const float* sum_gxhat, int training, float beta, int n, int c, int hw) {
	float m = (float)(n * hw);
	for (int e = gd_first(); e < n * c * hw; e += gd_step()) {
		int ch = (e / hw) % c;
		float is = invstd[ch], s = gamma[ch] * is;
		float d;
		if (training) {
			float xhat = (x[e] - mean[ch]) * is;
			d = s * (gy[e] - sum_g[ch] / m - xhat * (sum_gxhat[ch] / m));
		} else {
			d = s * gy[e];
		}
		gd_store(&gx[e], d, beta);
	}
}
