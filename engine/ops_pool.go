package engine

import (
	"math"
)

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

// MaxPool2d takes the maximum over Kernel×Kernel windows of x [N, C, H, W];
// padding counts as −∞.
func MaxPool2d(x *Tensor, opt PoolOptions) *Tensor {
	o := opt.norm()
	check(x.Rank() == 4 && o.Kernel > 0, "MaxPool2d", "input must be NCHW and kernel positive", nil, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh := ConvOutSize(h, o.Kernel, o.Stride, o.Pad, 1)
	ow := ConvOutSize(w, o.Kernel, o.Stride, o.Pad, 1)
	check(oh > 0 && ow > 0, "MaxPool2d", "output would be empty", nil, x)
	out := newResultNoZero([]int{n, c, oh, ow})
	arg := make([]int32, len(out.data))
	be().Parallel(n*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			src := x.data[t*h*w : (t+1)*h*w]
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					best := float32(math.Inf(-1))
					bi := -1
					for ky := 0; ky < o.Kernel; ky++ {
						iy := oy*o.Stride - o.Pad + ky
						if iy < 0 || iy >= h {
							continue
						}
						for kx := 0; kx < o.Kernel; kx++ {
							ix := ox*o.Stride - o.Pad + kx
							if ix < 0 || ix >= w {
								continue
							}
							if v := src[iy*w+ix]; bi < 0 || v > best {
								best, bi = v, iy*w+ix
							}
						}
					}
					oi := t*oh*ow + oy*ow + ox
					out.data[oi] = best
					arg[oi] = int32(bi)
				}
			}
		}
	})
	record(out, "MaxPool2d", func(out *Tensor) {
		g := x.ensureGrad()
		for t := 0; t < n*c; t++ {
			for k := 0; k < oh*ow; k++ {
				oi := t*oh*ow + k
				if arg[oi] >= 0 {
					g[t*h*w+int(arg[oi])] += out.grad[oi]
				}
			}
		}
	}, x)
	return out
}

// AvgPool2d averages Kernel×Kernel windows of x [N, C, H, W]; padded
// positions count in the divisor (PyTorch's count_include_pad=True).
func AvgPool2d(x *Tensor, opt PoolOptions) *Tensor {
	o := opt.norm()
	check(x.Rank() == 4 && o.Kernel > 0, "AvgPool2d", "input must be NCHW and kernel positive", nil, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh := ConvOutSize(h, o.Kernel, o.Stride, o.Pad, 1)
	ow := ConvOutSize(w, o.Kernel, o.Stride, o.Pad, 1)
	check(oh > 0 && ow > 0, "AvgPool2d", "output would be empty", nil, x)
	inv := 1 / float32(o.Kernel*o.Kernel)
	out := newResult([]int{n, c, oh, ow})
	visit := func(t int, fn func(oi, ii int)) {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				oi := t*oh*ow + oy*ow + ox
				for ky := 0; ky < o.Kernel; ky++ {
					iy := oy*o.Stride - o.Pad + ky
					if iy < 0 || iy >= h {
						continue
					}
					for kx := 0; kx < o.Kernel; kx++ {
						ix := ox*o.Stride - o.Pad + kx
						if ix >= 0 && ix < w {
							fn(oi, t*h*w+iy*w+ix)
						}
					}
				}
			}
		}
	}
	be().Parallel(n*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			visit(t, func(oi, ii int) { out.data[oi] += x.data[ii] * inv })
		}
	})
	record(out, "AvgPool2d", func(out *Tensor) {
		g := x.ensureGrad()
		for t := 0; t < n*c; t++ {
			visit(t, func(oi, ii int) { g[ii] += out.grad[oi] * inv })
		}
	}, x)
	return out
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
	check(x.Rank() == 4 && outH > 0 && outW > 0, "UpsampleNearest", "input must be NCHW and target %dx%d positive", []any{outH, outW}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	rowIdx := make([]int, outH)
	colIdx := make([]int, outW)
	for i := range rowIdx {
		rowIdx[i] = min(h-1, i*h/outH)
	}
	for i := range colIdx {
		colIdx[i] = min(w-1, i*w/outW)
	}
	out := newResultNoZero([]int{n, c, outH, outW})
	be().Parallel(n*c, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			src := x.data[t*h*w : (t+1)*h*w]
			dst := out.data[t*outH*outW : (t+1)*outH*outW]
			for oy, iy := range rowIdx {
				row := src[iy*w : (iy+1)*w]
				d := dst[oy*outW : (oy+1)*outW]
				for ox, ix := range colIdx {
					d[ox] = row[ix]
				}
			}
		}
	})
	record(out, "UpsampleNearest", func(out *Tensor) {
		g := x.ensureGrad()
		be().Parallel(n*c, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				gs := g[t*h*w : (t+1)*h*w]
				src := out.grad[t*outH*outW : (t+1)*outH*outW]
				for oy, iy := range rowIdx {
					s := src[oy*outW : (oy+1)*outW]
					for ox, ix := range colIdx {
						gs[iy*w+ix] += s[ox]
					}
				}
			}
		})
	}, x)
	return out
}

// Upsample2x doubles height and width by nearest neighbour.
func Upsample2x(x *Tensor) *Tensor {
	return UpsampleNearest(x, 2*x.Dim(2), 2*x.Dim(3))
}
