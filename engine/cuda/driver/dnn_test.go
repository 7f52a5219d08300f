//go:build cgo

package driver_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gidedge/gidedge/engine"
	_ "github.com/gidedge/gidedge/engine/cpu"
	"github.com/gidedge/gidedge/engine/cuda/driver"
)

// TestDNNConvolutionMatchesEngine runs cuDNN's three convolution passes
// (the simulator's reference loops, or real cuDNN on a GPU) against the
// engine's Conv2d forward and backward.
func TestDNNConvolutionMatchesEngine(t *testing.T) {
	c := context(t)
	s := stream(t, c)
	alloc := driver.NewAllocator(c)
	defer alloc.Trim()
	dnn, err := c.DNN(alloc)
	if err != nil {
		t.Fatal(err)
	}
	defer dnn.Close()
	t.Log(dnn.Name())
	cases := []driver.Conv{
		{N: 2, C: 3, H: 7, W: 6, K: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
		{N: 1, C: 4, H: 9, W: 9, K: 6, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilationH: 2, DilationW: 2, Groups: 2},
		{N: 2, C: 5, H: 6, W: 7, K: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 5},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	randn := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64())
		}
		return out
	}
	for _, cv := range cases {
		t.Run(fmt.Sprintf("%+v", cv), func(t *testing.T) {
			if err := cv.Check(); err != nil {
				t.Fatal(err)
			}
			nx, nw, ny := cv.N*cv.C*cv.H*cv.W, cv.K*cv.C/cv.Groups*cv.KH*cv.KW, cv.N*cv.K*cv.OutH()*cv.OutW()
			x, w, gy := randn(nx), randn(nw), randn(ny)
			xt := engine.FromHost(slices.Clone(x), cv.N, cv.C, cv.H, cv.W).SetRequiresGrad(true)
			wt := engine.FromHost(slices.Clone(w), cv.K, cv.C/cv.Groups, cv.KH, cv.KW).SetRequiresGrad(true)
			yt := engine.Conv2d(xt, wt, nil, engine.ConvOptions{Stride: cv.StrideH, Pad: cv.PadH, Dilation: cv.DilationH, Groups: cv.Groups})
			yt.BackwardWith(engine.FromHost(slices.Clone(gy), yt.Shape()...))

			px, pw, py, pgy, pgx, pgw := alloc2(t, c, s, x), alloc2(t, c, s, w), alloc2(t, c, s, make([]float32, ny)), alloc2(t, c, s, gy), alloc2(t, c, s, make([]float32, nx)), alloc2(t, c, s, make([]float32, nw))
			if err := dnn.ConvForward(s, cv, px, pw, py, 0); err != nil {
				t.Fatal(err)
			}
			if err := dnn.ConvBackwardData(s, cv, pw, pgy, pgx, 0); err != nil {
				t.Fatal(err)
			}
			if err := dnn.ConvBackwardFilter(s, cv, px, pgy, pgw, 0); err != nil {
				t.Fatal(err)
			}
			for _, r := range []struct {
				name string
				p    driver.DevicePtr
				want []float32
			}{{"y", py, yt.ToHost()}, {"dx", pgx, xt.GradToHost()}, {"dw", pgw, wt.GradToHost()}} {
				got := make([]float32, len(r.want))
				if err := driver.CopyFromDevice(s, got, r.p); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if math.Abs(float64(got[i]-r.want[i])) > 1e-3*(1+math.Abs(float64(r.want[i]))) {
						t.Fatalf("%s[%d] = %v, want %v", r.name, i, got[i], r.want[i])
					}
				}
			}
		})
	}
}

// alloc2 allocates device memory holding v.
func alloc2(t *testing.T, c *driver.Context, s *driver.Stream, v []float32) driver.DevicePtr {
	p := alloc(t, c, 4*len(v))
	if err := driver.CopyToDevice(s, p, v); err != nil {
		t.Fatal(err)
	}
	return p
}
