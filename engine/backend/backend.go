package backend

import "fmt"

// DType is the element type of a Buffer.
type DType uint8

// Element types. Float32 and Int32 are implemented; the others are
// reserved so that tensors can grow half-precision and quantized storage
// without changing the seam.
const (
	Float32 DType = iota + 1
	Int32
	Float16
	BFloat16
	Int8
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float16, BFloat16:
		return 2
	case Int8:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Buffer is memory owned by a backend: Len elements of one DType. Its
// contents are reached only through kernels, FromHost and ToHost.
type Buffer interface {
	Len() int
	DType() DType
}

// Dest is a kernel output that is overwritten, or added to when
// Accumulate is set. Without Accumulate the kernel ignores the old
// contents and writes every element. A nil Buf means the output is not
// wanted.
type Dest struct {
	Buf        Buffer
	Accumulate bool
}

// View addresses elements of a buffer for a kernel that is given a shape:
// element (i0, i1, …) is Buf[Offset + Σ ik·Strides[k]]. Nil Strides mean
// the dense row-major layout of the shape; a zero stride repeats one
// element along that dimension (broadcasting).
type View struct {
	Buf     Buffer
	Offset  int
	Strides []int
}

// MaxRank is the largest number of dimensions a shape given to a kernel
// may have.
const MaxRank = 8

// MemStats counts a backend's allocations since it was opened.
type MemStats struct {
	// FreshBytes were newly obtained from the system or the device.
	FreshBytes int64
	// ReusedBytes were served from the backend's cache of freed buffers.
	ReusedBytes int64
}

// Backend is one device: its memory and every kernel the engine runs.
// Methods are grouped by family; each family's argument struct documents
// its shapes. All methods are safe for use by one goroutine at a time per
// call; CPU backends also allow concurrent calls on distinct buffers.
type Backend interface {
	// Name is the device name programs select it by ("cpu", "ref", "cuda").
	Name() string
	// Describe is one line for reports: the library, device and workers.
	Describe() string

	// Alloc returns a buffer of n elements with undefined contents.
	Alloc(dtype DType, n int) Buffer
	// Free hands a buffer back for reuse; it must not be used afterwards.
	Free(b Buffer)
	// FromHost copies src into the Float32 buffer dst (len(src) == dst.Len()).
	FromHost(dst Buffer, src []float32)
	// FromHostInt32 copies src into the Int32 buffer dst.
	FromHostInt32(dst Buffer, src []int32)
	// ToHost waits for queued work and copies the Float32 buffer src into dst.
	ToHost(dst []float32, src Buffer)
	// Sync waits for queued work and reports an asynchronous device error.
	Sync() error
	// MemStats reports allocation counters.
	MemStats() MemStats

	// Fill sets every element of a Float32 buffer to value.
	Fill(dst Buffer, value float32)
	// Copy copies (or adds) a strided view into another.
	Copy(a CopyArgs)
	// Gather picks rows along the middle axis by index.
	Gather(a GatherArgs)
	// ScatterAdd adds rows into positions along the middle axis by index.
	ScatterAdd(a GatherArgs)

	// Unary applies a pointwise function.
	Unary(a UnaryArgs)
	// UnaryBackward computes dx = dy·f′ for a pointwise function.
	UnaryBackward(a UnaryBackwardArgs)
	// Binary combines two broadcast operands pointwise.
	Binary(a BinaryArgs)
	// Where selects between two operands by a mask.
	Where(a WhereArgs)

	// Reduce sums, sums squares of, or takes the maximum over chosen axes.
	Reduce(a ReduceArgs)
	// Softmax normalises exponentials (or their logarithm) over one axis.
	Softmax(a SoftmaxArgs)
	// SoftmaxBackward is Softmax's vector-Jacobian product.
	SoftmaxBackward(a SoftmaxBackwardArgs)

	// Gemm multiplies (batches of) matrices.
	Gemm(a GemmArgs)
	// Conv2d is a grouped, strided, padded, dilated 2-D convolution plus bias.
	Conv2d(a ConvArgs)
	// Conv2dBackward computes any of the input, weight and bias gradients.
	Conv2dBackward(a ConvBackwardArgs)

	// BatchNorm normalises per channel (training: batch statistics and a
	// running-statistics update; eval: running statistics).
	BatchNorm(a BatchNormArgs)
	// BatchNormBackward computes the input, scale and shift gradients.
	BatchNormBackward(a BatchNormBackwardArgs)
	// Pool2d is max or average pooling.
	Pool2d(a PoolArgs)
	// Pool2dBackward is Pool2d's gradient.
	Pool2dBackward(a PoolBackwardArgs)
	// Upsample resizes by nearest neighbour.
	Upsample(a UpsampleArgs)
	// UpsampleBackward is Upsample's gradient.
	UpsampleBackward(a UpsampleBackwardArgs)
	// ResizeLinear resizes by bilinear interpolation.
	ResizeLinear(a ResizeLinearArgs)
	// ResizeLinearBackward is ResizeLinear's gradient.
	ResizeLinearBackward(a ResizeLinearBackwardArgs)
	// ROIAlign pools regions by bilinear sampling (torchvision roi_align).
	ROIAlign(a ROIAlignArgs)
	// ROIAlignBackward is ROIAlign's gradient with respect to the input.
	ROIAlignBackward(a ROIAlignBackwardArgs)

	// Loss computes an elementwise (or per-row) detection loss.
	Loss(a LossArgs)
	// LossBackward computes a loss's gradients.
	LossBackward(a LossBackwardArgs)
	// PairwiseDistance computes Euclidean distances between rows.
	PairwiseDistance(a PairwiseDistanceArgs)
	// PairwiseDistanceBackward is PairwiseDistance's gradient.
	PairwiseDistanceBackward(a PairwiseDistanceBackwardArgs)

	// AdamW applies one AdamW update to a parameter in place.
	AdamW(a AdamWArgs)
	// SGD applies one SGD (momentum, Nesterov, weight decay) update in place.
	SGD(a SGDArgs)
}

// ActivationFuser is implemented by backends whose BatchNorm kernels can
// apply an activation in the same pass (BatchNormArgs.Act): a CPU saves a
// pass over memory each way, a GPU a kernel launch. The engine fuses only
// the ops FusesActivation accepts and otherwise runs BatchNorm and Unary
// one after the other, with the same results.
type ActivationFuser interface {
	FusesActivation(op UnaryOp) bool
}

// DenseStrides returns the row-major strides of shape: what nil Strides in
// a View mean.
func DenseStrides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// BroadcastStrides returns the strides that read a dense tensor of shape
// as the shape out it broadcasts to (NumPy rules: shapes aligned at the
// end, zero along broadcast dimensions).
func BroadcastStrides(shape, out []int) []int {
	strides := make([]int, len(out))
	s := 1
	for i := len(out) - 1; i >= 0; i-- {
		j := len(shape) - len(out) + i
		if j >= 0 && shape[j] != 1 {
			strides[i] = s
		}
		if j >= 0 {
			s *= shape[j]
		}
	}
	return strides
}
