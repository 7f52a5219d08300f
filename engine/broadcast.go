package engine

import (
	"slices"

	"github.com/gidedge/gidedge/engine/backend"
)

// broadcastShape returns the NumPy-style broadcast of a and b, or ok=false.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, false
		}
	}
	return out, true
}

// broadcastView addresses t broadcast to the shape out.
func broadcastView(t *Tensor, out []int) backend.View {
	if slices.Equal(t.shape, out) {
		return backend.View{Buf: t.buf}
	}
	return backend.View{Buf: t.buf, Strides: backend.BroadcastStrides(t.shape, out)}
}

// reduceToAxes marks the dimensions of out that a tensor of shape in was
// broadcast along: summing over them is the adjoint of broadcasting.
func reduceToAxes(in, out []int) []bool {
	axes := make([]bool, len(out))
	for i := range out {
		j := len(in) - len(out) + i
		axes[i] = out[i] != 1 && (j < 0 || in[j] == 1)
	}
	return axes
}

// sumInto adds alpha·src, a gradient of shape out, reduced to t's shape
// into t's gradient.
func sumInto(d backend.Backend, t *Tensor, src backend.Buffer, out []int, alpha float32) {
	d.Reduce(backend.ReduceArgs{Op: backend.ReduceSum, Shape: out, Axes: reduceToAxes(t.shape, out), Src: src, Dst: t.gradDest(), Alpha: alpha})
}
