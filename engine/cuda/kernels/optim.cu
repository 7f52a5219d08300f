// Optimizer updates, elementwise over one parameter, following
// engine/optim (torch.optim's rules). Step-dependent scalars are computed
// on the host, as engine/optim does, so both give the same numbers.
#include "common.cuh"

// gidedge_adamw updates p, m, v in place from g: p *= shrink (1 − lr·wd,
// or 1 without decay); m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
// p −= step_size·m/(√v·inv_sqrt_bc2 + eps) with step_size = lr/(1−β1^t)
// and inv_sqrt_bc2 = 1/√(1−β2^t).
extern "C" __global__ void gidedge_adamw(float* p, float* m, float* v, const float* g, float shrink, float beta1, float beta2, float step_size, float inv_sqrt_bc2, float eps, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float gi = g[i];
		float pi = p[i] * shrink;
		float mi = beta1 * m[i] + (1.f - beta1) * gi;
		float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
		float denom = gd_sqrt(vi) * inv_sqrt_bc2 + eps;
		p[i] = pi - step_size * mi / denom;
		m[i] = mi;
		v[i] = vi;
	}
}

// gidedge_sgd updates p (and the momentum buffer buf) from g:
// g' = g + wd·p; without momentum p −= lr·g'; else buf = μ·buf + g' and
// p −= lr·buf, or lr·(g' + μ·buf) with Nesterov (torch.optim.SGD, dampening 0).
extern "C" __global__ void gidedge_sgd(float* p, float* buf, const float* g, float lr, float momentum, float weight_decay, int nesterov, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float gi = g[i] + weight_decay * p[i];
		if (momentum == 0.f) {
			p[i] -= lr * gi;
			continue;
		}
		float b = momentum * buf[i] + gi;
		buf[i] = b;
		p[i] -= lr * (nesterov ? gi + momentum * b : b);
	}
}
