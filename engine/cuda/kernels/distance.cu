// Pairwise squared Euclidean distances between rows (GID's relation loss).
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
