package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// LinearTaps returns, for each of out positions along one axis of a
// bilinear resize from in positions, the two input taps and the weight λ
// of the second one, as backend.LinearAxis defines them.
func LinearTaps(a backend.LinearAxis, in, out int) (lo, hi []int, lambda []float32) {
	lo, hi, lambda = make([]int, out), make([]int, out), make([]float32, out)
	top := float32(in - 1)
	for o := range out {
		// The explicit conversion rounds the product, so no platform fuses
		// it with the sum into one FMA: every backend computes the same src.
		src := float32(float32(o)*a.Scale) + a.Offset
		if !(src > 0) { // also catches NaN
			src = 0
		}
		if src > top {
			src = top
		}
		i := int(math.Floor(float64(src)))
		lo[o], hi[o] = i, min(i+1, in-1)
		lambda[o] = src - float32(i)
	}
	return lo, hi, lambda
}

// linearPlan is a checked bilinear resize: its planes and the taps and
// weights of both axes.
type linearPlan struct {
	planes         int
	y0, y1, x0, x1 []int
	ly, lx         []float32
}

func planLinear(kernel string, g backend.ResizeGeometry, rows, cols backend.LinearAxis) linearPlan {
	CheckResize(Name, kernel, g)
	p := linearPlan{planes: g.N * g.C}
	p.y0, p.y1, p.ly = LinearTaps(rows, g.H, g.OutH)
	p.x0, p.x1, p.lx = LinearTaps(cols, g.W, g.OutW)
	return p
}

// ResizeLinear implements backend.Backend.
func (r *Backend) ResizeLinear(a backend.ResizeLinearArgs) {
	const k = "ResizeLinear"
	g := a.Geometry
	p := planLinear(k, g, a.Rows, a.Cols)
	x := Floats(Name, k, a.X, p.planes*g.H*g.W)
	y := Floats(Name, k, a.Y, p.planes*g.OutH*g.OutW)
	y0, y1, ly, x0, x1, lx := p.y0, p.y1, p.ly, p.x0, p.x1, p.lx
	for t := range p.planes {
		in := x[t*g.H*g.W : (t+1)*g.H*g.W]
		for oy := range g.OutH {
			top, bottom := in[y0[oy]*g.W:], in[y1[oy]*g.W:]
			wy := float64(ly[oy])
			for ox := range g.OutW {
				wx := float64(lx[ox])
				upper := (1-wx)*float64(top[x0[ox]]) + wx*float64(top[x1[ox]])
				lower := (1-wx)*float64(bottom[x0[ox]]) + wx*float64(bottom[x1[ox]])
				y[(t*g.OutH+oy)*g.OutW+ox] = float32((1-wy)*upper + wy*lower)
			}
		}
	}
}

// ResizeLinearBackward implements backend.Backend. Contributions to an
// input position add up in float64 before the one write.
func (r *Backend) ResizeLinearBackward(a backend.ResizeLinearBackwardArgs) {
	const k = "ResizeLinearBackward"
	g := a.Geometry
	p := planLinear(k, g, a.Rows, a.Cols)
	dy := Floats(Name, k, a.DY, p.planes*g.OutH*g.OutW)
	if a.DX.Buf == nil {
		return
	}
	dx := Floats(Name, k, a.DX.Buf, p.planes*g.H*g.W)
	y0, y1, ly, x0, x1, lx := p.y0, p.y1, p.ly, p.x0, p.x1, p.lx
	acc := make([]float64, g.H*g.W)
	for t := range p.planes {
		clear(acc)
		for oy := range g.OutH {
			wy := float64(ly[oy])
			top, bottom := y0[oy]*g.W, y1[oy]*g.W
			for ox := range g.OutW {
				v := float64(dy[(t*g.OutH+oy)*g.OutW+ox])
				wx := float64(lx[ox])
				acc[top+x0[ox]] += v * (1 - wy) * (1 - wx)
				acc[top+x1[ox]] += v * (1 - wy) * wx
				acc[bottom+x0[ox]] += v * wy * (1 - wx)
				acc[bottom+x1[ox]] += v * wy * wx
			}
		}
		out := dx[t*g.H*g.W : (t+1)*g.H*g.W]
		for i, v := range acc {
			if a.DX.Accumulate {
				out[i] = float32(float64(out[i]) + v)
			} else {
				out[i] = float32(v)
			}
		}
	}
}
