// Memory-bound kernels of the CPU backend. Plain loops over contiguous
// rows, so the C compiler vectorises them; on x86-64 each exported kernel
// is compiled for AVX-512, AVX2 and the baseline and the loader picks one
// (target_clones). Floating-point contraction is off (ISO C, -std=c11), so
// the three versions compute the same numbers. Sums run in LANES float
// partial sums in a fixed order, reduced in double per row or plane: the
// result does not depend on the vector width either.
//
// Go checks every size before calling; nothing here validates.
#include <math.h>
#include <string.h>

#include "loops.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GIDEDGE_NO_CLONES)
#define KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KERNEL
#endif

#define LANES 16

// Helpers are inlined into each kernel so that they are compiled for the
// kernel's target (a called helper would be compiled for the baseline).
#define INLINE static inline __attribute__((always_inline))

// dot_lanes adds a[i]·b[i] into lane i mod LANES of acc.
INLINE void dot_lanes(float* restrict acc, const float* restrict a, const float* restrict b, long n) {
	float l[LANES];
	for (int k = 0; k < LANES; k++) {
		l[k] = acc[k];
	}
	long i = 0;
	for (; i + LANES <= n; i += LANES) {
		for (int k = 0; k < LANES; k++) {
			l[k] += a[i + k] * b[i + k];
		}
	}
	for (; i < n; i++) {
		l[i % LANES] += a[i] * b[i];
	}
	for (int k = 0; k < LANES; k++) {
		acc[k] = l[k];
	}
}

INLINE double lanes_sum(const float* l) {
	double s = 0;
	for (int k = 0; k < LANES; k++) {
		s += l[k];
	}
	return s;
}

// Depthwise convolution works on one plane at a time in a padded,
// column-phase-split copy: the plane with its zero padding, its columns
// dealt into s phases (padded column j·s + r goes to phase r, position j).
// Tap (ky, kx) of output row oy then reads phase (kx·dw) mod s of padded
// row oy·s + ky·dh from position ⌊kx·dw/s⌋ on: every tap is a contiguous
// run with no border tests, whatever the stride, padding and dilation.
typedef struct {
	long s;          // column stride
	long rows, wq;   // padded rows and phase width
	long phase;      // floats per phase: rows·wq
} padded;

INLINE padded padded_layout(long h, long w, long ph, long pw, long s) {
	padded p;
	p.s = s;
	p.rows = h + 2 * ph;
	p.wq = (w + 2 * pw + s - 1) / s;
	p.phase = p.rows * p.wq;
	return p;
}

// split_even_odd writes the even-indexed values of s[0..w) to c0 and the
// odd-indexed ones to c1: one row into its two column-parity sub-planes.
INLINE void split_even_odd(float* restrict c0, float* restrict c1, const float* restrict s, long w) {
	long k = 0;
	for (; 2 * k + 1 < w; k++) {
		c0[k] = s[2 * k];
		c1[k] = s[2 * k + 1];
	}
	if (2 * k < w) {
		c0[k] = s[2 * k];
	}
}

// pad_plane writes plane [h, w] into q (laid out as p) at padding (ph,
// pw); q's padding positions must already be zero and stay so.
INLINE void pad_plane(float* restrict q, const float* restrict x, long h, long w, long ph, long pw, padded p) {
	for (long y = 0; y < h; y++) {
		const float* restrict src = x + y * w;
		float* row = q + (y + ph) * p.wq;
		if (p.s == 1) {
			memcpy(row + pw, src, sizeof(float) * w);
			continue;
		}
		if (p.s == 2) {
			// image column 2k + e is padded column 2k + e + pw
			split_even_odd(row + ((pw & 1) * p.phase) + (pw >> 1), row + (((pw + 1) & 1) * p.phase) + ((pw + 1) >> 1), src, w);
			continue;
		}
		for (long r = 0; r < p.s; r++) {
			// padded columns c ≡ r (mod s) are image columns c − pw
			long j = r >= pw ? 0 : (pw - r + p.s - 1) / p.s;
			float* restrict d = row + r * p.phase;
			for (long ix = j * p.s + r - pw; ix < w; ix += p.s, j++) {
				d[j] = src[ix];
			}
		}
	}
}

// tap_row returns where tap (ky, kx) of output row oy starts in q.
INLINE const float* tap_row(const float* q, padded p, long oy, long sh, long ky, long dh, long kx, long dw) {
	long c = kx * dw;
	return q + (c % p.s) * p.phase + (oy * sh + ky * dh) * p.wq + c / p.s;
}

// conv_plane computes output plane y [oh, ow] (+ bias; added to y with
// acc) from the padded input q and the plane's kh×kw filter wt. A 3×3
// filter is one pass per output row with its nine taps in registers;
// other sizes make a pass per tap into the row buffer tmp.
INLINE void conv_plane(const float* q, padded p, const float* wt, long kh, long kw, long sh, long dh, long dw,
                       float* y, long oh, long ow, float bias, int acc, float* tmp) {
	for (long oy = 0; oy < oh; oy++) {
		float* restrict yr = y + oy * ow;
		if (kh == 3 && kw == 3) {
			const float* restrict r0 = tap_row(q, p, oy, sh, 0, dh, 0, dw);
			const float* restrict r1 = tap_row(q, p, oy, sh, 0, dh, 1, dw);
			const float* restrict r2 = tap_row(q, p, oy, sh, 0, dh, 2, dw);
			const float* restrict r3 = tap_row(q, p, oy, sh, 1, dh, 0, dw);
			const float* restrict r4 = tap_row(q, p, oy, sh, 1, dh, 1, dw);
			const float* restrict r5 = tap_row(q, p, oy, sh, 1, dh, 2, dw);
			const float* restrict r6 = tap_row(q, p, oy, sh, 2, dh, 0, dw);
			const float* restrict r7 = tap_row(q, p, oy, sh, 2, dh, 1, dw);
			const float* restrict r8 = tap_row(q, p, oy, sh, 2, dh, 2, dw);
			float w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3], w4 = wt[4], w5 = wt[5], w6 = wt[6], w7 = wt[7], w8 = wt[8];
			if (acc) {
				for (long ox = 0; ox < ow; ox++) {
					yr[ox] += w0 * r0[ox] + w1 * r1[ox] + w2 * r2[ox] + w3 * r3[ox] + w4 * r4[ox] + w5 * r5[ox] +
					          w6 * r6[ox] + w7 * r7[ox] + w8 * r8[ox] + bias;
				}
			} else {
				for (long ox = 0; ox < ow; ox++) {
					yr[ox] = w0 * r0[ox] + w1 * r1[ox] + w2 * r2[ox] + w3 * r3[ox] + w4 * r4[ox] + w5 * r5[ox] +
					         w6 * r6[ox] + w7 * r7[ox] + w8 * r8[ox] + bias;
				}
			}
			continue;
		}
		float* restrict t = tmp;
		for (long ox = 0; ox < ow; ox++) {
			t[ox] = 0.0f;
		}
		for (long ky = 0; ky < kh; ky++) {
			for (long kx = 0; kx < kw; kx++) {
				const float* restrict r = tap_row(q, p, oy, sh, ky, dh, kx, dw);
				float wv = wt[ky * kw + kx];
				for (long ox = 0; ox < ow; ox++) {
					t[ox] += wv * r[ox];
				}
			}
		}
		if (acc) {
			for (long ox = 0; ox < ow; ox++) {
				yr[ox] += t[ox] + bias;
			}
		} else {
			for (long ox = 0; ox < ow; ox++) {
				yr[ox] = t[ox] + bias;
			}
		}
	}
}

// filter_plane adds, for every tap, Σ dy·input over the plane into the
// tap's LANES partial sums.
INLINE void filter_plane(const float* q, padded p, const float* dy, long kh, long kw, long sh, long dh, long dw,
                         long oh, long ow, float* lanes) {
	if (kh != 3 || kw != 3) {
		for (long oy = 0; oy < oh; oy++) {
			for (long ky = 0; ky < kh; ky++) {
				for (long kx = 0; kx < kw; kx++) {
					dot_lanes(lanes + (ky * kw + kx) * LANES, dy + oy * ow, tap_row(q, p, oy, sh, ky, dh, kx, dw), ow);
				}
			}
		}
		return;
	}
	// Nine named accumulators and row pointers: the compiler keeps each
	// accumulator in a vector register across the plane.
	float a0[LANES], a1[LANES], a2[LANES], a3[LANES], a4[LANES], a5[LANES], a6[LANES], a7[LANES], a8[LANES];
	float* acc[9] = {a0, a1, a2, a3, a4, a5, a6, a7, a8};
	for (int t = 0; t < 9; t++) {
		memcpy(acc[t], lanes + t * LANES, sizeof(float) * LANES);
	}
	for (long oy = 0; oy < oh; oy++) {
		const float* restrict g = dy + oy * ow;
		const float* restrict r0 = tap_row(q, p, oy, sh, 0, dh, 0, dw);
		const float* restrict r1 = tap_row(q, p, oy, sh, 0, dh, 1, dw);
		const float* restrict r2 = tap_row(q, p, oy, sh, 0, dh, 2, dw);
		const float* restrict r3 = tap_row(q, p, oy, sh, 1, dh, 0, dw);
		const float* restrict r4 = tap_row(q, p, oy, sh, 1, dh, 1, dw);
		const float* restrict r5 = tap_row(q, p, oy, sh, 1, dh, 2, dw);
		const float* restrict r6 = tap_row(q, p, oy, sh, 2, dh, 0, dw);
		const float* restrict r7 = tap_row(q, p, oy, sh, 2, dh, 1, dw);
		const float* restrict r8 = tap_row(q, p, oy, sh, 2, dh, 2, dw);
		long ox = 0;
		for (; ox + LANES <= ow; ox += LANES) {
			for (int l = 0; l < LANES; l++) {
				float gv = g[ox + l];
				a0[l] += gv * r0[ox + l];
				a1[l] += gv * r1[ox + l];
				a2[l] += gv * r2[ox + l];
				a3[l] += gv * r3[ox + l];
				a4[l] += gv * r4[ox + l];
				a5[l] += gv * r5[ox + l];
				a6[l] += gv * r6[ox + l];
				a7[l] += gv * r7[ox + l];
				a8[l] += gv * r8[ox + l];
			}
		}
		for (; ox < ow; ox++) {
			int l = ox % LANES;
			float gv = g[ox];
			a0[l] += gv * r0[ox];
			a1[l] += gv * r1[ox];
			a2[l] += gv * r2[ox];
			a3[l] += gv * r3[ox];
			a4[l] += gv * r4[ox];
			a5[l] += gv * r5[ox];
			a6[l] += gv * r6[ox];
			a7[l] += gv * r7[ox];
			a8[l] += gv * r8[ox];
		}
	}
	for (int t = 0; t < 9; t++) {
		memcpy(lanes + t * LANES, acc[t], sizeof(float) * LANES);
	}
}

// The input gradient of a stride-1 depthwise convolution is the forward
// convolution of dy with the flipped filter, padded by (k−1)·d − p: it
// runs through conv_plane. Other strides scatter each tap into a padded
// gradient plane (scatter_plane) that unpad_plane folds back.
INLINE int flips(gd_geom g) {
	return g.sh == 1 && g.sw == 1 && g.ph <= (g.kh - 1) * g.dh && g.pw <= (g.kw - 1) * g.dw;
}

INLINE void scatter_plane(float* q, padded p, const float* dy, const float* wt, long kh, long kw, long sh, long dh, long dw,
                          long oh, long ow) {
	for (long oy = 0; oy < oh; oy++) {
		const float* restrict g = dy + oy * ow;
		for (long ky = 0; ky < kh; ky++) {
			for (long kx = 0; kx < kw; kx++) {
				float* restrict r = (float*)tap_row(q, p, oy, sh, ky, dh, kx, dw);
				float wv = wt[ky * kw + kx];
				for (long ox = 0; ox < ow; ox++) {
					r[ox] += wv * g[ox];
				}
			}
		}
	}
}

// unpad_plane writes (acc: adds) the image positions of padded gradient q
// into dx [h, w].
INLINE void unpad_plane(float* restrict dx, const float* restrict q, long h, long w, long ph, long pw, padded p, int acc) {
	for (long y = 0; y < h; y++) {
		float* restrict d = dx + y * w;
		const float* row = q + (y + ph) * p.wq;
		if (p.s == 1) {
			const float* restrict src = row + pw;
			if (acc) {
				for (long ix = 0; ix < w; ix++) {
					d[ix] += src[ix];
				}
			} else {
				memcpy(d, src, sizeof(float) * w);
			}
			continue;
		}
		if (p.s == 2) {
			const float* restrict even = row + ((pw & 1) * p.phase) + (pw >> 1);
			const float* restrict odd = row + (((pw + 1) & 1) * p.phase) + ((pw + 1) >> 1);
			long k = 0;
			if (acc) {
				for (; 2 * k + 1 < w; k++) {
					d[2 * k] += even[k];
					d[2 * k + 1] += odd[k];
				}
				if (2 * k < w) {
					d[2 * k] += even[k];
				}
			} else {
				for (; 2 * k + 1 < w; k++) {
					d[2 * k] = even[k];
					d[2 * k + 1] = odd[k];
				}
				if (2 * k < w) {
					d[2 * k] = even[k];
				}
			}
			continue;
		}
		for (long r = 0; r < p.s; r++) {
			long j = r >= pw ? 0 : (pw - r + p.s - 1) / p.s;
			const float* restrict src = row + r * p.phase;
			for (long ix = j * p.s + r - pw; ix < w; ix += p.s, j++) {
				d[ix] = acc ? d[ix] + src[j] : src[j];
			}
		}
	}
}

// Scratch: the padded input (or output gradient) plane, the padded
// gradient plane, a row buffer and the filter lanes.
long gd_dw_scratch(gd_geom g) {
	padded in = padded_layout(g.h, g.w, g.ph, g.pw, g.sw);
	long ah = (g.kh - 1) * g.dh - g.ph, aw = (g.kw - 1) * g.dw - g.pw;
	long flipped = 0;
	if (flips(g)) {
		padded d = padded_layout(g.oh, g.ow, ah, aw, 1);
		flipped = d.phase;
	}
	long plane = in.s * in.phase;
	return 2 * plane + flipped + g.ow + g.w + g.kh * g.kw * (LANES + 1) + 64;
}

KERNEL void gd_dw_forward(const float* x, const float* w, const float* bias, float* y,
                          long t0, long t1, long c, gd_geom g, float* scratch) {
	padded p = padded_layout(g.h, g.w, g.ph, g.pw, g.sw);
	float* q = scratch;
	float* tmp = q + p.s * p.phase;
	memset(q, 0, sizeof(float) * p.s * p.phase);
	for (long t = t0; t < t1; t++) {
		long ch = t % c;
		pad_plane(q, x + t * g.h * g.w, g.h, g.w, g.ph, g.pw, p);
		conv_plane(q, p, w + ch * g.kh * g.kw, g.kh, g.kw, g.sh, g.dh, g.dw, y + t * g.oh * g.ow, g.oh, g.ow,
		           bias != NULL ? bias[ch] : 0.0f, 0, tmp);
	}
}

KERNEL void gd_dw_backward(const float* x, const float* w, const float* dy,
                           float* dx, int acc_x, float* dw, int acc_w,
                           long c0, long c1, long n, long c, gd_geom g, float* scratch) {
	long kk = g.kh * g.kw;
	padded p = padded_layout(g.h, g.w, g.ph, g.pw, g.sw);
	int flip = flips(g);
	long ah = (g.kh - 1) * g.dh - g.ph, aw = (g.kw - 1) * g.dw - g.pw;
	padded pd = padded_layout(g.oh, g.ow, flip ? ah : 0, flip ? aw : 0, 1);
	float* q = scratch;                 // the padded input, for dw
	float* gq = q + p.s * p.phase;      // the padded input gradient (scatter) or output gradient (flip)
	float* tmp = gq + (flip ? pd.phase : p.s * p.phase);
	float* lanes = tmp + g.w + g.ow;
	float* flipped = lanes + kk * LANES;
	memset(q, 0, sizeof(float) * p.s * p.phase);
	memset(gq, 0, sizeof(float) * (flip ? pd.phase : p.s * p.phase));
	for (long ch = c0; ch < c1; ch++) {
		const float* wp = w + ch * kk;
		for (long k = 0; k < kk; k++) {
			flipped[k] = wp[kk - 1 - k];
		}
		double sums[kk];
		for (long k = 0; k < kk; k++) {
			sums[k] = 0;
		}
		for (long i = 0; i < n; i++) {
			long t = i * c + ch;
			const float* dyp = dy + t * g.oh * g.ow;
			if (dw != NULL) {
				memset(lanes, 0, sizeof(float) * kk * LANES);
				pad_plane(q, x + t * g.h * g.w, g.h, g.w, g.ph, g.pw, p);
				filter_plane(q, p, dyp, g.kh, g.kw, g.sh, g.dh, g.dw, g.oh, g.ow, lanes);
				for (long k = 0; k < kk; k++) {
					sums[k] += lanes_sum(lanes + k * LANES);
				}
			}
			if (dx == NULL) {
				continue;
			}
			float* dxp = dx + t * g.h * g.w;
			if (flip) {
				pad_plane(gq, dyp, g.oh, g.ow, ah, aw, pd);
				conv_plane(gq, pd, flipped, g.kh, g.kw, 1, g.dh, g.dw, dxp, g.h, g.w, 0.0f, acc_x, tmp);
			} else {
				memset(gq, 0, sizeof(float) * p.s * p.phase);
				scatter_plane(gq, p, dyp, wp, g.kh, g.kw, g.sh, g.dh, g.dw, g.oh, g.ow);
				unpad_plane(dxp, gq, g.h, g.w, g.ph, g.pw, p, acc_x);
			}
		}
		if (dw != NULL) {
			float* d = dw + ch * kk;
			for (long k = 0; k < kk; k++) {
				d[k] = acc_w ? d[k] + (float)sums[k] : (float)sums[k];
			}
		}
	}
}

// Activations fused into batch norm: op 0 is none, 1 ReLU, 2 clamp to
// [lo, hi] (ReLU6), as backend.UnaryReLU and UnaryClamp compute them.
INLINE float activate(int op, float z, float lo, float hi) {
	switch (op) {
	case 1:
		return z <= 0.0f ? 0.0f : z; // NaN stays NaN
	case 2:
		z = z <= lo ? lo : z;
		return z >= hi ? hi : z;
	}
	return z;
}

// pass_grad is dy where the activation passes the gradient at z, else 0:
// ReLU where z is not ≤ 0, clamp where lo ≤ z ≤ hi (NaN passes).
INLINE float pass_grad(int op, float z, float dy, float lo, float hi) {
	switch (op) {
	case 1:
		return z <= 0.0f ? 0.0f : dy;
	case 2:
		return z < lo || z > hi ? 0.0f : dy;
	}
	return dy;
}

INLINE void bn_plane(const float* restrict p, float* restrict q, long hw, float scale, float shift, int op, float lo, float hi) {
	switch (op) { // one loop per activation, each vectorised
	case 1:
		for (long j = 0; j < hw; j++) {
			q[j] = activate(1, p[j] * scale + shift, lo, hi);
		}
		return;
	case 2:
		for (long j = 0; j < hw; j++) {
			q[j] = activate(2, p[j] * scale + shift, lo, hi);
		}
		return;
	}
	for (long j = 0; j < hw; j++) {
		q[j] = p[j] * scale + shift;
	}
}

KERNEL void gd_bn_train(const float* x, float* y, const float* gamma, const float* beta,
                        long n, long c, long hw, long c0, long c1, float eps,
                        double* var, float* mean, float* invstd, int act, float lo, float hi) {
	double m = (double)(n * hw);
	for (long ch = c0; ch < c1; ch++) {
		// Shifting by one of the channel's values keeps E[(x−k)²] − E[x−k]²
		// free of cancellation; a non-finite one would turn the sums into
		// NaN where plain sums give ±Inf.
		float k = x[ch * hw];
		if (!isfinite(k)) {
			k = 0.0f;
		}
		double s1 = 0, s2 = 0;
		for (long i = 0; i < n; i++) {
			const float* restrict p = x + (i * c + ch) * hw;
			float a1[LANES] = {0}, a2[LANES] = {0};
			long j = 0;
			for (; j + LANES <= hw; j += LANES) {
				for (int l = 0; l < LANES; l++) {
					float d = p[j + l] - k;
					a1[l] += d;
					a2[l] += d * d;
				}
			}
			for (; j < hw; j++) {
				float d = p[j] - k;
				a1[j % LANES] += d;
				a2[j % LANES] += d * d;
			}
			s1 += lanes_sum(a1);
			s2 += lanes_sum(a2);
		}
		double shifted = s1 / m;
		double v = s2 / m - shifted * shifted;
		if (v < 0) {
			v = 0;
		}
		var[ch] = v;
		mean[ch] = (float)(k + shifted);
		invstd[ch] = (float)(1.0 / sqrt(v + (double)eps));
		float scale = gamma[ch] * invstd[ch];
		float shift = beta[ch] - mean[ch] * scale;
		for (long i = 0; i < n; i++) {
			bn_plane(x + (i * c + ch) * hw, y + (i * c + ch) * hw, hw, scale, shift, act, lo, hi);
		}
	}
}

KERNEL void gd_bn_apply(const float* x, float* y, const float* scale, const float* shift,
                        long t0, long t1, long c, long hw, int act, float lo, float hi) {
	for (long t = t0; t < t1; t++) {
		bn_plane(x + t * hw, y + t * hw, hw, scale[t % c], shift[t % c], act, lo, hi);
	}
}

// bn_sums adds Σ g and Σ g·(x − mu) of one plane, g the gradient reaching
// the normalised values (dy through the activation at z = x·scale + shift).
INLINE void bn_sums(const float* restrict p, const float* restrict dy, long hw, float mu, float scale, float shift,
                    int op, float lo, float hi, double* sg, double* sgx) {
	float a1[LANES] = {0}, a2[LANES] = {0};
	long j = 0;
	for (; j + LANES <= hw; j += LANES) {
		for (int l = 0; l < LANES; l++) {
			float g = pass_grad(op, p[j + l] * scale + shift, dy[j + l], lo, hi);
			a1[l] += g;
			a2[l] += g * (p[j + l] - mu);
		}
	}
	for (; j < hw; j++) {
		float g = pass_grad(op, p[j] * scale + shift, dy[j], lo, hi);
		a1[j % LANES] += g;
		a2[j % LANES] += g * (p[j] - mu);
	}
	*sg += lanes_sum(a1);
	*sgx += lanes_sum(a2);
}

// bn_dx writes (acc: adds) one plane's input gradient
// scale·(g − mean_g − x̂·mean_gx), x̂ = (x − mu)·is.
INLINE void bn_dx(const float* restrict p, const float* restrict dy, float* restrict d, long hw, float mu, float is,
                  float scale, float shift, float mean_g, float mean_gx, int op, float lo, float hi, int acc) {
	if (acc) {
		for (long j = 0; j < hw; j++) {
			float g = pass_grad(op, p[j] * scale + shift, dy[j], lo, hi);
			d[j] += scale * (g - mean_g - ((p[j] - mu) * is) * mean_gx);
		}
		return;
	}
	for (long j = 0; j < hw; j++) {
		float g = pass_grad(op, p[j] * scale + shift, dy[j], lo, hi);
		d[j] = scale * (g - mean_g - ((p[j] - mu) * is) * mean_gx);
	}
}

KERNEL void gd_bn_backward(const float* x, const float* dy, float* dx, int acc,
                           const float* gamma, const float* beta, const float* mean, const float* invstd,
                           long n, long c, long hw, long c0, long c1, int training,
                           double* sum_g, double* sum_gx, int act, float lo, float hi) {
	double m = (double)(n * hw);
	for (long ch = c0; ch < c1; ch++) {
		float mu = mean[ch], is = invstd[ch];
		float scale = gamma[ch] * is; // as the forward pass computed them
		float shift = act ? beta[ch] - mu * scale : 0.0f;
		double sg = 0, sgx = 0;
		for (long i = 0; i < n; i++) {
			long off = (i * c + ch) * hw;
			switch (act) { // one loop per activation, each vectorised
			case 1:
				bn_sums(x + off, dy + off, hw, mu, scale, shift, 1, lo, hi, &sg, &sgx);
				break;
			case 2:
				bn_sums(x + off, dy + off, hw, mu, scale, shift, 2, lo, hi, &sg, &sgx);
				break;
			default:
				bn_sums(x + off, dy + off, hw, mu, scale, shift, 0, lo, hi, &sg, &sgx);
			}
		}
		sgx *= is;
		sum_g[ch] = sg;
		sum_gx[ch] = sgx;
		if (dx == NULL) {
			continue;
		}
		float mean_g = training ? (float)(sg / m) : 0.0f;
		float mean_gx = training ? (float)(sgx / m) : 0.0f;
		for (long i = 0; i < n; i++) {
			long off = (i * c + ch) * hw;
			switch (act) {
			case 1:
				bn_dx(x + off, dy + off, dx + off, hw, mu, is, scale, shift, mean_g, mean_gx, 1, lo, hi, acc);
				break;
			case 2:
				bn_dx(x + off, dy + off, dx + off, hw, mu, is, scale, shift, mean_g, mean_gx, 2, lo, hi, acc);
				break;
			default:
				bn_dx(x + off, dy + off, dx + off, hw, mu, is, scale, shift, mean_g, mean_gx, 0, lo, hi, acc);
			}
		}
	}
}

KERNEL void gd_relu(float* y, const float* x, long n) {
	for (long i = 0; i < n; i++) {
		float v = x[i];
		y[i] = v <= 0.0f ? 0.0f : v; // NaN stays NaN
	}
}

KERNEL void gd_clamp(float* y, const float* x, long n, float lo, float hi) {
	for (long i = 0; i < n; i++) {
		float v = x[i];
		v = v <= lo ? lo : v;
		y[i] = v >= hi ? hi : v; // NaN stays NaN
	}
}

KERNEL void gd_relu_grad(float* dx, const float* dy, const float* y, long n, int acc) {
	if (acc) {
		for (long i = 0; i < n; i++) {
			dx[i] += y[i] <= 0.0f ? 0.0f : dy[i];
		}
		return;
	}
	for (long i = 0; i < n; i++) {
		dx[i] = y[i] <= 0.0f ? 0.0f : dy[i];
	}
}

KERNEL void gd_clamp_grad(float* dx, const float* dy, const float* x, long n, float lo, float hi, int acc) {
	if (acc) {
		for (long i = 0; i < n; i++) {
			dx[i] += x[i] < lo || x[i] > hi ? 0.0f : dy[i];
		}
		return;
	}
	for (long i = 0; i < n; i++) {
		dx[i] = x[i] < lo || x[i] > hi ? 0.0f : dy[i];
	}
}

// Winograd F(2×2, 3×3): each 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
// for its 4×4 input tile d, with
//
//	Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//	G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//	Aᵀ = [1 1 1 0; 0 1 −1 −1]
//
// so a 3×3 convolution costs 16 multiplications per tile and channel pair
// instead of 36; the sums over input channels are 16 GEMMs (winograd.go).
// The transforms only add and subtract (and halve, exactly), so a NaN
// stays within the outputs whose window holds it.

// Tiles are numbered ty·(tw + 1) + tx: every tile row carries one spare
// tile, so each transform is one flat loop over the plane's tiles (the
// spare tile's values are computed and never used).

// The padded input plane is kept as four sub-planes by row and column
// parity, each (th + 1) × (tw + 1) plus one spare value: padded position
// (py, pc) is sub-plane (py & 1, pc & 1) at (py >> 1, pc >> 1).
long gd_wino_input_scratch(long th, long tw) { return 4 * ((th + 1) * (tw + 1) + 1); }

KERNEL void gd_wino_weights(const float* w, float* u, long outc, long inc, int flip, long o0, long o1) {
	long plane = outc * inc;
	// One output channel's 16 rows are gathered here and copied out row
	// by row: the rows are outc·inc apart in u, often a multiple of 4 KiB,
	// and sixteen interleaved store streams that far apart thrash a cache
	// set.
	float rows[16][inc];
	for (long o = o0; o < o1; o++) {
		for (long i = 0; i < inc; i++) {
			float g[9];
			if (flip) {
				const float* s = w + (i * outc + o) * 9;
				for (int k = 0; k < 9; k++) {
					g[k] = s[8 - k];
				}
			} else {
				memcpy(g, w + (o * inc + i) * 9, sizeof(g));
			}
			float a[4][3]; // G g
			for (int c = 0; c < 3; c++) {
				a[0][c] = g[c];
				a[1][c] = (g[c] + g[3 + c] + g[6 + c]) * 0.5f;
				a[2][c] = (g[c] - g[3 + c] + g[6 + c]) * 0.5f;
				a[3][c] = g[6 + c];
			}
			float t[16]; // (G g) Gᵀ
			for (int r = 0; r < 4; r++) {
				t[4 * r + 0] = a[r][0];
				t[4 * r + 1] = (a[r][0] + a[r][1] + a[r][2]) * 0.5f;
				t[4 * r + 2] = (a[r][0] - a[r][1] + a[r][2]) * 0.5f;
				t[4 * r + 3] = a[r][2];
			}
			for (int k = 0; k < 16; k++) {
				rows[k][i] = t[k];
			}
		}
		for (int k = 0; k < 16; k++) {
			memcpy(u + k * plane + o * inc, rows[k], sizeof(float) * inc);
		}
	}
}

// wino_tiles transforms n tiles of one plane's parity sub-planes (rows
// ty and ty + 1 are w1 apart) into the sixteen output rows: Bᵀ d over the
// rows, then over the columns. Separate restrict parameters let the
// compiler vectorise over the tiles.
INLINE void wino_tiles(const float* restrict ee, const float* restrict eo, const float* restrict oe,
                       const float* restrict oo, long n, long w1,
                       float* restrict y0, float* restrict y1, float* restrict y2, float* restrict y3,
                       float* restrict y4, float* restrict y5, float* restrict y6, float* restrict y7,
                       float* restrict y8, float* restrict y9, float* restrict y10, float* restrict y11,
                       float* restrict y12, float* restrict y13, float* restrict y14, float* restrict y15) {
	for (long f = 0; f < n; f++) {
		// d[r][c]: rows 0 and 2 are the even sub-planes at rows ty, ty + 1,
		// rows 1 and 3 the odd ones; columns 0 and 2 the even sub-planes at
		// tx, tx + 1, columns 1 and 3 the odd ones.
		float d00 = ee[f], d02 = ee[f + 1], d20 = ee[f + w1], d22 = ee[f + w1 + 1];
		float d01 = eo[f], d03 = eo[f + 1], d21 = eo[f + w1], d23 = eo[f + w1 + 1];
		float d10 = oe[f], d12 = oe[f + 1], d30 = oe[f + w1], d32 = oe[f + w1 + 1];
		float d11 = oo[f], d13 = oo[f + 1], d31 = oo[f + w1], d33 = oo[f + w1 + 1];
		// Bᵀ d: rows d0 − d2, d1 + d2, d2 − d1, d1 − d3
		float a0 = d00 - d20, a1 = d01 - d21, a2 = d02 - d22, a3 = d03 - d23;
		float b0 = d10 + d20, b1 = d11 + d21, b2 = d12 + d22, b3 = d13 + d23;
		float c0 = d20 - d10, c1 = d21 - d11, c2 = d22 - d12, c3 = d23 - d13;
		float e0 = d10 - d30, e1 = d11 - d31, e2 = d12 - d32, e3 = d13 - d33;
		// (Bᵀ d) B: columns c0 − c2, c1 + c2, c2 − c1, c1 − c3
		y0[f] = a0 - a2;
		y1[f] = a1 + a2;
		y2[f] = a2 - a1;
		y3[f] = a1 - a3;
		y4[f] = b0 - b2;
		y5[f] = b1 + b2;
		y6[f] = b2 - b1;
		y7[f] = b1 - b3;
		y8[f] = c0 - c2;
		y9[f] = c1 + c2;
		y10[f] = c2 - c1;
		y11[f] = c1 - c3;
		y12[f] = e0 - e2;
		y13[f] = e1 + e2;
		y14[f] = e2 - e1;
		y15[f] = e1 - e3;
	}
}

KERNEL void gd_wino_input(const float* x, float* v, long inc, long h, long w, long ph, long pw,
                          long th, long tw, long t_count, long t0, float* scratch) {
	long w1 = tw + 1, sub = (th + 1) * w1 + 1, n = th * w1;
	float* ee = scratch;      // even rows, even columns
	float* eo = ee + sub;     // even rows, odd columns
	float* oe = eo + sub;     // odd rows, even columns
	float* oo = oe + sub;     // odd rows, odd columns
	long stride = inc * t_count;
	for (long ci = 0; ci < inc; ci++) {
		const float* src = x + ci * h * w;
		for (long iy = 0; iy < h; iy++) {
			const float* restrict s = src + iy * w;
			long py = iy + ph;
			float* ev = (py & 1 ? oe : ee) + (py >> 1) * w1;
			float* od = (py & 1 ? oo : eo) + (py >> 1) * w1;
			// image column 2k + e is padded column 2k + e + pw
			split_even_odd((pw & 1 ? od : ev) + (pw >> 1), (pw & 1 ? ev : od) + ((pw + 1) >> 1), s, w);
		}
		// Tile (ty, tx) reads padded rows 2ty..2ty+3 and columns 2tx..2tx+3:
		// sub-plane rows ty and ty + 1, columns tx and tx + 1. Rows first
		// (Bᵀ d), then columns ((Bᵀ d) B), in one pass over the tiles.
		float* d = v + ci * t_count + t0;
		wino_tiles(ee, eo, oe, oo, n, w1, d, d + stride, d + 2 * stride, d + 3 * stride, d + 4 * stride, d + 5 * stride,
		           d + 6 * stride, d + 7 * stride, d + 8 * stride, d + 9 * stride, d + 10 * stride, d + 11 * stride,
		           d + 12 * stride, d + 13 * stride, d + 14 * stride, d + 15 * stride);
	}
}

// store_pairs writes (acc: adds) row values a (even columns) and b (odd
// columns) into y [ow].
INLINE void store_pairs(float* restrict y, const float* restrict a, const float* restrict b, long ow, int acc) {
	long pairs = ow / 2;
	if (acc) {
		for (long tx = 0; tx < pairs; tx++) {
			y[2 * tx] += a[tx];
			y[2 * tx + 1] += b[tx];
		}
		if (ow & 1) {
			y[ow - 1] += a[pairs];
		}
		return;
	}
	for (long tx = 0; tx < pairs; tx++) {
		y[2 * tx] = a[tx];
		y[2 * tx + 1] = b[tx];
	}
	if (ow & 1) {
		y[ow - 1] = a[pairs];
	}
}

KERNEL void gd_wino_output(const float* m, float* y, const float* bias, long outc, long oh, long ow,
                           long th, long tw, long t_count, long t0, int acc) {
	long stride = outc * t_count;
	long w1 = tw + 1, n = th * w1;
	float out[4][n];
	for (long co = 0; co < outc; co++) {
		float b = bias != NULL ? bias[co] : 0.0f;
		const float* restrict m0 = m + co * t_count + t0;
		float* restrict a00 = out[0];
		float* restrict a01 = out[1];
		float* restrict a10 = out[2];
		float* restrict a11 = out[3];
		for (long f = 0; f < n; f++) { // Aᵀ M A
#define M(k) m0[(k) * stride + f]
			float z00 = M(0) + M(1) + M(2), z01 = M(1) - M(2) - M(3);
			float z10 = M(4) + M(5) + M(6), z11 = M(5) - M(6) - M(7);
			float z20 = M(8) + M(9) + M(10), z21 = M(9) - M(10) - M(11);
			float z30 = M(12) + M(13) + M(14), z31 = M(13) - M(14) - M(15);
#undef M
			a00[f] = z00 + z10 + z20 + b;
			a01[f] = z01 + z11 + z21 + b;
			a10[f] = z10 - z20 - z30 + b;
			a11[f] = z11 - z21 - z31 + b;
		}
		float* plane = y + co * oh * ow;
		for (long ty = 0; ty < th; ty++) {
			store_pairs(plane + 2 * ty * ow, a00 + ty * w1, a01 + ty * w1, ow, acc);
			if (2 * ty + 1 < oh) {
				store_pairs(plane + (2 * ty + 1) * ow, a10 + ty * w1, a11 + ty * w1, ow, acc);
			}
		}
	}
}

// The weight gradient in the Winograd domain: with M = U ⊙ V summed over
// input channels and Y = Aᵀ M A, ∂L/∂M = A (∂L/∂Y) Aᵀ per tile, ∂L/∂U is
// the sum over tiles of ∂L/∂M ⊙ V (16 GEMMs, winograd.go), and
// ∂L/∂g = Gᵀ (∂L/∂U) G.

// The output gradient is kept as four parity sub-planes of th × (tw + 1):
// output position (y, x) is sub-plane (y & 1, x & 1) at (y >> 1, x >> 1),
// zero beyond the output.
long gd_wino_grad_scratch(long th, long tw) { return 4 * th * (tw + 1); }

INLINE void wino_grad_tiles(const float* restrict ee, const float* restrict eo, const float* restrict oe,
                            const float* restrict oo, long n,
                            float* restrict y0, float* restrict y1, float* restrict y2, float* restrict y3,
                            float* restrict y4, float* restrict y5, float* restrict y6, float* restrict y7,
                            float* restrict y8, float* restrict y9, float* restrict y10, float* restrict y11,
                            float* restrict y12, float* restrict y13, float* restrict y14, float* restrict y15) {
	for (long f = 0; f < n; f++) {
		float g00 = ee[f], g01 = eo[f], g10 = oe[f], g11 = oo[f];
		// A g: rows g0, g0 + g1, g0 − g1, −g1 (A = [1 0; 1 1; 1 −1; 0 −1])
		float r00 = g00, r01 = g01;
		float r10 = g00 + g10, r11 = g01 + g11;
		float r20 = g00 - g10, r21 = g01 - g11;
		float r30 = -g10, r31 = -g11;
		// (A g) Aᵀ: columns c0, c0 + c1, c0 − c1, −c1
		y0[f] = r00;
		y1[f] = r00 + r01;
		y2[f] = r00 - r01;
		y3[f] = -r01;
		y4[f] = r10;
		y5[f] = r10 + r11;
		y6[f] = r10 - r11;
		y7[f] = -r11;
		y8[f] = r20;
		y9[f] = r20 + r21;
		y10[f] = r20 - r21;
		y11[f] = -r21;
		y12[f] = r30;
		y13[f] = r30 + r31;
		y14[f] = r30 - r31;
		y15[f] = -r31;
	}
}

KERNEL void gd_wino_grad_output(const float* dy, float* dm, long outc, long oh, long ow,
                                long th, long tw, long t_count, long t0, float* scratch) {
	long w1 = tw + 1, n = th * w1;
	float* ee = scratch;
	float* eo = ee + n;
	float* oe = eo + n;
	float* oo = oe + n;
	long stride = outc * t_count;
	for (long co = 0; co < outc; co++) {
		const float* src = dy + co * oh * ow;
		for (long y = 0; y < oh; y++) {
			const float* restrict s = src + y * ow;
			split_even_odd((y & 1 ? oe : ee) + (y >> 1) * w1, (y & 1 ? oo : eo) + (y >> 1) * w1, s, ow);
		}
		float* d = dm + co * t_count + t0;
		wino_grad_tiles(ee, eo, oe, oo, n, d, d + stride, d + 2 * stride, d + 3 * stride, d + 4 * stride, d + 5 * stride,
		                d + 6 * stride, d + 7 * stride, d + 8 * stride, d + 9 * stride, d + 10 * stride, d + 11 * stride,
		                d + 12 * stride, d + 13 * stride, d + 14 * stride, d + 15 * stride);
	}
}

KERNEL void gd_wino_filter_grad(const float* du, float* dw, long outc, long inc, int acc, long o0, long o1) {
	long plane = outc * inc;
	float rows[16][inc]; // one output channel's rows, read row by row (see gd_wino_weights)
	for (long o = o0; o < o1; o++) {
		for (int k = 0; k < 16; k++) {
			memcpy(rows[k], du + k * plane + o * inc, sizeof(float) * inc);
		}
		for (long i = 0; i < inc; i++) {
			float t[4][4];
			for (int k = 0; k < 16; k++) {
				t[k / 4][k % 4] = rows[k][i];
			}
			// Gᵀ t: rows t0 + ½t1 + ½t2, ½t1 − ½t2, ½t1 + ½t2 + t3
			float a[3][4];
			for (int c = 0; c < 4; c++) {
				float h1 = 0.5f * t[1][c], h2 = 0.5f * t[2][c];
				a[0][c] = t[0][c] + h1 + h2;
				a[1][c] = h1 - h2;
				a[2][c] = h1 + h2 + t[3][c];
			}
			float* d = dw + (o * inc + i) * 9;
			for (int r = 0; r < 3; r++) { // (Gᵀ t) G over columns
				float h1 = 0.5f * a[r][1], h2 = 0.5f * a[r][2];
				float g0 = a[r][0] + h1 + h2, g1 = h1 - h2, g2 = h1 + h2 + a[r][3];
				if (acc) {
					d[3 * r] += g0;
					d[3 * r + 1] += g1;
					d[3 * r + 2] += g2;
				} else {
					d[3 * r] = g0;
					d[3 * r + 1] = g1;
					d[3 * r + 2] = g2;
				}
			}
		}
	}
}

KERNEL double gd_sum(const float* x, long n, int square) {
	double total = 0;
	for (long b = 0; b < n; b += 1024) {
		long e = b + 1024 < n ? b + 1024 : n;
		float l[LANES] = {0};
		long i = b;
		if (square) {
			for (; i + LANES <= e; i += LANES) {
				for (int k = 0; k < LANES; k++) {
					l[k] += x[i + k] * x[i + k];
				}
			}
			for (; i < e; i++) {
				l[i % LANES] += x[i] * x[i];
			}
		} else {
			for (; i + LANES <= e; i += LANES) {
				for (int k = 0; k < LANES; k++) {
					l[k] += x[i + k];
				}
			}
			for (; i < e; i++) {
				l[i % LANES] += x[i];
			}
		}
		total += lanes_sum(l);
	}
	return total;
}

KERNEL void gd_scale(float* y, const float* x, long n, float alpha, int acc) {
	if (acc) {
		for (long i = 0; i < n; i++) {
			y[i] += alpha * x[i];
		}
		return;
	}
	for (long i = 0; i < n; i++) {
		y[i] = alpha * x[i];
	}
}

KERNEL void gd_colsum(const float* src, float* dst, long size, long inner, long c0, long c1, float alpha, int acc, int square) {
	float row[1024];
	for (long b = c0; b < c1; b += 1024) {
		long n = c1 - b < 1024 ? c1 - b : 1024;
		for (long j = 0; j < n; j++) {
			row[j] = 0.0f;
		}
		for (long s = 0; s < size; s++) {
			const float* restrict in = src + s * inner + b;
			if (square) {
				for (long j = 0; j < n; j++) {
					row[j] += in[j] * in[j];
				}
			} else {
				for (long j = 0; j < n; j++) {
					row[j] += in[j];
				}
			}
		}
		float* restrict out = dst + b;
		for (long j = 0; j < n; j++) {
			out[j] = acc ? out[j] + alpha * row[j] : alpha * row[j];
		}
	}
}

// im2col_range gives the output columns [lo, hi) whose input column
// ox·s + off lies in [0, w).
INLINE void im2col_range(long ow, long s, long off, long w, long* lo, long* hi) {
	long l = 0, h = ow;
	if (off < 0) {
		l = (-off + s - 1) / s;
	}
	long last = w - 1 - off;
	if (last < 0) {
		h = 0;
	} else if (last / s + 1 < h) {
		h = last / s + 1;
	}
	*lo = l < h ? l : h;
	*hi = h;
}

KERNEL void gd_im2col(const float* image, float* col, long ld, long channels, gd_geom g) {
	long row = 0;
	for (long c = 0; c < channels; c++) {
		const float* plane = image + c * g.h * g.w;
		for (long ky = 0; ky < g.kh; ky++) {
			long offy = ky * g.dh - g.ph;
			for (long kx = 0; kx < g.kw; kx++, row++) {
				float* dst = col + row * ld;
				long offx = kx * g.dw - g.pw, lo, hi;
				im2col_range(g.ow, g.sw, offx, g.w, &lo, &hi);
				for (long oy = 0; oy < g.oh; oy++) {
					float* restrict d = dst + oy * g.ow;
					long iy = oy * g.sh + offy;
					if (iy < 0 || iy >= g.h) {
						memset(d, 0, sizeof(float) * g.ow);
						continue;
					}
					for (long ox = 0; ox < lo; ox++) {
						d[ox] = 0.0f;
					}
					for (long ox = hi; ox < g.ow; ox++) {
						d[ox] = 0.0f;
					}
					const float* restrict s = plane + iy * g.w + offx;
					switch (g.sw) {
					case 1:
						if (hi > lo) {
							memcpy(d + lo, s + lo, sizeof(float) * (hi - lo));
						}
						break;
					case 2:
						for (long ox = lo; ox < hi; ox++) {
							d[ox] = s[2 * ox];
						}
						break;
					default:
						for (long ox = lo; ox < hi; ox++) {
							d[ox] = s[ox * g.sw];
						}
					}
				}
			}
		}
	}
}

KERNEL void gd_col2im(const float* col, float* image, long ld, long channels, gd_geom g) {
	long row = 0;
	for (long c = 0; c < channels; c++) {
		float* plane = image + c * g.h * g.w;
		for (long ky = 0; ky < g.kh; ky++) {
			long offy = ky * g.dh - g.ph;
			for (long kx = 0; kx < g.kw; kx++, row++) {
				const float* src = col + row * ld;
				long offx = kx * g.dw - g.pw, lo, hi;
				im2col_range(g.ow, g.sw, offx, g.w, &lo, &hi);
				if (lo >= hi) {
					continue;
				}
				for (long oy = 0; oy < g.oh; oy++) {
					long iy = oy * g.sh + offy;
					if (iy < 0 || iy >= g.h) {
						continue;
					}
					const float* restrict s = src + oy * g.ow;
					float* restrict d = plane + iy * g.w + offx;
					switch (g.sw) {
					case 1:
						for (long ox = lo; ox < hi; ox++) {
							d[ox] += s[ox];
						}
						break;
					case 2:
						for (long ox = lo; ox < hi; ox++) {
							d[2 * ox] += s[ox];
						}
						break;
					default:
						for (long ox = lo; ox < hi; ox++) {
							d[ox * g.sw] += s[ox];
						}
					}
				}
			}
		}
	}
}
