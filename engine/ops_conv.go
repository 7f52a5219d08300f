package engine

import "github.com/gidedge/gidedge/engine/backend"

// ConvOptions configures Conv2d. Zero values mean stride 1, no padding,
// dilation 1 and one group.
type ConvOptions struct {
	Stride   int
	Pad      int
	Dilation int
	Groups   int
}

func (o ConvOptions) norm() ConvOptions {
	if o.Stride == 0 {
		o.Stride = 1
	}
	if o.Dilation == 0 {
		o.Dilation = 1
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	return o
}

// ConvOutSize is the output length of a convolution along one axis.
func ConvOutSize(in, kernel, stride, pad, dilation int) int {
	return (in+2*pad-dilation*(kernel-1)-1)/stride + 1
}

// Conv2d convolves x [N, C, H, W] with w [Cout, C/groups, KH, KW] and adds
// bias [Cout] when it is not nil. The result is [N, Cout, OH, OW]. The
// device picks the algorithm (docs/engine.md, "Convolution kernels").
func Conv2d(x, w, bias *Tensor, opt ConvOptions) *Tensor {
	o := opt.norm()
	d := device("Conv2d", x, w, bias)
	check(x.Rank() == 4 && w.Rank() == 4, "Conv2d", "input and weight must be 4-D", nil, x, w)
	n, c, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	cout, cg, kh, kw := w.shape[0], w.shape[1], w.shape[2], w.shape[3]
	check(o.Stride > 0 && o.Dilation > 0 && o.Pad >= 0, "Conv2d", "stride %d, dilation %d and padding %d must be positive, positive and non-negative", []any{o.Stride, o.Dilation, o.Pad}, x, w)
	check(o.Groups > 0 && c%o.Groups == 0 && cout%o.Groups == 0, "Conv2d", "channels %d and %d not divisible by groups %d", []any{c, cout, o.Groups}, x, w)
	check(cg == c/o.Groups, "Conv2d", "weight has %d input channels per group, input gives %d", []any{cg, c / o.Groups}, x, w)
	check(c > 0 && h > 0 && wd > 0 && kh > 0 && kw > 0, "Conv2d", "input and kernel must be non-empty", nil, x, w)
	if bias != nil {
		check(bias.Rank() == 1 && bias.shape[0] == cout, "Conv2d", "bias must be [%d]", []any{cout}, w, bias)
	}
	oh := ConvOutSize(h, kh, o.Stride, o.Pad, o.Dilation)
	ow := ConvOutSize(wd, kw, o.Stride, o.Pad, o.Dilation)
	check(oh > 0 && ow > 0, "Conv2d", "output would be empty (%dx%d)", []any{oh, ow}, x, w)
	g := backend.ConvGeometry{
		N: n, C: c, H: h, W: wd, Cout: cout, KernelH: kh, KernelW: kw,
		StrideH: o.Stride, StrideW: o.Stride, PadH: o.Pad, PadW: o.Pad,
		DilationH: o.Dilation, DilationW: o.Dilation, Groups: o.Groups, OutH: oh, OutW: ow,
	}
	out := alloc(d, []int{n, cout, oh, ow})
	var biasBuf backend.Buffer
	if bias != nil {
		biasBuf = bias.buf
	}
	d.Conv2d(backend.ConvArgs{Geometry: g, X: x.buf, W: w.buf, Bias: biasBuf, Y: out.buf})
	record(out, "Conv2d", func(out *Tensor) {
		a := backend.ConvBackwardArgs{Geometry: g, X: x.buf, W: w.buf, DY: out.grad, DX: x.wantGrad(), DW: w.wantGrad()}
		if bias != nil {
			a.DBias = bias.wantGrad()
		}
		d.Conv2dBackward(a)
	}, nil, withOptional([]*Tensor{x, w}, bias)...)
	return out
}
