package cuda

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/ref"
)

// blockReduceMin is the reduction length from which one block of
// kernels.Block threads per output pays; shorter reductions take one
// thread per output.
const blockReduceMin = 64

var reduceOps = map[backend.ReduceOp]int{
	backend.ReduceSum:        kernels.ReduceSum,
	backend.ReduceSumSquares: kernels.ReduceSumSq,
	backend.ReduceMax:        kernels.ReduceMax,
}

// Reduce implements backend.Backend.
func (b *Backend) Reduce(a backend.ReduceArgs) {
	const k = "Reduce"
	op, ok := reduceOps[a.Op]
	if !ok {
		backend.Fail(Name, k, "unknown op %d", a.Op)
	}
	checkShape(k, a.Shape)
	if len(a.Axes) != len(a.Shape) {
		backend.Fail(Name, k, "%d axis flags for a rank-%d shape", len(a.Axes), len(a.Shape))
	}
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	nOut := numel(ref.KeptShape(a.Shape, a.Axes))
	n := numel(a.Shape)
	dst, beta, _ := b.dest(k, "Dst", a.Dst, nOut)
	src := b.f32(k, "Src", a.Src, n)
	var index *Buffer
	if a.Index != nil && a.Op == backend.ReduceMax {
		index = b.buffer(k, "Index", a.Index, backend.Int32, nOut)
	}
	if a.Op == backend.ReduceMax && nOut > 0 && n == 0 {
		backend.Fail(Name, k, "maximum over an empty axis of %v", a.Shape)
	}
	if nOut == 0 {
		return
	}
	if n == 0 {
		if beta == 0 {
			b.fill(k, dst, nOut, 0) // a sum over nothing
		}
		return
	}
	var ip driver.DevicePtr
	if index != nil {
		ip = index.mem.Ptr
		index.setBounds(0, int32(n-1))
	}
	b.reduce(k, dst, ip, src, op, a.Alpha, beta, a.Shape, a.Axes)
}

// reduce launches a reduction of the dense, non-empty src over axes:
// dst = alpha·reduce + beta·dst.
func (b *Backend) reduce(k string, dst, index, src driver.DevicePtr, op int, alpha, beta float32, shape []int, axes []bool) {
	// Neighbouring dimensions that are both kept or both reduced are one
	// dimension of the dense source; unit dimensions change nothing.
	var dims []int
	var reduced []bool
	for i, d := range shape {
		if d == 1 {
			continue
		}
		if j := len(dims) - 1; j >= 0 && reduced[j] == axes[i] {
			dims[j] *= d
			continue
		}
		dims = append(dims, d)
		reduced = append(reduced, axes[i])
	}
	var ax []int
	for i, r := range reduced {
		if r {
			ax = append(ax, i)
		}
	}
	g, err := kernels.NewReduce(dims, backend.DenseStrides(dims), ax...)
	if err != nil {
		backend.Fail(Name, k, "%v", err)
	}
	if g.NRed >= blockReduceMin {
		b.launch(k, "gidedge_reduce", kernels.PerBlock(int(g.NKeep)), ptr(dst), ptr(index), ptr(src), i32(op), f32(alpha), f32(beta), g.Arg())
		return
	}
	b.launch(k, "gidedge_reduce_small", elementwise(int(g.NKeep)), ptr(dst), ptr(index), ptr(src), i32(op), f32(alpha), f32(beta), g.Arg())
}

// sumRows adds the rows of a dense [rows, cols] matrix into dst [cols]
// (beta 1) or writes their sum (beta 0).
func (b *Backend) sumRows(k string, dst, src driver.DevicePtr, rows, cols int, beta float32) {
	if cols == 0 {
		return
	}
	if rows == 0 {
		if beta == 0 {
			b.fill(k, dst, cols, 0)
		}
		return
	}
	b.reduce(k, dst, 0, src, kernels.ReduceSum, 1, beta, []int{rows, cols}, []bool{true, false})
}

// Softmax implements backend.Backend.
func (b *Backend) Softmax(a backend.SoftmaxArgs) {
	const k = "Softmax"
	n := softmaxSize(k, a.Outer, a.Size, a.Inner)
	x := b.f32(k, "X", a.X, n)
	y := b.f32(k, "Y", a.Y, n)
	if n == 0 {
		return
	}
	b.launch(k, "gidedge_softmax", kernels.PerBlock(a.Outer*a.Inner), ptr(y), ptr(x), i32(a.Outer), i32(a.Size), i32(a.Inner), i32(boolInt(a.Log)))
}

// SoftmaxBackward implements backend.Backend.
func (b *Backend) SoftmaxBackward(a backend.SoftmaxBackwardArgs) {
	const k = "SoftmaxBackward"
	n := softmaxSize(k, a.Outer, a.Size, a.Inner)
	y := b.f32(k, "Y", a.Y, n)
	dy := b.f32(k, "DY", a.DY, n)
	dx, beta, ok := b.dest(k, "DX", a.DX, n)
	if !ok || n == 0 {
		return
	}
	b.launch(k, "gidedge_softmax_backward", kernels.PerBlock(a.Outer*a.Inner), ptr(dx), ptr(dy), ptr(y), i32(a.Outer), i32(a.Size), i32(a.Inner), i32(boolInt(a.Log)), f32(beta))
}

func softmaxSize(k string, outer, size, inner int) int {
	if outer < 0 || size < 0 || inner < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d", outer, size, inner)
	}
	return outer * size * inner
}
