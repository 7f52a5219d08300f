package engine

import "github.com/gidedge/gidedge/engine/backend"

// PoolOptions configures MaxPool2d and AvgPool2d; Stride 0 means the kernel size.
type PoolOptions struct {
	Kernel, Stride, Pad int
}

func (o PoolOptions) norm() PoolOptions {
	if o.Stride == 0 {
		o.Stride = o.Kernel
	}
	return o
}

func pool2d(name string, kind backend.PoolKind, x *Tensor, opt PoolOptions) *Tensor {
	o := opt.norm()
	d := device(name, x)
	check(x.Rank() == 4 && o.Kernel > 0 && o.Stride > 0 && o.Pad >= 0, name, "input must be NCHW, kernel and stride positive, padding non-negative", nil, x)
	check(2*o.Pad <= o.Kernel, name, "padding %d exceeds half the kernel %d", []any{o.Pad, o.Kernel}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh := ConvOutSize(h, o.Kernel, o.Stride, o.Pad, 1)
	ow := ConvOutSize(w, o.Kernel, o.Stride, o.Pad, 1)
	check(h > 0 && w > 0 && oh > 0 && ow > 0, name, "output would be empty", nil, x)
	g := backend.PoolGeometry{N: n, C: c, H: h, W: w, Kernel: o.Kernel, Stride: o.Stride, Pad: o.Pad, OutH: oh, OutW: ow}
	out := alloc(d, []int{n, c, oh, ow})
	var arg backend.Buffer
	if kind == backend.PoolMax && recorded(x) {
		arg = d.Alloc(backend.Int32, out.Len())
	}
	d.Pool2d(backend.PoolArgs{Kind: kind, Geometry: g, X: x.buf, Y: out.buf, Argmax: arg})
	record(out, name, func(out *Tensor) {
		d.Pool2dBackward(backend.PoolBackwardArgs{Kind: kind, Geometry: g, DY: out.grad, Argmax: arg, DX: x.gradDest()})
	}, func() {
		if arg != nil {
			d.Free(arg)
		}
	}, x)
	return out
}

// MaxPool2d takes the maximum over Kernel×Kernel windows of x [N, C, H, W];
// padding counts as −∞ and NaN as the largest value.
func MaxPool2d(x *Tensor, opt PoolOptions) *Tensor {
	return pool2d("MaxPool2d", backend.PoolMax, x, opt)
}

// AvgPool2d averages Kernel×Kernel windows of x [N, C, H, W]; padded
// positions count in the divisor (PyTorch's count_include_pad=True).
func AvgPool2d(x *Tensor, opt PoolOptions) *Tensor {
	return pool2d("AvgPool2d", backend.PoolAvg, x, opt)
}

// GlobalAvgPool2d averages each channel plane: [N, C, H, W] → [N, C, 1, 1].
func GlobalAvgPool2d(x *Tensor) *Tensor {
	check(x.Rank() == 4, "GlobalAvgPool2d", "input must be NCHW", nil, x)
	n, c := x.shape[0], x.shape[1]
	return Reshape(MeanAxis(Reshape(x, n, c, -1), 2, false), n, c, 1, 1)
}

// UpsampleNearest resizes x [N, C, H, W] to [N, C, outH, outW] by nearest
// neighbour (source index ⌊dst·in/out⌋, as PyTorch's mode="nearest").
func UpsampleNearest(x *Tensor, outH, outW int) *Tensor {
	d := device("UpsampleNearest", x)
	check(x.Rank() == 4 && outH > 0 && outW > 0, "UpsampleNearest", "input must be NCHW and target %dx%d positive", []any{outH, outW}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	check(h > 0 && w > 0, "UpsampleNearest", "input must not be empty", nil, x)
	g := backend.ResizeGeometry{N: n, C: c, H: h, W: w, OutH: outH, OutW: outW}
	out := alloc(d, []int{n, c, outH, outW})
	d.Upsample(backend.UpsampleArgs{Geometry: g, X: x.buf, Y: out.buf})
	record(out, "UpsampleNearest", func(out *Tensor) {
		d.UpsampleBackward(backend.UpsampleBackwardArgs{Geometry: g, DY: out.grad, DX: x.gradDest()})
	}, nil, x)
	return out
}

// Upsample2x doubles height and width by nearest neighbour.
func Upsample2x(x *Tensor) *Tensor {
	return UpsampleNearest(x, 2*x.Dim(2), 2*x.Dim(3))
}
