package backend

// This file holds the argument structs of every kernel family. Shapes are
// given as counts in the struct; buffers hold exactly (at least) the
// elements the shapes describe.

// CopyArgs copies Src into Dst element by element over Shape, or adds it
// with Accumulate. Src strides may be zero (a broadcast source); Dst
// strides must address distinct elements. Permutations, slices,
// concatenation and broadcasting adds are all one Copy.
type CopyArgs struct {
	Shape      []int
	Dst, Src   View
	Accumulate bool
}

// GatherArgs describes Gather and ScatterAdd on a tensor viewed as
// [Outer, Size, Inner] indexed along its middle axis by Index (Int32,
// Count values in [0, Size)); the other side is [Outer, Count, Inner].
//
//	Gather:     Dst[o, j, k] (+)= Src[o, Index[j], k]   Src [Outer, Size, Inner]
//	ScatterAdd: Dst[o, Index[j], k] (+)= Src[o, j, k]    Src [Outer, Count, Inner]
//
// Indices may repeat: ScatterAdd adds every contribution (in increasing j
// on the reference backend). Without Dst.Accumulate, ScatterAdd starts
// from zeros. Outer = Inner = 1 gives flat element gathers and scatters.
type GatherArgs struct {
	Outer, Size, Inner int
	Count              int
	Index              Buffer
	Src                Buffer
	Dst                Dest
}

// UnaryOp names a pointwise function y = f(x) with parameters Alpha and
// Beta where the op says so.
type UnaryOp uint8

// Pointwise functions. The gradient at a kink is the one given.
const (
	// UnaryScale is Alpha·x + Beta (AddScalar, MulScalar, Neg, copies).
	UnaryScale UnaryOp = iota + 1
	// UnaryExp is eˣ.
	UnaryExp
	// UnaryLog is ln x.
	UnaryLog
	// UnarySqrt is √x.
	UnarySqrt
	// UnaryAbs is |x|; its derivative at 0 is 0.
	UnaryAbs
	// UnaryPow is x^Alpha.
	UnaryPow
	// UnaryClamp limits x to [Alpha, Beta]; the derivative is 1 inside
	// the closed range and 0 outside.
	UnaryClamp
	// UnaryReLU is x for x > 0, else 0; NaN stays NaN. The derivative is
	// 0 where y ≤ 0 and 1 elsewhere (NaN passes the gradient, as PyTorch's
	// threshold_backward).
	UnaryReLU
	// UnaryLeakyReLU is x for x > 0, else Alpha·x.
	UnaryLeakyReLU
	// UnarySigmoid is 1/(1+e⁻ˣ), computed without overflow.
	UnarySigmoid
	// UnarySiLU is x·sigmoid(x).
	UnarySiLU
	// UnaryHardSwish is x·relu6(x+3)/6.
	UnaryHardSwish
	// UnaryTanh is the hyperbolic tangent.
	UnaryTanh
)

var unaryNames = [...]string{"", "Scale", "Exp", "Log", "Sqrt", "Abs", "Pow", "Clamp", "ReLU", "LeakyReLU", "Sigmoid", "SiLU", "HardSwish", "Tanh"}

func (o UnaryOp) String() string {
	if int(o) < len(unaryNames) && o > 0 {
		return unaryNames[o]
	}
	return "UnaryOp?"
}

// UnaryArgs computes Y[i] = f(X[i]) for i < N. Y may be X (in place).
type UnaryArgs struct {
	Op          UnaryOp
	N           int
	X, Y        Buffer
	Alpha, Beta float32
}

// UnaryBackwardArgs computes DX[i] (+)= DY[i]·f′(X[i]) for i < N. X is
// the forward input and Y the forward output; ops whose derivative is
// written in terms of y (Exp, Sqrt, ReLU, Sigmoid, Tanh) read Y, the
// others X. DX may be DY (in place).
type UnaryBackwardArgs struct {
	Op          UnaryOp
	N           int
	X, Y, DY    Buffer
	DX          Dest
	Alpha, Beta float32
}

// BinaryOp names a pointwise function of two operands.
type BinaryOp uint8

// Binary functions.
const (
	BinaryAdd BinaryOp = iota + 1
	BinarySub
	BinaryMul
	BinaryDiv
)

func (o BinaryOp) String() string {
	switch o {
	case BinaryAdd:
		return "Add"
	case BinarySub:
		return "Sub"
	case BinaryMul:
		return "Mul"
	case BinaryDiv:
		return "Div"
	}
	return "BinaryOp?"
}

// BinaryArgs computes Dst (+)= A op B over Shape. Dst is dense over Shape;
// A and B are views whose zero strides broadcast them (NumPy rules are
// applied by the engine, which passes the strides).
type BinaryArgs struct {
	Op    BinaryOp
	Shape []int
	A, B  View
	Dst   Dest
}

// WhereArgs computes Dst[i] (+)= Mask[i] ≠ 0 ? A[i] : B[i] for i < N. A
// nil A or B reads as zeros (the backward pass of a selection).
type WhereArgs struct {
	N          int
	Mask, A, B Buffer
	Dst        Dest
}

// ReduceOp names a reduction.
type ReduceOp uint8

// Reductions.
const (
	// ReduceSum adds the reduced elements.
	ReduceSum ReduceOp = iota + 1
	// ReduceSumSquares adds their squares (the squared L2 norm).
	ReduceSumSquares
	// ReduceMax takes the largest; NaN counts as larger than any number,
	// and ties go to the first element in row-major order.
	ReduceMax
)

// ReduceArgs reduces Src, dense with shape Shape, over the dimensions
// marked in Axes (len(Axes) == len(Shape)) into Dst, dense over the kept
// dimensions in order: Dst (+)= Alpha·reduce(Src). No marked axis makes it
// a scaled copy. Sums accumulate in at least float32; the reference
// backend uses float64. ReduceMax needs a non-empty reduction and, when
// Index is not nil, writes the flat Src index of each maximum into the
// Int32 buffer Index.
type ReduceArgs struct {
	Op    ReduceOp
	Shape []int
	Axes  []bool
	Src   Buffer
	Dst   Dest
	Index Buffer
	Alpha float32
}

// SoftmaxArgs normalises X viewed as [Outer, Size, Inner] over its middle
// axis into Y: exp(x − max)/Σexp, or with Log, x − max − log Σexp(x − max).
type SoftmaxArgs struct {
	Outer, Size, Inner int
	X, Y               Buffer
	Log                bool
}

// SoftmaxBackwardArgs is the gradient of Softmax given its output Y:
// softmax: dx = y·(dy − Σ dy·y); log-softmax: dx = dy − exp(y)·Σ dy.
type SoftmaxBackwardArgs struct {
	Outer, Size, Inner int
	Y, DY              Buffer
	DX                 Dest
	Log                bool
}

// Matrix is one operand of Gemm: a row-major matrix stored at Offset with
// leading dimension LD (elements between rows), used transposed when
// Trans is set. BatchStride separates the matrices of a batch; zero uses
// the same matrix for every batch entry.
type Matrix struct {
	Buf         Buffer
	Offset      int
	LD          int
	BatchStride int
	Trans       bool
}

// GemmArgs computes, for each of Batch entries,
// C = Alpha·op(A)·op(B) + Beta·C with op(A) M×K, op(B) K×N and C M×N.
// C.Trans must be false and C.BatchStride must keep the batch's results
// apart (≥ M·LD when Batch > 1). With Beta == 0 C is not read. K == 0
// scales C by Beta; M == 0, N == 0 or Batch == 0 does nothing.
type GemmArgs struct {
	M, N, K     int
	Batch       int
	Alpha, Beta float32
	A, B, C     Matrix
}

// ConvGeometry describes a 2-D convolution of a batch: input
// [N, C, H, W], weight [Cout, C/Groups, KernelH, KernelW], output
// [N, Cout, OutH, OutW] with OutH = (H + 2·PadH − DilationH·(KernelH−1) − 1)/StrideH + 1
// (and likewise OutW). Every field is positive except the paddings (≥ 0);
// C and Cout are divisible by Groups. Groups == C == Cout is a depthwise
// convolution.
type ConvGeometry struct {
	N, C, H, W           int
	Cout                 int
	KernelH, KernelW     int
	StrideH, StrideW     int
	PadH, PadW           int
	DilationH, DilationW int
	Groups               int
	OutH, OutW           int
}

// ConvArgs computes Y = conv(X, W) + Bias (Bias [Cout] may be nil). The
// backend picks the algorithm (shifted GEMM, im2col + GEMM, direct
// depthwise on the CPU; cuDNN or im2col + cuBLAS on a GPU).
type ConvArgs struct {
	Geometry      ConvGeometry
	X, W, Bias, Y Buffer
}

// ConvBackwardArgs computes whichever of the input gradient DX, the weight
// gradient DW and the bias gradient DBias are wanted, from the forward
// input X, weight W and output gradient DY. One call lets a backend share
// work between them (the CPU makes one pass over the images).
type ConvBackwardArgs struct {
	Geometry      ConvGeometry
	X, W, DY      Buffer
	DX, DW, DBias Dest
}

// BatchNormArgs normalises X [N, C, HW] per channel into Y:
// y = (x − mean)·invStd·Gamma + Beta. In training, mean and the biased
// variance come from the batch (N·HW > 1 values per channel) and the
// running statistics move towards them: r = (1−Momentum)·r + Momentum·b,
// with the unbiased variance for RunningVar. In eval, the running
// statistics are used and not changed. Either way the mean and
// 1/√(var + Eps) used are written to Mean and InvStd ([C] each) for the
// backward pass.
//
// Act, when not zero, is applied to the normalised values in the same
// pass: Y = act(z) with z = (x − mean)·invStd·Gamma + Beta, computed as
// x·scale + shift (scale = Gamma·invStd, shift = Beta − mean·scale), with
// ActAlpha and ActBeta as Unary's Alpha and Beta. The engine sets it only
// for ops the backend's FusesActivation accepts (ActivationFuser).
type BatchNormArgs struct {
	N, C, HW                int
	X, Y                    Buffer
	Gamma, Beta             Buffer
	RunningMean, RunningVar Buffer
	Mean, InvStd            Buffer
	Training                bool
	Momentum, Eps           float32
	Act                     UnaryOp
	ActAlpha, ActBeta       float32
}

// BatchNormBackwardArgs computes the gradients of BatchNorm from the
// forward input X, Gamma, the statistics the forward pass wrote and DY.
// In training the input gradient includes the statistics' dependence on
// the batch; in eval it is DY·Gamma·InvStd.
//
// With Act (as in the forward pass), DY is the gradient of the
// activation's output: the kernel recomputes z = x·scale + shift as the
// forward pass did (Beta is then required) and uses DY·act′(z), with
// act′ as UnaryBackward's (given x = z and y = act(z)), in place of DY.
type BatchNormBackwardArgs struct {
	N, C, HW          int
	X, Gamma, DY      Buffer
	Mean, InvStd      Buffer
	DX, DGamma, DBeta Dest
	Training          bool
	Beta              Buffer
	Act               UnaryOp
	ActAlpha, ActBeta float32
}

// PoolKind names a pooling.
type PoolKind uint8

// Poolings.
const (
	// PoolMax takes the maximum of each window; padding counts as −∞ and
	// NaN as larger than any number.
	PoolMax PoolKind = iota + 1
	// PoolAvg averages each window; padded positions count in the divisor
	// (PyTorch's count_include_pad).
	PoolAvg
)

// PoolGeometry describes square-window pooling of [N, C, H, W] into
// [N, C, OutH, OutW] with OutH = (H + 2·Pad − Kernel)/Stride + 1.
type PoolGeometry struct {
	N, C, H, W          int
	Kernel, Stride, Pad int
	OutH, OutW          int
}

// PoolArgs pools X into Y. For PoolMax, Argmax (Int32, Y's size) receives
// the index within its input plane (y·W + x) of each window's maximum;
// the engine keeps it for the backward pass. It may be nil without a
// backward pass.
type PoolArgs struct {
	Kind     PoolKind
	Geometry PoolGeometry
	X, Y     Buffer
	Argmax   Buffer
}

// PoolBackwardArgs routes DY back to the input: PoolMax through Argmax,
// PoolAvg spread evenly over each window.
type PoolBackwardArgs struct {
	Kind     PoolKind
	Geometry PoolGeometry
	DY       Buffer
	Argmax   Buffer
	DX       Dest
}

// ResizeGeometry describes resizing [N, C, H, W] to [N, C, OutH, OutW].
type ResizeGeometry struct {
	N, C, H, W int
	OutH, OutW int
}

// UpsampleArgs resizes X into Y by nearest neighbour: output (oy, ox)
// reads input (⌊oy·H/OutH⌋, ⌊ox·W/OutW⌋), as PyTorch's mode="nearest".
type UpsampleArgs struct {
	Geometry ResizeGeometry
	X, Y     Buffer
}

// UpsampleBackwardArgs adds each output gradient to the input it read.
type UpsampleBackwardArgs struct {
	Geometry ResizeGeometry
	DY       Buffer
	DX       Dest
}

// ROIAlignGeometry describes torchvision's roi_align: Regions boxes pool
// the input [N, C, H, W] into [Regions, C, OutH, OutW]. Box coordinates
// (input pixels) times SpatialScale are feature coordinates; each bin
// averages SamplingRatio² bilinear samples (≤ 0: ⌈box size / out size⌉
// per axis, per region); Aligned shifts coordinates by −0.5.
type ROIAlignGeometry struct {
	N, C, H, W    int
	Regions       int
	OutH, OutW    int
	SpatialScale  float32
	SamplingRatio int
	Aligned       bool
}

// ROIAlignArgs pools X into Y. ROIs (Float32 [Regions, 5]) holds rows of
// (batch index, x1, y1, x2, y2); batch indices are integers in [0, N)
// (the engine checks them).
type ROIAlignArgs struct {
	Geometry ROIAlignGeometry
	X, ROIs  Buffer
	Y        Buffer
}

// ROIAlignBackwardArgs adds each bin's gradient back to the input pixels
// its samples read.
type ROIAlignBackwardArgs struct {
	Geometry ROIAlignGeometry
	ROIs, DY Buffer
	DX       Dest
}

// LossOp names a detection loss. Losses are elementwise over N values
// unless the op says rows.
type LossOp uint8

// Losses (X is the prediction or logit, Target the target).
const (
	// LossBCEWithLogits is max(x,0) − x·t + log(1 + e^−|x|); both inputs
	// take gradients (soft targets).
	LossBCEWithLogits LossOp = iota + 1
	// LossSigmoidFocal is torchvision's sigmoid_focal_loss: ce·(1−p_t)^Gamma·α_t
	// with α_t = Alpha·t + (1−Alpha)(1−t), or 1 when Alpha < 0. Only X
	// takes a gradient.
	LossSigmoidFocal
	// LossL1 is |x − t|; the derivative at 0 is 0.
	LossL1
	// LossSmoothL1 is 0.5·d²/Beta where |d| < Beta, else |d| − 0.5·Beta
	// (d = x − t); Beta == 0 is L1.
	LossSmoothL1
	// LossMSE is (x − t)².
	LossMSE
	// LossGIoU is 1 − GIoU of rows of 4 (x1, y1, x2, y2): N rows of X and
	// Target give N values (torchvision's generalized_box_iou_loss, eps 1e-7).
	LossGIoU
	// LossCrossEntropy is −log softmax(x)[label] for N rows of Classes
	// logits; Target is Int32 labels [N] and a negative label gives 0
	// (ignored). Only X takes a gradient.
	LossCrossEntropy
)

var lossNames = [...]string{"", "BCEWithLogits", "SigmoidFocal", "L1", "SmoothL1", "MSE", "GIoU", "CrossEntropy"}

func (o LossOp) String() string {
	if int(o) < len(lossNames) && o > 0 {
		return lossNames[o]
	}
	return "LossOp?"
}

// LossArgs computes Y (N values) from X and Target.
type LossArgs struct {
	Op                 LossOp
	N                  int
	Classes            int
	X, Target, Y       Buffer
	Alpha, Gamma, Beta float32
}

// LossBackwardArgs computes DX and DTarget (each wanted or not) from the
// forward inputs and DY. Elements whose DY is zero contribute nothing.
type LossBackwardArgs struct {
	Op                 LossOp
	N                  int
	Classes            int
	X, Target, DY      Buffer
	DX, DTarget        Dest
	Alpha, Gamma, Beta float32
}

// PairwiseDistanceArgs computes Y[i, j] = ‖X[i] − X[j]‖ for the K rows of
// X [K, D] (Y [K, K], zero diagonal), accumulating squares in float64.
// GID's relation loss is built on it.
type PairwiseDistanceArgs struct {
	K, D int
	X, Y Buffer
}

// PairwiseDistanceBackwardArgs computes
// DX[i] (+)= Σ_j (DY[i, j] + DY[j, i])·(X[i] − X[j])/Y[i, j] over the
// pairs with Y[i, j] > 0 (the gradient of a zero distance is taken as 0).
type PairwiseDistanceBackwardArgs struct {
	K, D     int
	X, Y, DY Buffer
	DX       Dest
}

// AdamWArgs applies torch.optim.AdamW's update to N elements in place:
//
//	p ← p·Shrink
//	m ← Beta1·m + (1−Beta1)·g;  v ← Beta2·v + (1−Beta2)·g²
//	p ← p − StepSize·m / (√v·InvSqrtBC2 + Eps)
//
// with Shrink = 1 − lr·weight decay, StepSize = lr/(1 − Beta1^t) and
// InvSqrtBC2 = 1/√(1 − Beta2^t), which the optimizer computes per step.
type AdamWArgs struct {
	N                             int
	Param, Grad, ExpAvg, ExpAvgSq Buffer
	Beta1, Beta2, Eps             float32
	Shrink, StepSize, InvSqrtBC2  float32
}

// SGDArgs applies torch.optim.SGD's update (dampening 0) to N elements in
// place: g ← g + WeightDecay·p; with Momentum, v ← Momentum·v + g and
// p ← p − LR·v (Nesterov: p ← p − LR·(g + Momentum·v)); without, p ← p − LR·g
// and Velocity is not touched (it may be nil).
type SGDArgs struct {
	N                         int
	Param, Grad, Velocity     Buffer
	LR, Momentum, WeightDecay float32
	Nesterov                  bool
}

// LinearAxis maps output positions to input positions along one axis of a
// bilinear resize: src = Scale·dst + Offset, computed in float32 (the
// product rounded before the sum), then clamped to [0, in−1]. The two taps
// are i0 = ⌊src⌋ and i1 = min(i0+1, in−1), weighted 1−λ and λ with
// λ = src − i0. The engine derives Scale and Offset from ONNX's coordinate
// transformation modes (half_pixel, pytorch_half_pixel, align_corners,
// asymmetric).
type LinearAxis struct {
	Scale, Offset float32
}

// ResizeLinearArgs resizes X [N, C, H, W] into Y [N, C, OutH, OutW] by
// bilinear interpolation:
//
//	Y[oy, ox] = (1−λy)·((1−λx)·X[y0, x0] + λx·X[y0, x1]) + λy·((1−λx)·X[y1, x0] + λx·X[y1, x1])
//
// with the taps and weights of Rows (for oy) and Cols (for ox).
type ResizeLinearArgs struct {
	Geometry   ResizeGeometry
	Rows, Cols LinearAxis
	X, Y       Buffer
}

// ResizeLinearBackwardArgs adds each output gradient to the four input
// positions it read, times their weights.
type ResizeLinearBackwardArgs struct {
	Geometry   ResizeGeometry
	Rows, Cols LinearAxis
	DY         Buffer
	DX         Dest
}
