/* Op codes and geometry structs shared by the kernels (.cu), the host
 * emulation (package emu, through cgo) and the Go launch helpers, which
 * mirror them in types.go; TestTypesMatchC checks the two agree.
 * Plain C: every struct is int32 and float32 fields only, so Go packs them
 * as little-endian 4-byte words in field order. */
#ifndef GIDEDGE_KERNEL_TYPES_H
#define GIDEDGE_KERNEL_TYPES_H

/* Threads per block of every kernel with a shared-memory tree reduction. */
#define GD_BLOCK 256
/* Highest tensor rank the strided kernels address. */
#define GD_MAX_RANK 8

/* gidedge_unary / gidedge_unary_backward: y = f(x; a, b). */
#define GD_UNARY_AFFINE 0     /* a·x + b (AddScalar, MulScalar, Neg) */
#define GD_UNARY_EXP 1
#define GD_UNARY_LOG 2
#define GD_UNARY_SQRT 3
#define GD_UNARY_ABS 4        /* derivative 0 at 0 */
#define GD_UNARY_RELU 5
#define GD_UNARY_LEAKY_RELU 6 /* a = slope */
#define GD_UNARY_SIGMOID 7
#define GD_UNARY_SILU 8
#define GD_UNARY_HARDSWISH 9
#define GD_UNARY_TANH 10
#define GD_UNARY_POW 11       /* a = exponent */
#define GD_UNARY_CLAMP 12     /* a = lo, b = hi; gradient 0 outside */
#define GD_UNARY_COUNT 13

/* gidedge_binary: y = a op b with broadcasting. */
#define GD_BINARY_ADD 0
#define GD_BINARY_SUB 1
#define GD_BINARY_MUL 2
#define GD_BINARY_DIV 3
#define GD_BINARY_MAX 4
#define GD_BINARY_MIN 5
#define GD_BINARY_COUNT 6

/* gidedge_reduce / gidedge_reduce_small. */
#define GD_REDUCE_SUM 0
#define GD_REDUCE_MAX 1 /* also writes the arg-max when arg is not null */
#define GD_REDUCE_SUMSQ 2
#define GD_REDUCE_COUNT 3

/* gidedge_pair_loss / gidedge_pair_loss_backward: elementwise f(a, b). */
#define GD_LOSS_BCE_LOGITS 0 /* a = logits, b = targets in [0, 1] */
#define GD_LOSS_L1 1
#define GD_LOSS_SMOOTH_L1 2  /* param = beta */
#define GD_LOSS_MSE 3
#define GD_LOSS_COUNT 4

/* An index space of up to GD_MAX_RANK dimensions (row-major over shape)
 * and the element strides of up to three operands over it. Offsets may be
 * zero (broadcast) and operands may start anywhere (pointer offsets). */
typedef struct {
	int rank; /* 1..GD_MAX_RANK */
	int n;    /* product of shape[0:rank] */
	int shape[GD_MAX_RANK];
	int stride[3][GD_MAX_RANK];
} gd_layout;

/* A reduction: outputs are numbered row-major over the kept dimensions and
 * written contiguously; each reduces nred inputs numbered row-major over the
 * reduced dimensions. Input offset = Σ keep coordinate·keep_stride +
 * Σ reduced coordinate·red_stride. */
typedef struct {
	int keep_rank, red_rank; /* 0..GD_MAX_RANK each */
	int nkeep, nred;
	int keep_shape[GD_MAX_RANK], keep_stride[GD_MAX_RANK];
	int red_shape[GD_MAX_RANK], red_stride[GD_MAX_RANK];
} gd_reduce;

/* One 2-D convolution (or im2col) over n images of c channels each.
 * image_stride is the distance between images in elements (c·h·w unless a
 * group's channels are addressed inside a larger tensor). */
typedef struct {
	int n, c, h, w;
	int kh, kw, sh, sw, ph, pw, dh, dw;
	int oh, ow;
	int image_stride;
} gd_conv;

/* Max/avg pooling over planes independent h×w planes. */
typedef struct {
	int planes, h, w;
	int kh, kw, sh, sw, ph, pw;
	int oh, ow;
} gd_pool;

/* ROIAlign over x [n, c, h, w] into [rois, c, oh, ow]; each roi is 5 floats
 * (batch index, x1, y1, x2, y2) in input pixels (torchvision roi_align). */
typedef struct {
	int n, c, h, w;
	int rois, oh, ow;
	int sampling; /* samples per bin along each axis; <= 0: adaptive */
	int aligned;  /* 1: half-pixel offset (aligned=True) */
	float scale;  /* spatial scale */
} gd_roi;

#endif
