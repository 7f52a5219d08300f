package cpu

import "github.com/gidedge/gidedge/engine/backend"

// ResizeLinear implements backend.Backend: the reference kernel on ranges
// of planes across workers.
func (b *Backend) ResizeLinear(a backend.ResizeLinearArgs) {
	const k = "ResizeLinear"
	g := a.Geometry
	in, out := g.H*g.W, g.OutH*g.OutW
	x, y := floats(k, a.X, g.N*g.C*in), floats(k, a.Y, g.N*g.C*out)
	b.parallel(g.N*g.C, func(lo, hi int) {
		sub := a
		sub.Geometry.N, sub.Geometry.C = 1, hi-lo
		sub.X, sub.Y = span(x, in, lo, hi), span(y, out, lo, hi)
		b.ref.ResizeLinear(sub)
	})
}

// ResizeLinearBackward implements backend.Backend: the reference kernel on
// ranges of planes across workers (each plane's gradient is its own).
func (b *Backend) ResizeLinearBackward(a backend.ResizeLinearBackwardArgs) {
	const k = "ResizeLinearBackward"
	g := a.Geometry
	in, out := g.H*g.W, g.OutH*g.OutW
	dy := floats(k, a.DY, g.N*g.C*out)
	dx, acc := dest(k, a.DX, g.N*g.C*in)
	if dx == nil {
		return
	}
	b.parallel(g.N*g.C, func(lo, hi int) {
		sub := a
		sub.Geometry.N, sub.Geometry.C = 1, hi-lo
		sub.DY, sub.DX = span(dy, out, lo, hi), spanDest(dx, acc, in, lo, hi)
		b.ref.ResizeLinearBackward(sub)
	})
}
