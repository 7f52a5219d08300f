// Detection losses, fused forward and backward, elementwise (GIoU per row)
// like engine/ops_loss.go: callers reduce and normalise.
#include "common.cuh"

static __device__ __forceinline__ float gd_bce_logits(float x, float t) { return gd_max(x, 0.f) - x * t + gd_softplus_neg(x); }

static __device__ __forceinline__ float gd_sign(float v) { return v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f); }

// gd_powf is x^p for x >= 0 (focal modulating factor).
static __device__ __forceinline__ float gd_powf(float x, float p) {
	if (p == 0.f) return 1.f;
	if (p == 1.f) return x;
	if (p == 2.f) return x * x;
	if (x <= 0.f) return 0.f;
	return gd_exp2(p * gd_log2(x));
}

static __device__ __forceinline__ float gd_alpha_t(float alpha, float t) { return alpha < 0.f ? 1.f : alpha * t + (1.f - alpha) * (1.f - t); }

// gidedge_sigmoid_focal_forward is torchvision's sigmoid_focal_loss with
// reduction "none": y = bce(x, t)·(1 − p_t)^gamma·alpha_t, p = sigmoid(x);
// a negative alpha disables the class weighting.
extern "C" __global__ void gidedge_sigmoid_focal_forward(float* y, const float* x, const float* t, float alpha, float gamma, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float xv = x[i], tv = t[i];
		float p = gd_sigmoid(xv);
		float m = 1.f - (p * tv + (1.f - p) * (1.f - tv));
		y[i] = gd_bce_logits(xv, tv) * gd_powf(m, gamma) * gd_alpha_t(alpha, tv);
	}
}

// gidedge_sigmoid_focal_backward sets gx = gy·∂y/∂x + beta·gx (targets take
// no gradient). In every loss backward an element whose gy is 0 contributes
// exactly 0, even where the derivative is not finite.
extern "C" __global__ void gidedge_sigmoid_focal_backward(float* gx, const float* gy, const float* x, const float* t, float alpha, float gamma, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float xv = x[i], tv = t[i];
		float p = gd_sigmoid(xv);
		float m = 1.f - (p * tv + (1.f - p) * (1.f - tv));
		float dm = -p * (1.f - p) * (2.f * tv - 1.f);
		// d(m^γ)/dm = γ·m^(γ−1); at m = 0 it is 0 for γ > 1 and 1 for γ = 1.
		float dpow = 0.f;
		if (m > 0.f) {
			dpow = gamma * gd_powf(m, gamma - 1.f);
		} else if (gamma == 1.f) {
			dpow = 1.f;
		}
		float d = ((p - tv) * gd_powf(m, gamma) + gd_bce_logits(xv, tv) * dpow * dm) * gd_alpha_t(alpha, tv);
		gd_store(&gx[i], gy[i] == 0.f ? 0.f : gy[i] * d, beta);
	}
}

static __device__ float gd_pair_f(int op, float a, float b, float param) {
	switch (op) {
	case GD_LOSS_BCE_LOGITS: return gd_bce_logits(a, b);
	case GD_LOSS_L1: return gd_abs(a - b);
	case GD_LOSS_SMOOTH_L1: {
		float d = gd_abs(a - b);
		return d < param ? 0.5f * d * d / param : d - 0.5f * param;
	}
	case GD_LOSS_MSE: return (a - b) * (a - b);
	}
	return GD_NAN;
}

// gd_pair_da returns ∂f/∂a; *db receives ∂f/∂b.
static __device__ float gd_pair_df(int op, float a, float b, float param, float* db) {
	float da = GD_NAN;
	switch (op) {
	case GD_LOSS_BCE_LOGITS:
		da = gd_sigmoid(a) - b;
		*db = -a;
		return da;
	case GD_LOSS_L1: da = gd_sign(a - b); break;
	case GD_LOSS_SMOOTH_L1: {
		float d = a - b;
		da = gd_abs(d) < param ? d / param : gd_sign(d);
		break;
	}
	case GD_LOSS_MSE: da = 2.f * (a - b); break;
	}
	*db = -da;
	return da;
}

// gidedge_pair_loss sets y[i] = f_op(a[i], b[i]; param): BCE with logits
// (a logits, b soft targets), L1, smooth L1 (param = beta; 0 is L1) or MSE.
extern "C" __global__ void gidedge_pair_loss(float* y, const float* a, const float* b, int op, float param, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) y[i] = gd_pair_f(op, a[i], b[i], param);
}

// gidedge_pair_loss_backward sets ga = gy·∂f/∂a + beta·ga and gb likewise;
// either may be null. The derivative of |d| at 0 is 0.
extern "C" __global__ void gidedge_pair_loss_backward(float* ga, float* gb, const float* gy, const float* a, const float* b, int op, float param, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float db;
		float da = gd_pair_df(op, a[i], b[i], param, &db);
		float g = gy[i];
		if (ga) gd_store(&ga[i], g == 0.f ? 0.f : g * da, beta);
		if (gb) gd_store(&gb[i], g == 0.f ? 0.f : g * db, beta);
	}
}

#define GD_GIOU_EPS 1e-7f

// gidedge_giou_forward sets y[i] = 1 − GIoU(p[i], t[i]) for boxes
// (x1, y1, x2, y2), torchvision's generalized_box_iou_loss.
extern "C" __global__ void gidedge_giou_forward(float* y, const float* p, const float* t, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		const float* a = p + 4 * i;
		const float* b = t + 4 * i;
		float iw = gd_max(gd_min(a[2], b[2]) - gd_max(a[0], b[0]), 0.f);
		float ih = gd_max(gd_min(a[3], b[3]) - gd_max(a[1], b[1]), 0.f);
		float inter = iw * ih;
		float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
		float enc = (gd_max(a[2], b[2]) - gd_min(a[0], b[0])) * (gd_max(a[3], b[3]) - gd_min(a[1], b[1]));
		y[i] = 1.f - (inter / (uni + GD_GIOU_EPS) - (enc - uni) / (enc + GD_GIOU_EPS));
	}
}

// gidedge_giou_backward sets gp = gy·∂(1 − GIoU)/∂p + beta·gp and gt
// likewise (either may be null), with the same branch choices at ties as
// engine's giouBackward.
extern "C" __global__ void gidedge_giou_backward(float* gp, float* gt, const float* gy, const float* p, const float* t, float beta, int n) {
	for (int i = gd_first(); i < n; i += gd_step()) {
		float x1 = p[4 * i], y1 = p[4 * i + 1], x2 = p[4 * i + 2], y2 = p[4 * i + 3];
		float X1 = t[4 * i], Y1 = t[4 * i + 1], X2 = t[4 * i + 2], Y2 = t[4 * i + 3];
		float iw = gd_max(gd_min(x2, X2) - gd_max(x1, X1), 0.f);
		float ih = gd_max(gd_min(y2, Y2) - gd_max(y1, Y1), 0.f);
		float inter = iw * ih;
		float uni = (x2 - x1) * (y2 - y1) + (X2 - X1) * (Y2 - Y1) - inter;
		float ew = gd_max(x2, X2) - gd_min(x1, X1), eh = gd_max(y2, Y2) - gd_min(y1, Y1);
		float ue = uni + GD_GIOU_EPS, ee = ew * eh + GD_GIOU_EPS;
		float g = -gy[i];  // the loss is 1 − GIoU
		if (g == 0.f) {
			for (int k = 0; k < 4; k++) {
				if (gp) gd_store(&gp[4 * i + k], 0.f, beta);
				if (gt) gd_store(&gt[4 * i + k], 0.f, beta);
			}
			continue;
		}
		// GIoU = I/(U+ε) − 1 + (U+ε)/(E+ε)
		float gI = g / ue;
		float gU = -g * inter / (ue * ue) + g / ee;
		float gE = -g * ue / (ee * ee);
		gI -= gU;  // U = areaP + areaT − I
		float dp[4] = {0.f, 0.f, 0.f, 0.f}, dt[4] = {0.f, 0.f, 0.f, 0.f};
		dp[2] += gU * (y2 - y1);
		dp[0] -= gU * (y2 - y1);
		dp[3] += gU * (x2 - x1);
		dp[1] -= gU * (x2 - x1);
		dt[2] += gU * (Y2 - Y1);
		dt[0] -= gU * (Y2 - Y1);
		dt[3] += gU * (X2 - X1);
		dt[1] -= gU * (X2 - X1);
		if (iw > 0.f) {
			float gw = gI * ih;
			if (x2 <= X2) dp[2] += gw; else dt[2] += gw;
			if (x1 >= X1) dp[0] -= gw; else dt[0] -= gw;
		}
		if (ih > 0.f) {
			float gh = gI * iw;
			if (y2 <= Y2) dp[3] += gh; else dt[3] += gh;
			if (y1 >= Y1) dp[1] -= gh; else dt[1] -= gh;
		}
		float gw = gE * eh, gh = gE * ew;
		if (x2 >= X2) dp[2] += gw; else dt[2] += gw;
		if (x1 <= X1) dp[0] -= gw; else dt[0] -= gw;
		if (y2 >= Y2) dp[3] += gh; else dt[3] += gh;
		if (y1 <= Y1) dp[1] -= gh; else dt[1] -= gh;
		for (int k = 0; k < 4; k++) {
			if (gp) gd_store(&gp[4 * i + k], dp[k], beta);
			if (gt) gd_store(&gt[4 * i + k], dt[k], beta);
		}
	}
}
