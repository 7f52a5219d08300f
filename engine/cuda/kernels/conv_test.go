package kernels_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

type convCase struct {
	n, c, h, w, k, stride, pad, dil int
}

var convCases = []convCase{
	{2, 3, 7, 9, 3, 1, 1, 1},
	{1, 5, 8, 6, 3, 2, 1, 1},
	{2, 4, 9, 9, 3, 1, 2, 2},
	{1, 2, 5, 7, 1, 1, 0, 1},
	{1, 3, 6, 5, 5, 2, 2, 1},
}

func (c convCase) geometry() kernels.Conv {
	oh := kernels.ConvOut(c.h, c.k, c.stride, c.pad, c.dil)
	ow := kernels.ConvOut(c.w, c.k, c.stride, c.pad, c.dil)
	return kernels.Conv{N: int32(c.n), C: int32(c.c), H: int32(c.h), W: int32(c.w), KH: int32(c.k), KW: int32(c.k),
		SH: int32(c.stride), SW: int32(c.stride), PH: int32(c.pad), PW: int32(c.pad), DH: int32(c.dil), DW: int32(c.dil),
		OH: int32(oh), OW: int32(ow), ImageStride: int32(c.c * c.h * c.w)}
}

func (c convCase) String() string {
	return fmt.Sprintf("n%d c%d %dx%d k%d s%d p%d d%d", c.n, c.c, c.h, c.w, c.k, c.stride, c.pad, c.dil)
}

// im2colReference is the patch matrix of one image [c, h, w] as
// [c·kh·kw, oh·ow] row-major, zeros in the padding: the definition the
// kernel must follow, written as the plainest loops.
func im2colReference(c convCase, oh, ow int, img []float32) []float32 {
	taps := c.k * c.k
	col := make([]float32, c.c*taps*oh*ow)
	for ch := 0; ch < c.c; ch++ {
		for ky := 0; ky < c.k; ky++ {
			for kx := 0; kx < c.k; kx++ {
				row := ch*taps + ky*c.k + kx
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						iy, ix := oy*c.stride-c.pad+ky*c.dil, ox*c.stride-c.pad+kx*c.dil
						if iy >= 0 && iy < c.h && ix >= 0 && ix < c.w {
							col[(row*oh+oy)*ow+ox] = img[(ch*c.h+iy)*c.w+ix]
						}
					}
				}
			}
		}
	}
	return col
}

// col2imReference adds each patch-matrix entry back onto the image pixel
// im2col copied it from (im2col's adjoint).
func col2imReference(c convCase, oh, ow int, col, img []float32) {
	taps := c.k * c.k
	for ch := 0; ch < c.c; ch++ {
		for ky := 0; ky < c.k; ky++ {
			for kx := 0; kx < c.k; kx++ {
				row := ch*taps + ky*c.k + kx
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						iy, ix := oy*c.stride-c.pad+ky*c.dil, ox*c.stride-c.pad+kx*c.dil
						if iy >= 0 && iy < c.h && ix >= 0 && ix < c.w {
							img[(ch*c.h+iy)*c.w+ix] += col[(row*oh+oy)*ow+ox]
						}
					}
				}
			}
		}
	}
}

func TestIm2ColCol2ImMatchReference(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range convCases {
			t.Run(c.String(), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(11, uint64(c.k)))
				g := c.geometry()
				oh, ow := int(g.OH), int(g.OW)
				plane := c.c * c.h * c.w
				img := randn(rng, c.n*plane, 1)
				per := c.c * c.k * c.k * oh * ow
				want := make([]float32, 0, c.n*per)
				for i := 0; i < c.n; i++ {
					want = append(want, im2colReference(c, oh, ow, img[i*plane:(i+1)*plane])...)
				}
				col := d.put(t, make([]float32, len(want)))
				run(t, d, "gidedge_im2col", small(len(want)), ptr(col), ptr(d.put(t, img)), g.Arg())
				near(t, "im2col", d.get(t, col, len(want)), want, 0, 0)

				cols := randn(rng, len(want), 1)
				base := randn(rng, len(img), 1)
				wantImg := append([]float32(nil), base...)
				for i := 0; i < c.n; i++ {
					col2imReference(c, oh, ow, cols[i*per:(i+1)*per], wantImg[i*plane:(i+1)*plane])
				}
				imgp := d.put(t, base)
				run(t, d, "gidedge_col2im", small(len(img)), ptr(imgp), ptr(d.put(t, cols)), f32(1), g.Arg())
				near(t, "col2im", d.get(t, imgp, len(img)), wantImg, 1e-5, 1e-5)
			})
		}
	})
}

func TestDepthwiseMatchesEngine(t *testing.T) {
	forEachDevice(t, func(t *testing.T, d device) {
		for _, c := range convCases {
			t.Run(c.String(), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(12, uint64(c.k)))
				g := c.geometry()
				x, w, b := randn(rng, c.n*c.c*c.h*c.w, 1), randn(rng, c.c*c.k*c.k, 1), randn(rng, c.c, 1)
				ny := c.n * c.c * int(g.OH*g.OW)
				gy := randn(rng, ny, 1)
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor {
					return engine.Conv2d(in[0], in[1], in[2], engine.ConvOptions{Stride: c.stride, Pad: c.pad, Dilation: c.dil, Groups: c.c})
				}, gy, tns(x, c.n, c.c, c.h, c.w), tns(w, c.c, 1, c.k, c.k), tns(b, c.c))
				xp, wp := d.put(t, x), d.put(t, w)
				y := d.put(t, make([]float32, ny))
				run(t, d, "gidedge_depthwise_forward", small(ny), ptr(y), ptr(xp), ptr(wp), ptr(d.put(t, b)), g.Arg())
				near(t, "y", d.get(t, y, ny), want, 1e-5, 1e-5)

				gyp := d.put(t, gy)
				gx := d.put(t, randn(rng, len(x), 1)) // beta 0 overwrites whatever is there
				run(t, d, "gidedge_depthwise_backward_data", small(len(x)), ptr(gx), ptr(gyp), ptr(wp), f32(0), g.Arg())
				near(t, "gx", d.get(t, gx, len(x)), grads[0], 1e-5, 1e-4)
				gw := d.put(t, make([]float32, len(w)))
				run(t, d, "gidedge_depthwise_backward_filter", kernels.PerBlock(len(w)), ptr(gw), ptr(gyp), ptr(xp), f32(0), g.Arg())
				near(t, "gw", d.get(t, gw, len(w)), grads[1], 1e-4, 1e-4)

				// Bias gradient: per-channel sums of gy.
				shape := []int{c.n, c.c, int(g.OH * g.OW)}
				r, _ := kernels.NewReduce(shape, kernels.Strides(shape), 0, 2)
				gb := d.put(t, make([]float32, c.c))
				run(t, d, "gidedge_reduce", kernels.PerBlock(c.c), ptr(gb), null, ptr(gyp), i32(kernels.ReduceSum), f32(1), f32(0), r.Arg())
				near(t, "gb", d.get(t, gb, c.c), grads[2], 1e-4, 1e-4)
			})
		}
	})
}
