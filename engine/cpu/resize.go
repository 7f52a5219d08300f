package cpu

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// resizeTaps are a bilinear resize's source rows and columns with their
// weights, shared by every plane (backend.LinearAxis; ref.LinearTaps
// computes them the one way every backend must).
type resizeTaps struct {
	y0, y1, x0, x1 []int
	ly, lx         []float32
}

func linearTaps(a backend.ResizeGeometry, rows, cols backend.LinearAxis) resizeTaps {
	var t resizeTaps
	t.y0, t.y1, t.ly = ref.LinearTaps(rows, a.H, a.OutH)
	t.x0, t.x1, t.lx = ref.LinearTaps(cols, a.W, a.OutW)
	return t
}

// ResizeLinear implements backend.Backend: planes split across workers,
// each output the float32 blend of its four taps.
func (b *Backend) ResizeLinear(a backend.ResizeLinearArgs) {
	const k = "ResizeLinear"
	g := a.Geometry
	ref.CheckResize(Name, k, g)
	in, out := g.H*g.W, g.OutH*g.OutW
	x, y := floats(k, a.X, g.N*g.C*in), floats(k, a.Y, g.N*g.C*out)
	t := linearTaps(g, a.Rows, a.Cols)
	b.parallel(g.N*g.C, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			src, dst := x[p*in:(p+1)*in], y[p*out:(p+1)*out]
			for oy := range g.OutH {
				top, bottom := src[t.y0[oy]*g.W:], src[t.y1[oy]*g.W:]
				wy := t.ly[oy]
				row := dst[oy*g.OutW : (oy+1)*g.OutW]
				for ox := range row {
					wx := t.lx[ox]
					upper := (1-wx)*top[t.x0[ox]] + wx*top[t.x1[ox]]
					lower := (1-wx)*bottom[t.x0[ox]] + wx*bottom[t.x1[ox]]
					row[ox] = (1-wy)*upper + wy*lower
				}
			}
		}
	})
}

// ResizeLinearBackward implements backend.Backend: each worker scatters
// the gradients of its own planes, so no two workers write one element.
func (b *Backend) ResizeLinearBackward(a backend.ResizeLinearBackwardArgs) {
	const k = "ResizeLinearBackward"
	g := a.Geometry
	ref.CheckResize(Name, k, g)
	in, out := g.H*g.W, g.OutH*g.OutW
	dy := floats(k, a.DY, g.N*g.C*out)
	dx, acc := dest(k, a.DX, g.N*g.C*in)
	if dx == nil {
		return
	}
	t := linearTaps(g, a.Rows, a.Cols)
	b.parallel(g.N*g.C, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			grad, dst := dy[p*out:(p+1)*out], dx[p*in:(p+1)*in]
			if !acc {
				clear(dst)
			}
			for oy := range g.OutH {
				wy := t.ly[oy]
				top, bottom := dst[t.y0[oy]*g.W:], dst[t.y1[oy]*g.W:]
				for ox, v := range grad[oy*g.OutW : (oy+1)*g.OutW] {
					wx := t.lx[ox]
					up, down := v*(1-wy), v*wy
					top[t.x0[ox]] += up * (1 - wx)
					top[t.x1[ox]] += up * wx
					bottom[t.x0[ox]] += down * (1 - wx)
					bottom[t.x1[ox]] += down * wx
				}
			}
		}
	})
}
