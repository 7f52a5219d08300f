// Pointwise ops: unary functions with their derivatives, binary ops with
// broadcasting, and selection.
#include "common.cuh"

static __device__ __forceinline__ float gd_pow(float x, float p) {
	if (p == 1.f) return x;
	if (p == 2.f) return x * x;
	if (p == 0.f) return 1.f;
	if (x == 0.f) return p > 0.f ? 0.f : GD_INF;
	float r = gd_exp2(p * gd_log2(gd_abs(x)));
	if (x > 0.f) return r;
	if (gd_floor(p) != p) return GD_NAN;
	// An odd integer exponent keeps the sign of a negative base.
	float half = p * 0.5f;
	return gd_floor(half) == half ? r : -r;
}

static __device__ __forceinline__ float gd_tanh(float x) {
	float e = gd_exp(-2.f * gd_abs(x));
	float t = (1.f - e) / (1.f + e);
	return x < 0.f ? -t : t;
}

static __device__ float gd_unary_f(int op, float x, float a, float b) {
	switch (op) {
	case GD_UNARY_AFFINE: return a * x + b;
	case GD_UNARY_EXP: return gd_exp(x);
	case GD_UNARY_LOG: return gd_log(x);
	case GD_UNARY_SQRT: return gd_sqrt(x);
	case GD_UNARY_ABS: return gd_abs(x);
	case GD_UNARY_RELU: return x <= 0.f ? 0.f : x;  // NaN stays NaN
	case GD_UNARY_LEAKY_RELU: return x > 0.f ? x : a * x;
	case GD_UNARY_SIGMOID: return gd_sigmoid(x);
	case GD_UNARY_SILU: return x * gd_sigmoid(x);
	case GD_UNARY_HARDSWISH: return x <= -3.f ? 0.f : (x >= 3.f ? x : x * (x + 3.f) / 6.f);
	case GD_UNARY_TANH: return gd_tanh(x);
	case GD_UNARY_POW: return gd_pow(x, a);
	case GD_UNARY_CLAMP: return x != x ? x : gd_min(gd_max(x, a), b);  // NaN stays NaN
	}
	return GD_NAN;
}

// gd_unary_df is f'(x) given the input x and the output y = f(x); each op
// reads only the one gidedge_unary_backward documents.
static __device__ float gd_unary_df(int op, float x, float y, float a, float b) {
	switch (op) {
	case GD_UNARY_AFFINE: return a;
	case GD_UNARY_EXP: return y;
	case GD_UNARY_LOG: return 1.f / x;
	case GD_UNARY_SQRT: return 0.5f / y;
	case GD_UNARY_ABS: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
	case GD_UNARY_RELU: return y <= 0.f ? 0.f : 1.f;  // a NaN output passes the gradient (PyTorch)
	case GD_UNARY_LEAKY_RELU: return x > 0.f ? 1.f : a;
	case GD_UNARY_SIGMOID: return y * (1.f - y);
	case GD_UNARY_SILU: {
		float s = gd_sigmoid(x);
		return s * (1.f + x * (1.f - s));
	}
	case GD_UNARY_HARDSWISH: return x < -3.f ? 0.f : (x > 3.f ? 1.f : (2.f * x + 3.f) / 6.f);
	case GD_UNARY_TANH: return 1.f - y * y;
	case GD_UNARY_POW: return a * gd_pow(x, a - 1.f);
	case GD_UNARY_CLAMP: return (x < a || x > b) ? 0.f : 1.f;
	}
	return GD_NAN;
}

// gidedge_unary sets y[i] = f_op(x[i]; a, b) for i < n; y may be x.
extern "C" __global__ void gidedge_unary(float* y, const float* x, int op, float a, float b, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) y[i] = gd_unary_f(op, x[i], a, b);
}

// gidedge_unary_backward sets gx[i] = gy[i]·f'_op + beta·gx[i]. EXP, SQRT,
// RELU, SIGMOID and TANH read the forward output y; AFFINE reads neither;
// the others read the input x. The one not read may be null.
extern "C" __global__ void gidedge_unary_backward(float* gx, const float* gy, const float* x, const float* y, int op, float a, float b, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float xv = 0.f, yv = 0.f;
		if (op == GD_UNARY_EXP || op == GD_UNARY_SQRT || op == GD_UNARY_RELU || op == GD_UNARY_SIGMOID || op == GD_UNARY_TANH) {
			yv = y[i];
		} else if (op != GD_UNARY_AFFINE) {
			xv = x[i];
		}
		gd_store(&gx[i], gy[i] * gd_unary_df(op, xv, yv, a, b), beta);
	}
}

static __device__ __forceinline__ float gd_binary_f(int op, float a, float b) {
	switch (op) {
	case GD_BINARY_ADD: return a + b;
	case GD_BINARY_SUB: return a - b;
	case GD_BINARY_MUL: return a * b;
	case GD_BINARY_DIV: return a / b;
	case GD_BINARY_MAX: return a >= b ? a : b;
	case GD_BINARY_MIN: return a <= b ? a : b;
	}
	return GD_NAN;
}

// gidedge_binary walks l's index space and sets
// y[off0] = a[off1] op b[off2] + beta·y[off0] (NumPy broadcasting is a zero
// stride in a or b).
extern "C" __global__ void gidedge_binary(float* y, const float* a, const float* b, int op, float beta, gd_layout l) {
	for (int i = gd_first(); i < l.n; i += gd_step()) {
		int off[3];
		gd_offsets(l, i, 3, off);
		gd_store(&y[off[0]], gd_binary_f(op, a[off[1]], b[off[2]]), beta);
	}
}

// gidedge_binary_backward writes, for every index of l, the gradient that
// flows into operand `side` (0: a, 1: b) before any broadcast reduction:
// g[off0] = gy[off0]·∂(a op b)/∂side, with a at off1 and b at off2. Sum g
// down to the operand's shape with gidedge_reduce. For MAX and MIN the
// gradient goes to a on ties.
extern "C" __global__ void gidedge_binary_backward(float* g, const float* gy, const float* a, const float* b, int op, int side, gd_layout l) {
	for (int i = gd_first(); i < l.n; i += gd_step()) {
		int off[3];
		gd_offsets(l, i, 3, off);
		float av = a[off[1]], bv = b[off[2]], d = 0.f;
		switch (op) {
		case GD_BINARY_ADD: d = 1.f; break;
		case GD_BINARY_SUB: d = side == 0 ? 1.f : -1.f; break;
		case GD_BINARY_MUL: d = side == 0 ? bv : av; break;
		case GD_BINARY_DIV: d = side == 0 ? 1.f / bv : -av / (bv * bv); break;
		case GD_BINARY_MAX: d = ((av >= bv) == (side == 0)) ? 1.f : 0.f; break;
		case GD_BINARY_MIN: d = ((av <= bv) == (side == 0)) ? 1.f : 0.f; break;
		}
		g[off[0]] = gy[off[0]] * d;
	}
}

// gidedge_where sets y[i] = (cond[i] != 0 ? a[i] : b[i]) + beta·y[i]; a
// null a or b stands for the constant a_value or b_value (MaskedFill, or 0
// for the backward pass of a selection).
extern "C" __global__ void gidedge_where(float* y, const float* cond, const float* a, const float* b, float a_value, float b_value, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float v;
		if (cond[i] != 0.f) {
			v = a ? a[i] : a_value;
		} else {
			v = b ? b[i] : b_value;
		}
		gd_store(&y[i], v, beta);
	}
}

// gidedge_where_backward routes gy to ga where cond is non-zero and to gb
// elsewhere (each may be null): ga[i] = gy[i]·[cond≠0] + beta·ga[i].
extern "C" __global__ void gidedge_where_backward(float* ga, float* gb, const float* cond, const float* gy, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		bool take = cond[i] != 0.f;
		if (ga) gd_store(&ga[i], take ? gy[i] : 0.f, beta);
		if (gb) gd_store(&gb[i], take ? 0.f : gy[i], beta);
	}
}
