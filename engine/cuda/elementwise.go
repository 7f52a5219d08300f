package cuda

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/ref"
)

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// view checks a strided view over shape and returns the address of its
// first element and its strides.
func (b *Backend) view(kernel, name string, shape []int, v backend.View) (driver.DevicePtr, []int) {
	strides, extent := ref.CheckView(Name, kernel, name, shape, v)
	return at(b.f32(kernel, name, v.Buf, extent), v.Offset), strides
}

// checkShape rejects negative dimensions and ranks over backend.MaxRank.
func checkShape(kernel string, shape []int) { ref.CheckShape(Name, kernel, shape) }

// coalesce drops unit dimensions and merges neighbours that are
// contiguous in every operand, so a kernel walks as few dimensions as
// possible (a dense copy becomes one dimension).
func coalesce(shape []int, strides [][]int) ([]int, [][]int) {
	var outShape []int
	out := make([][]int, len(strides))
	for d, size := range shape {
		if size == 1 {
			continue
		}
		if k := len(outShape); k > 0 {
			merge := true
			for s := range strides {
				if out[s][k-1] != strides[s][d]*size {
					merge = false
					break
				}
			}
			if merge {
				outShape[k-1] *= size
				for s := range strides {
					out[s][k-1] = strides[s][d]
				}
				continue
			}
		}
		outShape = append(outShape, size)
		for s := range strides {
			out[s] = append(out[s], strides[s][d])
		}
	}
	for s := range out {
		if out[s] == nil {
			out[s] = []int{}
		}
	}
	return outShape, out
}

// layout is the kernels' index space over a non-empty shape with the
// strides of up to three operands.
func layout(kernel string, shape []int, strides ...[]int) kernels.Layout {
	shape, strides = coalesce(shape, strides)
	l, err := kernels.NewLayout(shape, strides...)
	if err != nil {
		backend.Fail(Name, kernel, "%v", err)
	}
	return l
}

// Fill implements backend.Backend.
func (b *Backend) Fill(dst backend.Buffer, value float32) {
	x := b.buffer("Fill", "dst", dst, backend.Float32, 0)
	b.fill("Fill", x.mem.Ptr, x.n, value)
}

// fill sets n float32 at p to value.
func (b *Backend) fill(kernel string, p driver.DevicePtr, n int, value float32) {
	if n == 0 {
		return
	}
	if err := b.stream.Fill32(p, math.Float32bits(value), n); err != nil {
		b.deviceFail(kernel, err)
	}
}

// Copy implements backend.Backend.
func (b *Backend) Copy(a backend.CopyArgs) {
	const k = "Copy"
	checkShape(k, a.Shape)
	n := numel(a.Shape)
	if n == 0 {
		return
	}
	dst, ds := b.view(k, "Dst", a.Shape, a.Dst)
	src, ss := b.view(k, "Src", a.Shape, a.Src)
	for _, s := range ds {
		if s == 0 {
			backend.Fail(Name, k, "Dst has a zero stride in %v", ds)
		}
	}
	shape, strides := coalesce(a.Shape, [][]int{ds, ss})
	dense := len(shape) <= 1 && (len(shape) == 0 || (strides[0][0] == 1 && strides[1][0] == 1))
	switch {
	case dense && !a.Accumulate:
		if err := b.stream.CopyDeviceToDevice(dst, src, 4*n); err != nil {
			b.deviceFail(k, err)
		}
	case dense:
		b.launch(k, "gidedge_copy", elementwise(n), ptr(dst), ptr(src), f32(1), i32(n))
	default:
		l := layout(k, a.Shape, ds, ss)
		b.launch(k, "gidedge_strided_copy", elementwise(n), ptr(dst), ptr(src), f32(float32(boolInt(a.Accumulate))), l.Arg())
	}
}

// gatherIndex checks GatherArgs and returns the index buffer's address:
// every index must be known to lie in [0, Size).
func (b *Backend) gatherIndex(k string, a backend.GatherArgs) driver.DevicePtr {
	if a.Outer < 0 || a.Size < 0 || a.Inner < 0 || a.Count < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d, %d indices", a.Outer, a.Size, a.Inner, a.Count)
	}
	if a.Index == nil {
		backend.Fail(Name, k, "no index buffer")
	}
	x := b.buffer(k, "Index", a.Index, backend.Int32, a.Count)
	if a.Count > 0 && (!x.bounded || x.lo < 0 || int(x.hi) >= a.Size) {
		if !x.bounded {
			backend.Fail(Name, k, "the index buffer holds values the backend cannot bound (not uploaded with FromHostInt32 nor written by a kernel)")
		}
		backend.Fail(Name, k, "indices span [%d, %d], outside [0, %d)", x.lo, x.hi, a.Size)
	}
	return x.mem.Ptr
}

// Gather implements backend.Backend.
func (b *Backend) Gather(a backend.GatherArgs) {
	const k = "Gather"
	idx := b.gatherIndex(k, a)
	src := b.f32(k, "Src", a.Src, a.Outer*a.Size*a.Inner)
	n := a.Outer * a.Count * a.Inner
	dst, beta, ok := b.dest(k, "Dst", a.Dst, n)
	if !ok || n == 0 {
		return
	}
	b.launch(k, "gidedge_index_select", elementwise(n), ptr(dst), ptr(src), ptr(idx), f32(beta), i32(a.Outer), i32(a.Size), i32(a.Inner), i32(a.Count))
}

// ScatterAdd implements backend.Backend.
func (b *Backend) ScatterAdd(a backend.GatherArgs) {
	const k = "ScatterAdd"
	idx := b.gatherIndex(k, a)
	n := a.Outer * a.Count * a.Inner
	src := b.f32(k, "Src", a.Src, n)
	dst, beta, ok := b.dest(k, "Dst", a.Dst, a.Outer*a.Size*a.Inner)
	if !ok {
		return
	}
	if beta == 0 {
		b.fill(k, dst, a.Outer*a.Size*a.Inner, 0)
	}
	if n == 0 {
		return
	}
	b.launch(k, "gidedge_index_add", elementwise(n), ptr(dst), ptr(src), ptr(idx), i32(a.Outer), i32(a.Size), i32(a.Inner), i32(a.Count))
}

// unaryOps maps the engine's pointwise functions to the kernels' codes.
var unaryOps = map[backend.UnaryOp]int{
	backend.UnaryScale:     kernels.UnaryAffine,
	backend.UnaryExp:       kernels.UnaryExp,
	backend.UnaryLog:       kernels.UnaryLog,
	backend.UnarySqrt:      kernels.UnarySqrt,
	backend.UnaryAbs:       kernels.UnaryAbs,
	backend.UnaryPow:       kernels.UnaryPow,
	backend.UnaryClamp:     kernels.UnaryClamp,
	backend.UnaryReLU:      kernels.UnaryReLU,
	backend.UnaryLeakyReLU: kernels.UnaryLeakyReLU,
	backend.UnarySigmoid:   kernels.UnarySigmoid,
	backend.UnarySiLU:      kernels.UnarySiLU,
	backend.UnaryHardSwish: kernels.UnaryHardSwish,
	backend.UnaryTanh:      kernels.UnaryTanh,
}

func unaryOp(kernel string, op backend.UnaryOp) int {
	code, ok := unaryOps[op]
	if !ok {
		backend.Fail(Name, kernel, "unknown op %d", op)
	}
	return code
}

// Unary implements backend.Backend.
func (b *Backend) Unary(a backend.UnaryArgs) {
	const k = "Unary"
	op := unaryOp(k, a.Op)
	if a.N < 0 {
		backend.Fail(Name, k, "negative length %d", a.N)
	}
	x := b.f32(k, "X", a.X, a.N)
	y := b.f32(k, "Y", a.Y, a.N)
	if a.X == nil || a.Y == nil {
		backend.Fail(Name, k, "X and Y are required")
	}
	if a.N == 0 {
		return
	}
	b.launch(k, "gidedge_unary", elementwise(a.N), ptr(y), ptr(x), i32(op), f32(a.Alpha), f32(a.Beta), i32(a.N))
}

// UnaryBackward implements backend.Backend.
func (b *Backend) UnaryBackward(a backend.UnaryBackwardArgs) {
	const k = "UnaryBackward"
	op := unaryOp(k, a.Op)
	if a.N < 0 {
		backend.Fail(Name, k, "negative length %d", a.N)
	}
	x := b.f32(k, "X", a.X, a.N)
	y := b.f32(k, "Y", a.Y, a.N)
	dy := b.f32(k, "DY", a.DY, a.N)
	dx, beta, ok := b.dest(k, "DX", a.DX, a.N)
	if !ok || a.N == 0 {
		return
	}
	b.launch(k, "gidedge_unary_backward", elementwise(a.N), ptr(dx), ptr(dy), ptr(x), ptr(y), i32(op), f32(a.Alpha), f32(a.Beta), f32(beta), i32(a.N))
}

var binaryOps = map[backend.BinaryOp]int{
	backend.BinaryAdd: kernels.BinaryAdd,
	backend.BinarySub: kernels.BinarySub,
	backend.BinaryMul: kernels.BinaryMul,
	backend.BinaryDiv: kernels.BinaryDiv,
}

// Binary implements backend.Backend.
func (b *Backend) Binary(a backend.BinaryArgs) {
	const k = "Binary"
	op, ok := binaryOps[a.Op]
	if !ok {
		backend.Fail(Name, k, "unknown op %d", a.Op)
	}
	checkShape(k, a.Shape)
	n := numel(a.Shape)
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	dst, beta, _ := b.dest(k, "Dst", a.Dst, n)
	if n == 0 {
		return
	}
	x, xs := b.view(k, "A", a.Shape, a.A)
	y, ys := b.view(k, "B", a.Shape, a.B)
	l := layout(k, a.Shape, backend.DenseStrides(a.Shape), xs, ys)
	b.launch(k, "gidedge_binary", elementwise(n), ptr(dst), ptr(x), ptr(y), i32(op), f32(beta), l.Arg())
}

// Where implements backend.Backend.
func (b *Backend) Where(a backend.WhereArgs) {
	const k = "Where"
	if a.N < 0 {
		backend.Fail(Name, k, "negative length %d", a.N)
	}
	if a.Mask == nil || a.Dst.Buf == nil {
		backend.Fail(Name, k, "Mask and Dst are required")
	}
	mask := b.f32(k, "Mask", a.Mask, a.N)
	x := b.f32(k, "A", a.A, a.N)
	y := b.f32(k, "B", a.B, a.N)
	dst, beta, _ := b.dest(k, "Dst", a.Dst, a.N)
	if a.N == 0 {
		return
	}
	b.launch(k, "gidedge_where", elementwise(a.N), ptr(dst), ptr(mask), ptr(x), ptr(y), f32(0), f32(0), f32(beta), i32(a.N))
}
