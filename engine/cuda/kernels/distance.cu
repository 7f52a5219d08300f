// Pairwise distances between rows: squared between two sets, and Euclidean
// within one set (GID's relation loss).
#include "common.cuh"

// gidedge_pairwise_sqdist sets d[i][j] = Σ_k (a[i][k] − b[j][k])² for
// a [m, k], b [n, k], d [m, n].
extern "C" __global__ void gidedge_pairwise_sqdist(float* d, const float* a, const float* b, int m, int n, int k) {
	for (int e = gd_first(); e < m * n; e += gd_step()) {
		int i = e / n, j = e - i * n;
		float acc = 0.f;
		for (int q = 0; q < k; q++) {
			float diff = a[i * k + q] - b[j * k + q];
			acc += diff * diff;
		}
		d[e] = acc;
	}
}

// gidedge_pairwise_sqdist_backward writes the gradient of one side given
// g = ∂L/∂d [m, n]: side 0 sets ga[i][q] = Σ_j 2·g[i][j]·(a[i][q] − b[j][q]),
// side 1 sets gb[j][q] = −Σ_i 2·g[i][j]·(a[i][q] − b[j][q]); out = that +
// beta·out. One thread per output element, no atomics.
extern "C" __global__ void gidedge_pairwise_sqdist_backward(float* out, const float* g, const float* a, const float* b, int m, int n, int k, int side, float beta) {
	int rows = side == 0 ? m : n;
	for (int e = gd_first(); e < rows * k; e += gd_step()) {
		int r = e / k, q = e - r * k;
		float acc = 0.f;
		if (side == 0) {
			for (int j = 0; j < n; j++) acc += g[r * n + j] * (a[r * k + q] - b[j * k + q]);
			acc *= 2.f;
		} else {
			for (int i = 0; i < m; i++) acc += g[i * n + r] * (a[i * k + q] - b[r * k + q]);
			acc *= -2.f;
		}
		gd_store(&out[e], acc, beta);
	}
}

// gidedge_pairwise_distance sets y[i][j] = ‖x[i] − x[j]‖ for the k rows of
// x [k, d] (y [k, k], zero diagonal), accumulating the squares in double as
// the engine does (GID's relation loss).
extern "C" __global__ void gidedge_pairwise_distance(float* y, const float* x, int k, int d) {
	for (int e = gd_first(); e < k * k; e += gd_step()) {
		int i = e / k, j = e - i * k;
		double acc = 0.0;
		for (int q = 0; q < d; q++) {
			double diff = (double)x[i * d + q] - (double)x[j * d + q];
			acc += diff * diff;
		}
		y[e] = i == j ? 0.f : gd_sqrt((float)acc);
	}
}

// gidedge_pairwise_distance_backward sets
// dx[i][q] = Σ_j (dy[i][j] + dy[j][i])·(x[i][q] − x[j][q])/y[i][j] + beta·dx,
// over the pairs with y[i][j] > 0 (a zero distance has gradient 0).
extern "C" __global__ void gidedge_pairwise_distance_backward(float* dx, const float* x, const float* y, const float* dy, float beta, int k, int d) {
	for (int e = gd_first(); e < k * d; e += gd_step()) {
		int i = e / d, q = e - i * d;
		float acc = 0.f;
		for (int j = 0; j < k; j++) {
			float dist = y[i * k + j];
			if (!(dist > 0.f)) continue;
			acc += (dy[i * k + j] + dy[j * k + i]) * (x[i * d + q] - x[j * d + q]) / dist;
		}
		gd_store(&dx[e], acc, beta);
	}
}
