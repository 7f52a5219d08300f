package kernels_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

func sqrt64(x float64) float64 { return math.Sqrt(x) }

func TestPoolingMatchesEngine(t *testing.T) {
	cases := []engine.PoolOptions{{Kernel: 2, Stride: 2}, {Kernel: 3, Stride: 2, Pad: 1}, {Kernel: 3, Stride: 1, Pad: 1}, {Kernel: 5, Stride: 3, Pad: 2}}
	const n, c, h, w = 2, 3, 9, 7
	forEachDevice(t, func(t *testing.T, d device) {
		for _, o := range cases {
			t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(14, uint64(o.Kernel)))
				x := randn(rng, n*c*h*w, 1)
				oh := kernels.ConvOut(h, o.Kernel, o.Stride, o.Pad, 1)
				ow := kernels.ConvOut(w, o.Kernel, o.Stride, o.Pad, 1)
				g := kernels.Pool{Planes: n * c, H: h, W: w, KH: int32(o.Kernel), KW: int32(o.Kernel), SH: int32(o.Stride), SW: int32(o.Stride),
					PH: int32(o.Pad), PW: int32(o.Pad), OH: int32(oh), OW: int32(ow)}
				ny := n * c * oh * ow
				gy, gx0 := randn(rng, ny, 1), randn(rng, len(x), 1)
				xp, gyp := d.put(t, x), d.put(t, gy)
				for _, kind := range []string{"max", "avg"} {
					f := engine.MaxPool2d
					if kind == "avg" {
						f = engine.AvgPool2d
					}
					want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return f(in[0], o) }, gy, tns(x, n, c, h, w))
					y := d.put(t, make([]float32, ny))
					gx := d.put(t, gx0)
					if kind == "max" {
						arg := d.putInts(t, make([]int32, ny))
						run(t, d, "gidedge_maxpool_forward", small(ny), ptr(y), ptr(arg), ptr(xp), g.Arg())
						run(t, d, "gidedge_maxpool_backward", small(len(x)), ptr(gx), ptr(gyp), ptr(arg), f32(1), g.Arg())
					} else {
						run(t, d, "gidedge_avgpool_forward", small(ny), ptr(y), ptr(xp), g.Arg())
						run(t, d, "gidedge_avgpool_backward", small(len(x)), ptr(gx), ptr(gyp), f32(1), g.Arg())
					}
					near(t, kind+" y", d.get(t, y, ny), want, 1e-6, 1e-6)
					for i := range grads[0] {
						grads[0][i] += gx0[i]
					}
					near(t, kind+" gx", d.get(t, gx, len(x)), grads[0], 1e-5, 1e-5)
				}
			})
		}
	})
}

func TestUpsampleNearestMatchesEngine(t *testing.T) {
	sizes := [][4]int{{3, 4, 6, 8}, {5, 3, 7, 11}, {4, 4, 3, 2}, {3, 5, 10, 5}}
	forEachDevice(t, func(t *testing.T, d device) {
		for _, s := range sizes {
			t.Run(fmt.Sprint(s), func(t *testing.T) {
				h, w, oh, ow := s[0], s[1], s[2], s[3]
				rng := rand.New(rand.NewPCG(15, uint64(oh)))
				const planes = 6
				x, gy := randn(rng, planes*h*w, 1), randn(rng, planes*oh*ow, 1)
				want, grads := oracle(func(in []*engine.Tensor) *engine.Tensor { return engine.UpsampleNearest(in[0], oh, ow) }, gy, tns(x, 2, 3, h, w))
				y := d.put(t, make([]float32, len(gy)))
				run(t, d, "gidedge_upsample_nearest_forward", small(len(gy)), ptr(y), ptr(d.put(t, x)), i32(planes), i32(h), i32(w), i32(oh), i32(ow))
				near(t, "y", d.get(t, y, len(gy)), want, 0, 0)
				gx := d.put(t, make([]float32, len(x)))
				run(t, d, "gidedge_upsample_nearest_backward", small(len(x)), ptr(gx), ptr(d.put(t, gy)), f32(0), i32(planes), i32(h), i32(w), i32(oh), i32(ow))
				near(t, "gx", d.get(t, gx, len(x)), grads[0], 1e-6, 1e-6)
			})
		}
	})
}
