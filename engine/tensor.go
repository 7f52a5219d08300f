package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/gidedge/gidedge/engine/backend"
	_ "github.com/gidedge/gidedge/engine/cpu" // default backend
)

// Tensor is a dense float32 array with an optional gradient.
type Tensor struct {
	shape        []int
	data         []float32
	grad         []float32
	requiresGrad bool
	node         *node
	pooled       bool // data came from the pool and may be released
}

type node struct {
	op       string
	inputs   []*Tensor
	backward func(out *Tensor)
	// release frees op-private buffers (saved masks, indices) on Release.
	release func()
}

var noGradDepth atomic.Int32

// NoGrad runs fn without recording any op for differentiation.
func NoGrad(fn func()) {
	noGradDepth.Add(1)
	defer noGradDepth.Add(-1)
	fn()
}

// GradEnabled reports whether ops are currently recorded.
func GradEnabled() bool { return noGradDepth.Load() == 0 }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// New returns a tensor of the given shape holding data (not copied).
func New(data []float32, shape ...int) *Tensor {
	if numel(shape) != len(data) {
		panic(&OpError{Op: "New", Shapes: [][]int{shape}, Err: ErrShape, Detail: fmt.Sprintf("%d values for %d elements", len(data), numel(shape))})
	}
	return &Tensor{shape: slices.Clone(shape), data: data}
}

// Zeros returns a zero tensor.
func Zeros(shape ...int) *Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(&OpError{Op: "Zeros", Shapes: [][]int{shape}, Err: ErrShape, Detail: "negative dimension"})
		}
	}
	return &Tensor{shape: slices.Clone(shape), data: make([]float32, numel(shape))}
}

// Full returns a tensor filled with v.
func Full(v float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.data {
		t.data[i] = v
	}
	return t
}

// Scalar returns a 0-d tensor.
func Scalar(v float32) *Tensor { return &Tensor{shape: []int{}, data: []float32{v}} }

// RandN returns a tensor of normal samples with the given std.
func RandN(rng *rand.Rand, std float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.data {
		t.data[i] = float32(rng.NormFloat64()) * std
	}
	return t
}

// RandU returns a tensor of uniform samples in [lo, hi).
func RandU(rng *rand.Rand, lo, hi float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.data {
		t.data[i] = lo + (hi-lo)*rng.Float32()
	}
	return t
}

// newResult allocates an op output from the pool.
func newResult(shape []int) *Tensor {
	return &Tensor{shape: shape, data: getBuf(numel(shape)), pooled: true}
}

func newResultNoZero(shape []int) *Tensor {
	return &Tensor{shape: shape, data: getBufNoZero(numel(shape)), pooled: true}
}

// Shape returns a copy of the tensor's shape.
func (t *Tensor) Shape() []int { return slices.Clone(t.shape) }

// Dim returns dimension i (negative counts from the end).
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.data) }

// Data returns the underlying values (shared, not copied).
func (t *Tensor) Data() []float32 { return t.data }

// Grad returns the accumulated gradient, or nil.
func (t *Tensor) Grad() []float32 { return t.grad }

// GradTensor returns the gradient as a tensor sharing memory, or nil.
func (t *Tensor) GradTensor() *Tensor {
	if t.grad == nil {
		return nil
	}
	return &Tensor{shape: t.shape, data: t.grad}
}

// Item returns the single value of a one-element tensor.
func (t *Tensor) Item() float32 {
	if len(t.data) != 1 {
		panic(&OpError{Op: "Item", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: "tensor has more than one element"})
	}
	return t.data[0]
}

// RequiresGrad reports whether gradients flow into t.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// SetRequiresGrad marks a leaf tensor (a parameter) as trainable.
func (t *Tensor) SetRequiresGrad(v bool) *Tensor {
	t.requiresGrad = v
	return t
}

// ZeroGrad clears the gradient.
func (t *Tensor) ZeroGrad() {
	if t.grad != nil {
		clear(t.grad)
	}
}

// Detach returns a tensor sharing t's data but cut from the graph.
func (t *Tensor) Detach() *Tensor { return &Tensor{shape: t.shape, data: t.data} }

// Clone returns a deep copy cut from the graph.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{shape: slices.Clone(t.shape), data: slices.Clone(t.data)}
}

// String prints the shape and the first values.
func (t *Tensor) String() string {
	n := min(len(t.data), 8)
	return fmt.Sprintf("Tensor%v%v", t.shape, t.data[:n])
}

// ensureGrad allocates the gradient buffer.
func (t *Tensor) ensureGrad() []float32 {
	if t.grad == nil {
		if t.pooled {
			t.grad = getBuf(len(t.data))
		} else {
			t.grad = make([]float32, len(t.data))
		}
	}
	return t.grad
}

// gradSink returns t's gradient buffer for an op about to contribute to it.
// When the buffer is new, overwrite is true and its contents are undefined:
// the op must then write every element instead of adding, which spares
// hot ops (ReLU, convolution) a clearing pass over memory.
func (t *Tensor) gradSink() (g []float32, overwrite bool) {
	if t.grad != nil {
		return t.grad, false
	}
	if t.pooled {
		t.grad = getBufNoZero(len(t.data))
	} else {
		t.grad = make([]float32, len(t.data))
	}
	return t.grad, true
}

func be() backend.Legacy { return backend.LegacyCurrent() }

// record attaches a backward function to out when any input needs gradients.
func record(out *Tensor, op string, backward func(out *Tensor), inputs ...*Tensor) {
	if !GradEnabled() {
		return
	}
	for _, in := range inputs {
		if in.requiresGrad {
			out.requiresGrad = true
			out.node = &node{op: op, inputs: inputs, backward: backward}
			return
		}
	}
}

// Backward computes gradients of t (a scalar, or seeded with ones) with
// respect to every tensor in its graph that requires them. A scalar loss
// that is NaN or Inf panics with an *OpError wrapping ErrNotFinite before
// any gradient is touched.
func (t *Tensor) Backward() {
	if !t.requiresGrad {
		panic(&OpError{Op: "Backward", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: "tensor does not require grad (no trainable input)"})
	}
	if len(t.data) == 1 {
		if v := float64(t.data[0]); math.IsNaN(v) || math.IsInf(v, 0) {
			op := "a leaf"
			if t.node != nil {
				op = t.node.op
			}
			panic(&OpError{Op: "Backward", Shapes: [][]int{t.shape}, Err: ErrNotFinite, Detail: fmt.Sprintf("loss is %v (made by %s)", t.data[0], op)})
		}
	}
	g := t.ensureGrad()
	for i := range g {
		g[i] = 1
	}
	t.propagate()
}

// BackwardWith back-propagates a given upstream gradient (t's shape) through
// t's graph: the vector-Jacobian product. It serves split graphs (a frozen
// trunk fed by a gradient computed elsewhere) and per-layer benchmarks.
func (t *Tensor) BackwardWith(grad *Tensor) {
	if !t.requiresGrad {
		panic(&OpError{Op: "BackwardWith", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: "tensor does not require grad (no trainable input)"})
	}
	check(slices.Equal(t.shape, grad.shape), "BackwardWith", "gradient shape differs from the tensor's", nil, t, grad)
	copy(t.ensureGrad(), grad.data)
	t.propagate()
}

func (t *Tensor) propagate() {
	order := topo(t)
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		if n.node != nil && n.grad != nil {
			n.node.backward(n)
		}
	}
}

func topo(root *Tensor) []*Tensor {
	var order []*Tensor
	seen := map[*Tensor]bool{}
	type frame struct {
		t *Tensor
		i int
	}
	stack := []frame{{root, 0}}
	seen[root] = true
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.t.node != nil && top.i < len(top.t.node.inputs) {
			in := top.t.node.inputs[top.i]
			top.i++
			if in.requiresGrad && !seen[in] {
				seen[in] = true
				stack = append(stack, frame{in, 0})
			}
			continue
		}
		order = append(order, top.t)
		stack = stack[:len(stack)-1]
	}
	return order
}

// Release returns the buffers of every intermediate tensor in t's graph (not
// leaves such as parameters and inputs) to the pool and cuts the graph. Call
// it when a step is done with its loss; tensors of that graph must not be
// used afterwards.
func (t *Tensor) Release() {
	order := topo(t)
	for _, n := range order {
		if n.node != nil {
			if n.node.release != nil {
				n.node.release()
			}
			n.node = nil
			if n.pooled {
				putBuf(n.data)
				n.data = nil
				if n.grad != nil {
					putBuf(n.grad)
					n.grad = nil
				}
			}
		}
	}
}

// withOptional appends the non-nil tensors of opt to ts.
func withOptional(ts []*Tensor, opt ...*Tensor) []*Tensor {
	for _, t := range opt {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// Recycle hands the buffers of op outputs that are no longer needed back to
// the pool. It is for loops without a graph (inference under NoGrad), where
// Release has no graph to walk; tensors that are part of a recorded graph,
// and tensors not made by an op, are left alone. The tensors must not be used
// afterwards.
func Recycle(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || !t.pooled || t.node != nil || t.requiresGrad {
			continue
		}
		putBuf(t.data)
		t.data = nil
		t.pooled = false
	}
}
