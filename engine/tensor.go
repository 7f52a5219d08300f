package engine

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/gidedge/gidedge/engine/backend"
)

// Tensor is a dense array of one dtype (float32) living in a device's
// memory, with an optional gradient buffer on the same device. Its values
// are reached through ops and the host transfers of host.go.
type Tensor struct {
	shape        []int
	dtype        backend.DType
	dev          backend.Backend
	buf          backend.Buffer
	grad         backend.Buffer
	requiresGrad bool
	node         *node
	// owned marks a buffer an op allocated for this tensor: Release and
	// Recycle may free it. Views (Reshape, Detach) share their source's
	// buffer and tensors made from the host (Zeros, FromHost, Clone, …)
	// are left to the garbage collector.
	owned bool
}

type node struct {
	op       string
	inputs   []*Tensor
	backward func(out *Tensor)
	// release frees op-private buffers (saved statistics, indices) on Release.
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

// Device returns the backend new tensors are created on (backend.Default:
// the one chosen with backend.Use, else $GIDEDGE_DEVICE, else "cpu").
func Device() backend.Backend { return backend.Default() }

func checkDims(op string, shape []int) {
	for _, d := range shape {
		if d < 0 {
			panic(&OpError{Op: op, Shapes: [][]int{shape}, Err: ErrShape, Detail: "negative dimension"})
		}
	}
	if len(shape) > backend.MaxRank {
		panic(&OpError{Op: op, Shapes: [][]int{shape}, Err: ErrShape, Detail: fmt.Sprintf("rank %d exceeds %d", len(shape), backend.MaxRank)})
	}
}

// alloc returns a tensor on dev with undefined contents that the caller
// fills; it owns its buffer.
func alloc(dev backend.Backend, shape []int) *Tensor {
	return &Tensor{shape: shape, dtype: backend.Float32, dev: dev, buf: dev.Alloc(backend.Float32, numel(shape)), owned: true}
}

// Zeros returns a zero tensor on the default device.
func Zeros(shape ...int) *Tensor { return Full(0, shape...) }

// Full returns a tensor filled with v on the default device.
func Full(v float32, shape ...int) *Tensor {
	checkDims("Full", shape)
	t := alloc(Device(), slices.Clone(shape))
	t.owned = false // not made by an op: Recycle leaves it alone
	t.dev.Fill(t.buf, v)
	return t
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
func (t *Tensor) Len() int { return numel(t.shape) }

// DType is the element type (float32).
func (t *Tensor) DType() backend.DType { return t.dtype }

// Device is the backend holding the tensor.
func (t *Tensor) Device() backend.Backend { return t.dev }

// HasGrad reports whether a gradient has been accumulated.
func (t *Tensor) HasGrad() bool { return t.grad != nil }

// GradTensor returns the gradient as a tensor sharing its buffer, or nil.
func (t *Tensor) GradTensor() *Tensor {
	if t.grad == nil {
		return nil
	}
	return &Tensor{shape: t.shape, dtype: t.dtype, dev: t.dev, buf: t.grad}
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
		t.dev.Fill(t.grad, 0)
	}
}

// Fill sets every value of t to v on its device.
func (t *Tensor) Fill(v float32) {
	device("Fill", t)
	t.dev.Fill(t.buf, v)
}

// Detach returns a tensor sharing t's values but cut from the graph.
func (t *Tensor) Detach() *Tensor {
	return &Tensor{shape: t.shape, dtype: t.dtype, dev: t.dev, buf: t.buf}
}

// Clone returns a deep copy cut from the graph.
func (t *Tensor) Clone() *Tensor {
	d := device("Clone", t)
	out := alloc(d, slices.Clone(t.shape))
	out.owned = false
	copyDense(d, out.buf, t.buf, t.Len(), false)
	return out
}

// copyDense copies (or adds) n contiguous elements.
func copyDense(d backend.Backend, dst, src backend.Buffer, n int, accumulate bool) {
	d.Copy(backend.CopyArgs{Shape: []int{n}, Dst: backend.View{Buf: dst}, Src: backend.View{Buf: src}, Accumulate: accumulate})
}

// String prints the shape, the device and the first values (a host read).
func (t *Tensor) String() string {
	if t.buf == nil {
		return fmt.Sprintf("Tensor%v(released)", t.shape)
	}
	v := t.ToHost()
	return fmt.Sprintf("Tensor%v(%s)%v", t.shape, t.dev.Name(), v[:min(len(v), 8)])
}

// gradDest returns t's gradient as a kernel destination, allocating it
// when t has none yet. A new buffer is returned without Accumulate, so the
// kernel overwrites it instead of adding to a cleared buffer, which spares
// hot ops (ReLU, convolution) a clearing pass over memory.
func (t *Tensor) gradDest() backend.Dest {
	if t.grad != nil {
		return backend.Dest{Buf: t.grad, Accumulate: true}
	}
	t.grad = t.dev.Alloc(backend.Float32, t.Len())
	return backend.Dest{Buf: t.grad}
}

// zeroedGrad returns t's gradient for kernels that add into part of it,
// allocating a zero-filled buffer when t has none yet.
func (t *Tensor) zeroedGrad() backend.Dest {
	if t.grad == nil {
		t.grad = t.dev.Alloc(backend.Float32, t.Len())
		t.dev.Fill(t.grad, 0)
	}
	return backend.Dest{Buf: t.grad, Accumulate: true}
}

// wantGrad returns t's gradient destination when t requires gradients,
// else an unwanted Dest.
func (t *Tensor) wantGrad() backend.Dest {
	if t == nil || !t.requiresGrad {
		return backend.Dest{}
	}
	return t.gradDest()
}

// recorded reports whether an op on these inputs will record a node.
func recorded(inputs ...*Tensor) bool {
	if !GradEnabled() {
		return false
	}
	for _, in := range inputs {
		if in != nil && in.requiresGrad {
			return true
		}
	}
	return false
}

// record attaches a backward function to out when any input needs
// gradients; release frees op-private buffers with the graph (or now, when
// nothing is recorded). It returns whether a node was recorded.
func record(out *Tensor, op string, backward func(out *Tensor), release func(), inputs ...*Tensor) bool {
	if recorded(inputs...) {
		out.requiresGrad = true
		out.node = &node{op: op, inputs: inputs, backward: backward, release: release}
		return true
	}
	if release != nil {
		release()
	}
	return false
}

// Backward computes gradients of t (a scalar, or seeded with ones) with
// respect to every tensor in its graph that requires them. A scalar loss
// that is NaN or Inf panics with an *OpError wrapping ErrNotFinite before
// any gradient is touched; reading it is one host transfer.
func (t *Tensor) Backward() {
	if !t.requiresGrad {
		panic(&OpError{Op: "Backward", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: "tensor does not require grad (no trainable input)"})
	}
	if t.Len() == 1 {
		if v := t.Item(); math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			op := "a leaf"
			if t.node != nil {
				op = t.node.op
			}
			panic(&OpError{Op: "Backward", Shapes: [][]int{t.shape}, Err: ErrNotFinite, Detail: fmt.Sprintf("loss is %v (made by %s)", v, op)})
		}
	}
	dst := t.gradDest()
	t.dev.Fill(dst.Buf, 1)
	t.propagate()
}

// BackwardWith back-propagates a given upstream gradient (t's shape) through
// t's graph: the vector-Jacobian product. It serves split graphs (a frozen
// trunk fed by a gradient computed elsewhere) and per-layer benchmarks.
func (t *Tensor) BackwardWith(grad *Tensor) {
	if !t.requiresGrad {
		panic(&OpError{Op: "BackwardWith", Shapes: [][]int{t.shape}, Err: ErrShape, Detail: "tensor does not require grad (no trainable input)"})
	}
	d := device("BackwardWith", t, grad)
	check(slices.Equal(t.shape, grad.shape), "BackwardWith", "gradient shape differs from the tensor's", nil, t, grad)
	dst := t.gradDest()
	copyDense(d, dst.Buf, grad.buf, t.Len(), false)
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

// Release hands the buffers of every intermediate tensor in t's graph (not
// leaves such as parameters and inputs) and their gradients back to the
// device and cuts the graph. Call it when a step is done with its loss;
// tensors of that graph must not be used afterwards.
func (t *Tensor) Release() {
	for _, n := range topo(t) {
		if n.node == nil {
			continue
		}
		if n.node.release != nil {
			n.node.release()
		}
		n.node = nil
		if n.owned {
			n.dev.Free(n.buf)
			n.buf = nil
			n.owned = false
		}
		if n.grad != nil {
			n.dev.Free(n.grad)
			n.grad = nil
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
// the device. It is for loops without a graph (inference under NoGrad),
// where Release has no graph to walk; tensors that are part of a recorded
// graph, and tensors not made by an op, are left alone. The tensors must
// not be used afterwards.
func Recycle(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || !t.owned || t.node != nil || t.requiresGrad {
			continue
		}
		t.dev.Free(t.buf)
		t.buf = nil
		t.owned = false
	}
}

// device checks that the tensors are live and on one device and returns it.
func device(op string, ts ...*Tensor) backend.Backend {
	var d backend.Backend
	for _, t := range ts {
		if t == nil {
			continue
		}
		if t.buf == nil {
			panic(&OpError{Op: op, Shapes: [][]int{t.shape}, Err: ErrReleased, Detail: "an input was released (Release or Recycle) before this op"})
		}
		if d == nil {
			d = t.dev
		} else if t.dev != d {
			panic(&OpError{Op: op, Shapes: shapesOf(ts), Err: ErrDevice, Detail: fmt.Sprintf("inputs on %s and %s", d.Name(), t.dev.Name())})
		}
	}
	return d
}

func shapesOf(ts []*Tensor) [][]int {
	shapes := make([][]int, 0, len(ts))
	for _, t := range ts {
		if t != nil {
			shapes = append(shapes, t.Shape())
		}
	}
	return shapes
}
