package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/gidedge/gidedge/engine/backend"
)

// Host crossings. Every read or write of tensor values from Go code goes
// through the functions of this file, which count them: on a GPU each
// ToHost waits for the device, so a training step should make few.

var toHostCalls, toHostBytes, fromHostCalls, fromHostBytes atomic.Int64

// Scalar returns a 0-d tensor.
func Scalar(v float32) *Tensor { return FromHost([]float32{v}) }

// RandN returns a tensor of normal samples with the given std. The samples
// are drawn on the host and uploaded, so a seed gives the same values on
// every device.
func RandN(rng *rand.Rand, std float32, shape ...int) *Tensor {
	checkDims("RandN", shape)
	v := make([]float32, numel(shape))
	for i := range v {
		v[i] = float32(rng.NormFloat64()) * std
	}
	return FromHost(v, shape...)
}

// RandU returns a tensor of uniform samples in [lo, hi), drawn on the host.
func RandU(rng *rand.Rand, lo, hi float32, shape ...int) *Tensor {
	checkDims("RandU", shape)
	v := make([]float32, numel(shape))
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float32()
	}
	return FromHost(v, shape...)
}

// FromHost returns a tensor of the given shape on the default device
// holding a copy of data.
func FromHost(data []float32, shape ...int) *Tensor {
	checkDims("FromHost", shape)
	if numel(shape) != len(data) {
		panic(&OpError{Op: "FromHost", Shapes: [][]int{shape}, Err: ErrShape, Detail: fmt.Sprintf("%d values for %d elements", len(data), numel(shape))})
	}
	t := alloc(Device(), slices.Clone(shape))
	t.owned = false
	upload(t.dev, t.buf, data)
	return t
}

// FromPinned is FromHost for data in page-locked memory from the default
// device's backend.PinnedHost (a GPU: the data loader's batches): the copy
// runs on the device's copy queue, overlapping the kernels still running,
// and FromPinned returns at once. data must not change until the device's
// WaitPinned(data) returns. On a device without such uploads it is
// FromHost.
func FromPinned(data []float32, shape ...int) *Tensor {
	checkDims("FromPinned", shape)
	if numel(shape) != len(data) {
		panic(&OpError{Op: "FromPinned", Shapes: [][]int{shape}, Err: ErrShape, Detail: fmt.Sprintf("%d values for %d elements", len(data), numel(shape))})
	}
	t := alloc(Device(), slices.Clone(shape))
	t.owned = false
	p, ok := t.dev.(backend.PinnedHost)
	if !ok {
		upload(t.dev, t.buf, data)
		return t
	}
	fromHostCalls.Add(1)
	fromHostBytes.Add(int64(4 * len(data)))
	p.UploadPinned(t.buf, data)
	return t
}

func upload(d backend.Backend, dst backend.Buffer, data []float32) {
	fromHostCalls.Add(1)
	fromHostBytes.Add(int64(4 * len(data)))
	d.FromHost(dst, data)
}

// uploadIndices copies host indices into a new Int32 buffer on d.
func uploadIndices(d backend.Backend, idx []int) backend.Buffer {
	v := make([]int32, len(idx))
	for i, k := range idx {
		v[i] = int32(k)
	}
	b := d.Alloc(backend.Int32, len(v))
	fromHostCalls.Add(1)
	fromHostBytes.Add(int64(4 * len(v)))
	d.FromHostInt32(b, v)
	return b
}

func download(d backend.Backend, src backend.Buffer, n int) []float32 {
	v := make([]float32, n)
	toHostCalls.Add(1)
	toHostBytes.Add(int64(4 * n))
	d.ToHost(v, src)
	return v
}

// ToHost returns a copy of t's values in row-major order. It waits for
// the device to finish the work that produces them.
func (t *Tensor) ToHost() []float32 {
	device("ToHost", t)
	return download(t.dev, t.buf, t.Len())
}

// GradToHost returns a copy of t's gradient, or nil when it has none.
func (t *Tensor) GradToHost() []float32 {
	if t.grad == nil {
		return nil
	}
	return download(t.dev, t.grad, t.Len())
}

// Item returns the single value of a one-element tensor (a host read).
func (t *Tensor) Item() float32 {
	if t.Len() != 1 {
		panic(&OpError{Op: "Item", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: "tensor has more than one element"})
	}
	return t.ToHost()[0]
}

// CopyFromHost overwrites t's values with data (t.Len() values).
func (t *Tensor) CopyFromHost(data []float32) {
	device("CopyFromHost", t)
	if len(data) != t.Len() {
		panic(&OpError{Op: "CopyFromHost", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: fmt.Sprintf("%d values for %d elements", len(data), t.Len())})
	}
	upload(t.dev, t.buf, data)
}

// CopyFrom overwrites t's values with src's, which must have as many
// elements, on the device (no host transfer).
func (t *Tensor) CopyFrom(src *Tensor) {
	d := device("CopyFrom", t, src)
	check(t.Len() == src.Len(), "CopyFrom", "%d elements into %d", []any{src.Len(), t.Len()}, src, t)
	copyDense(d, t.buf, src.buf, t.Len(), false)
}

// Stats counts host transfers since the process started and the default
// device's allocations.
type Stats struct {
	ToHostCalls, ToHostBytes     int64
	FromHostCalls, FromHostBytes int64
	// Memory is the default device's allocation counters.
	Memory backend.MemStats
}

// ReadStats returns the current counters.
func ReadStats() Stats {
	return Stats{
		ToHostCalls: toHostCalls.Load(), ToHostBytes: toHostBytes.Load(),
		FromHostCalls: fromHostCalls.Load(), FromHostBytes: fromHostBytes.Load(),
		Memory: Device().MemStats(),
	}
}
