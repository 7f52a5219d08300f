package engine

import (
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// Add returns a + b with broadcasting.
func Add(a, b *Tensor) *Tensor { return binary(backend.BinaryAdd, a, b) }

// Sub returns a − b with broadcasting.
func Sub(a, b *Tensor) *Tensor { return binary(backend.BinarySub, a, b) }

// Mul returns a · b elementwise with broadcasting.
func Mul(a, b *Tensor) *Tensor { return binary(backend.BinaryMul, a, b) }

// Div returns a / b elementwise with broadcasting.
func Div(a, b *Tensor) *Tensor { return binary(backend.BinaryDiv, a, b) }

func binary(op backend.BinaryOp, a, b *Tensor) *Tensor {
	name := op.String()
	d := device(name, a, b)
	outShape, ok := broadcastShape(a.shape, b.shape)
	check(ok, name, "shapes do not broadcast", nil, a, b)
	out := alloc(d, outShape)
	d.Binary(backend.BinaryArgs{Op: op, Shape: outShape, A: broadcastView(a, outShape), B: broadcastView(b, outShape), Dst: backend.Dest{Buf: out.buf}})
	record(out, name, func(out *Tensor) {
		g := backend.View{Buf: out.grad}
		if a.requiresGrad {
			switch op {
			case backend.BinaryAdd, backend.BinarySub:
				sumInto(d, a, out.grad, outShape, 1)
			default: // ∂(a·b)/∂a = b, ∂(a/b)/∂a = 1/b
				scaledGrad(d, a, op, g, broadcastView(b, outShape), outShape, 1)
			}
		}
		if b.requiresGrad {
			switch op {
			case backend.BinaryAdd:
				sumInto(d, b, out.grad, outShape, 1)
			case backend.BinarySub:
				sumInto(d, b, out.grad, outShape, -1)
			case backend.BinaryMul:
				scaledGrad(d, b, op, g, broadcastView(a, outShape), outShape, 1)
			case backend.BinaryDiv:
				// ∂(a/b)/∂b = −out/b
				tmp := d.Alloc(backend.Float32, numel(outShape))
				d.Binary(backend.BinaryArgs{Op: backend.BinaryDiv, Shape: outShape, A: g, B: broadcastView(b, outShape), Dst: backend.Dest{Buf: tmp}})
				d.Binary(backend.BinaryArgs{Op: backend.BinaryMul, Shape: outShape, A: backend.View{Buf: tmp}, B: backend.View{Buf: out.buf}, Dst: backend.Dest{Buf: tmp}})
				sumInto(d, b, tmp, outShape, -1)
				d.Free(tmp)
			}
		}
	}, nil, a, b)
	return out
}

// scaledGrad adds (g op factor) reduced to t's shape into t's gradient,
// writing straight into it when t was not broadcast.
func scaledGrad(d backend.Backend, t *Tensor, op backend.BinaryOp, g, factor backend.View, outShape []int, alpha float32) {
	if slices.Equal(t.shape, outShape) {
		d.Binary(backend.BinaryArgs{Op: op, Shape: outShape, A: g, B: factor, Dst: t.gradDest()})
		return
	}
	tmp := d.Alloc(backend.Float32, numel(outShape))
	d.Binary(backend.BinaryArgs{Op: op, Shape: outShape, A: g, B: factor, Dst: backend.Dest{Buf: tmp}})
	sumInto(d, t, tmp, outShape, alpha)
	d.Free(tmp)
}

// unary applies a pointwise kernel op with parameters alpha and beta.
func unary(name string, op backend.UnaryOp, a *Tensor, alpha, beta float32) *Tensor {
	d := device(name, a)
	out := alloc(d, slices.Clone(a.shape))
	d.Unary(backend.UnaryArgs{Op: op, N: a.Len(), X: a.buf, Y: out.buf, Alpha: alpha, Beta: beta})
	record(out, name, func(out *Tensor) {
		d.UnaryBackward(backend.UnaryBackwardArgs{Op: op, N: a.Len(), X: a.buf, Y: out.buf, DY: out.grad, DX: a.gradDest(), Alpha: alpha, Beta: beta})
	}, nil, a)
	return out
}

// AddScalar returns a + s.
func AddScalar(a *Tensor, s float32) *Tensor { return unary("AddScalar", backend.UnaryScale, a, 1, s) }

// MulScalar returns a · s.
func MulScalar(a *Tensor, s float32) *Tensor { return unary("MulScalar", backend.UnaryScale, a, s, 0) }

// Neg returns −a.
func Neg(a *Tensor) *Tensor { return MulScalar(a, -1) }

// Exp returns eˣ.
func Exp(a *Tensor) *Tensor { return unary("Exp", backend.UnaryExp, a, 0, 0) }

// Log returns the natural logarithm.
func Log(a *Tensor) *Tensor { return unary("Log", backend.UnaryLog, a, 0, 0) }

// Sqrt returns √x.
func Sqrt(a *Tensor) *Tensor { return unary("Sqrt", backend.UnarySqrt, a, 0, 0) }

// Abs returns |x|; its derivative at 0 is taken as 0.
func Abs(a *Tensor) *Tensor { return unary("Abs", backend.UnaryAbs, a, 0, 0) }

// Pow returns xᵖ for a constant exponent p.
func Pow(a *Tensor, p float32) *Tensor { return unary("Pow", backend.UnaryPow, a, p, 0) }

// Clamp limits values to [lo, hi]; the gradient is zero outside the range.
func Clamp(a *Tensor, lo, hi float32) *Tensor { return unary("Clamp", backend.UnaryClamp, a, lo, hi) }

// Where selects a where mask is non-zero and b elsewhere. mask has the
// output shape and takes no gradient; a and b must have the mask's shape.
func Where(mask, a, b *Tensor) *Tensor {
	d := device("Where", mask, a, b)
	check(slices.Equal(mask.shape, a.shape) && slices.Equal(a.shape, b.shape), "Where", "mask, a and b must have one shape", nil, mask, a, b)
	out := alloc(d, slices.Clone(a.shape))
	n := a.Len()
	d.Where(backend.WhereArgs{N: n, Mask: mask.buf, A: a.buf, B: b.buf, Dst: backend.Dest{Buf: out.buf}})
	record(out, "Where", func(out *Tensor) {
		if a.requiresGrad {
			d.Where(backend.WhereArgs{N: n, Mask: mask.buf, A: out.grad, Dst: a.gradDest()})
		}
		if b.requiresGrad {
			d.Where(backend.WhereArgs{N: n, Mask: mask.buf, B: out.grad, Dst: b.gradDest()})
		}
	}, nil, a, b)
	return out
}

// MaskedFill returns a with value written where mask is non-zero.
func MaskedFill(a, mask *Tensor, value float32) *Tensor {
	return Where(mask, Full(value, a.shape...), a)
}
