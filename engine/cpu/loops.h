// Memory-bound kernels of the CPU backend (loops.c): depthwise
// convolution, batch norm and activations, written as plain C loops that
// the C compiler vectorises. Go validates every argument and splits the
// work; each function handles one contiguous share (planes or channels).
#ifndef GIDEDGE_LOOPS_H
#define GIDEDGE_LOOPS_H

// gd_geom is one image plane's convolution geometry (backend.ConvGeometry
// without batch and channel counts).
typedef struct {
	long h, w, oh, ow;
	long kh, kw;
	long sh, sw;
	long ph, pw;
	long dh, dw;
} gd_geom;

// Scratch floats the depthwise kernels need per call.
long gd_dw_scratch(gd_geom g);

// Depthwise forward for planes [t0, t1) of N×C: y = conv(x, w) + bias
// (bias may be NULL); plane t is channel t % c.
void gd_dw_forward(const float* x, const float* w, const float* bias, float* y,
                   long t0, long t1, long c, gd_geom g, float* scratch);

// Depthwise backward for channels [c0, c1) over n images: the input
// gradient dx (NULL: not wanted; acc_x: add instead of overwrite) and the
// weight gradient dw (NULL: not wanted; acc_w: add).
void gd_dw_backward(const float* x, const float* w, const float* dy,
                    float* dx, int acc_x, float* dw, int acc_w,
                    long c0, long c1, long n, long c, gd_geom g, float* scratch);

// Batch norm in training, channels [c0, c1) of x [n, c, hw]: per channel
// the mean and biased variance (float lanes per plane, double across
// planes, shifted by the channel's first value against cancellation), the
// float mean and 1/sqrt(var + eps) the backward pass uses, then
// y = act(x·scale + shift) with scale = gamma·invstd, shift = beta − mean·scale,
// while the channel is still in cache. act: 0 none, 1 ReLU, 2 clamp to
// [lo, hi].
void gd_bn_train(const float* x, float* y, const float* gamma, const float* beta,
                 long n, long c, long hw, long c0, long c1, float eps,
                 double* var, float* mean, float* invstd, int act, float lo, float hi);

// y = act(x·scale[ch] + shift[ch]) for planes [t0, t1) of [n, c, hw].
void gd_bn_apply(const float* x, float* y, const float* scale, const float* shift,
                 long t0, long t1, long c, long hw, int act, float lo, float hi);

// Batch-norm backward of channels [c0, c1): with g = dy passed through the
// activation's derivative at z = x·scale + shift (recomputed as the
// forward pass made it; beta is read only with act), sum_g = Σ g and
// sum_gx = Σ g·(x − mean)·invstd per channel; then, when dx is not NULL,
// the input gradient (acc: added): in training
// gamma·invstd·(g − mean(g) − x̂·mean(g·x̂)), in eval g·gamma·invstd.
void gd_bn_backward(const float* x, const float* dy, float* dx, int acc,
                    const float* gamma, const float* beta, const float* mean, const float* invstd,
                    long n, long c, long hw, long c0, long c1, int training,
                    double* sum_g, double* sum_gx, int act, float lo, float hi);

// Activations over n elements; y may be x.
void gd_relu(float* y, const float* x, long n);
void gd_clamp(float* y, const float* x, long n, float lo, float hi);
// Their gradients: ReLU passes dy where y is not ≤ 0, clamp where
// lo ≤ x ≤ hi (NaN passes); dx may be dy.
void gd_relu_grad(float* dx, const float* dy, const float* y, long n, int acc);
void gd_clamp_grad(float* dx, const float* dy, const float* x, long n, float lo, float hi, int acc);

#endif

// Winograd F(2×2, 3×3) transforms (winograd.go): the filters of outc×inc
// 3×3 kernels, output channels [o0, o1), into u [16][outc][inc] (flip: w
// is a forward weight [inc][outc][3][3] and the filters are its flipped
// transposes, for the input gradient); an image [inc][h][w] into tiles
// v [16][inc][t_count] from tile t0 on, th·(tw + 1) tiles per image
// (scratch: gd_wino_input_scratch floats, zeroed once per call); and the
// tile products m [16][outc][t_count] back into an image [outc][oh][ow]
// (+ bias; acc: added).
long gd_wino_input_scratch(long th, long tw);
void gd_wino_weights(const float* w, float* u, long outc, long inc, int flip, long o0, long o1);
void gd_wino_input(const float* x, float* v, long inc, long h, long w, long ph, long pw,
                   long th, long tw, long t_count, long t0, float* scratch);
void gd_wino_output(const float* m, float* y, const float* bias, long outc, long oh, long ow,
                    long th, long tw, long t_count, long t0, int acc);

// Winograd weight gradient: the output gradient of an image [outc][oh][ow]
// into tiles dm [16][outc][t_count] from tile t0 on (A dY Aᵀ; scratch:
// gd_wino_grad_scratch floats, zeroed once per call), and the summed tile
// products du [16][outc][inc] back into filter gradients dw [outc][inc][3][3]
// (Gᵀ dU G) for output channels [o0, o1) (acc: added).
long gd_wino_grad_scratch(long th, long tw);
void gd_wino_grad_output(const float* dy, float* dm, long outc, long oh, long ow,
                         long th, long tw, long t_count, long t0, float* scratch);
void gd_wino_filter_grad(const float* du, float* dw, long outc, long inc, int acc, long o0, long o1);

// Reductions (reduce.go): the sum (square: of squares) of x [n] in double,
// from float lanes over blocks of 1024 values; y (+)= alpha·x over n
// values; and column sums dst[j] (+)= alpha·Σ_s src[s·inner + j] over size
// rows for columns [c0, c1) (square: of squares), in float per column.
double gd_sum(const float* x, long n, int square);
void gd_scale(float* y, const float* x, long n, float alpha, int acc);
void gd_colsum(const float* src, float* dst, long size, long inner, long c0, long c1, float alpha, int acc, int square);

// im2col: the patch matrix of an image group [channels][h][w] into col,
// rows (c, ky, kx) ld floats apart, oh·ow columns each (zeros where a tap
// falls in the padding); col2im adds such a matrix back into the image
// (the adjoint).
void gd_im2col(const float* image, float* col, long ld, long channels, gd_geom g);
void gd_col2im(const float* col, float* image, long ld, long channels, gd_geom g);
