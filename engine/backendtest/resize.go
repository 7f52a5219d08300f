package backendtest

import "github.com/gidedge/gidedge/engine/backend"

// testResizeLinear covers bilinear resizing up, down and by odd factors,
// with the axis mappings of ONNX's coordinate modes (half pixel, align
// corners, asymmetric), taps clamped at both borders, and one-pixel inputs
// and outputs.
func testResizeLinear(h *harness) {
	half := func(in, out int) backend.LinearAxis {
		s := float32(in) / float32(out)
		return backend.LinearAxis{Scale: s, Offset: 0.5*s - 0.5}
	}
	corners := func(in, out int) backend.LinearAxis {
		if out == 1 {
			return backend.LinearAxis{}
		}
		return backend.LinearAxis{Scale: float32(in-1) / float32(out-1)}
	}
	asym := func(in, out int) backend.LinearAxis { return backend.LinearAxis{Scale: float32(in) / float32(out)} }
	cases := []struct {
		g    backend.ResizeGeometry
		axes func(in, out int) backend.LinearAxis
	}{
		{backend.ResizeGeometry{N: 2, C: 3, H: 4, W: 5, OutH: 8, OutW: 10}, half},
		{backend.ResizeGeometry{N: 1, C: 2, H: 8, W: 6, OutH: 4, OutW: 3}, half},
		{backend.ResizeGeometry{N: 1, C: 2, H: 5, W: 3, OutH: 7, OutW: 7}, corners},
		{backend.ResizeGeometry{N: 1, C: 1, H: 7, W: 6, OutH: 3, OutW: 4}, asym},
		{backend.ResizeGeometry{N: 3, C: 1, H: 1, W: 1, OutH: 2, OutW: 3}, half},
		{backend.ResizeGeometry{N: 1, C: 2, H: 3, W: 4, OutH: 1, OutW: 1}, corners},
		// An offset far outside the input clamps every tap to the border.
		{backend.ResizeGeometry{N: 1, C: 1, H: 3, W: 3, OutH: 5, OutW: 5}, func(in, out int) backend.LinearAxis {
			return backend.LinearAxis{Scale: 0.5, Offset: -4}
		}},
	}
	for _, tc := range cases {
		g := tc.g
		rows, cols := tc.axes(g.H, g.OutH), tc.axes(g.W, g.OutW)
		nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH*g.OutW
		x := h.random(nx)
		y := h.garbage(ny)
		h.both(func(be backend.Backend, s int) {
			be.ResizeLinear(backend.ResizeLinearArgs{Geometry: g, Rows: rows, Cols: cols, X: x[s], Y: y[s]})
		})
		h.check(name("ResizeLinear %+v rows %+v cols %+v", g, rows, cols), y, elemTol)
		for _, acc := range []bool{false, true} {
			dy := h.random(ny)
			out, dx := h.dest(nx, acc)
			h.both(func(be backend.Backend, s int) {
				be.ResizeLinearBackward(backend.ResizeLinearBackwardArgs{Geometry: g, Rows: rows, Cols: cols, DY: dy[s], DX: dx[s]})
			})
			h.check(name("ResizeLinearBackward %+v accumulate %v", g, acc), out, sumTol(4*ny/max(nx, 1)+4))
		}
	}
}
