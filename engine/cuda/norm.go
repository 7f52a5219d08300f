package cuda

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/ref"
)

// BatchNorm implements backend.Backend: in training one block per channel
// computes the statistics and updates the running ones, then an
// elementwise kernel normalises.
func (b *Backend) BatchNorm(a backend.BatchNormArgs) {
	const k = "BatchNorm"
	if a.N < 0 || a.C < 0 || a.HW < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d", a.N, a.C, a.HW)
	}
	n := a.N * a.C * a.HW
	x := b.f32(k, "X", a.X, n)
	y := b.f32(k, "Y", a.Y, n)
	gamma := b.f32(k, "Gamma", a.Gamma, a.C)
	beta := b.f32(k, "Beta", a.Beta, a.C)
	rm := b.f32(k, "RunningMean", a.RunningMean, a.C)
	rv := b.f32(k, "RunningVar", a.RunningVar, a.C)
	mean := b.f32(k, "Mean", a.Mean, a.C)
	invStd := b.f32(k, "InvStd", a.InvStd, a.C)
	if min(x, y, gamma, beta, rm, rv, mean, invStd) == 0 && n > 0 {
		backend.Fail(Name, k, "every buffer is required")
	}
	if a.Training && a.N*a.HW < 2 {
		backend.Fail(Name, k, "training needs more than one value per channel, got %d", a.N*a.HW)
	}
	if n == 0 {
		return
	}
	if !a.Training {
		b.launch(k, "gidedge_bn_forward_eval", elementwise(n), ptr(y), ptr(mean), ptr(invStd), ptr(x), ptr(rm), ptr(rv), ptr(gamma), ptr(beta), f32(a.Eps), i32(a.N), i32(a.C), i32(a.HW))
		return
	}
	b.launch(k, "gidedge_bn_stats", kernels.PerBlock(a.C), ptr(mean), ptr(invStd), ptr(rm), ptr(rv), ptr(x), f32(a.Eps), f32(a.Momentum), i32(a.N), i32(a.C), i32(a.HW))
	b.launch(k, "gidedge_bn_forward", elementwise(n), ptr(y), ptr(x), ptr(mean), ptr(invStd), ptr(gamma), ptr(beta), i32(a.N), i32(a.C), i32(a.HW))
}

// BatchNormBackward implements backend.Backend.
func (b *Backend) BatchNormBackward(a backend.BatchNormBackwardArgs) {
	const k = "BatchNormBackward"
	if a.N < 0 || a.C < 0 || a.HW < 0 {
		backend.Fail(Name, k, "negative geometry %d×%d×%d", a.N, a.C, a.HW)
	}
	n := a.N * a.C * a.HW
	x := b.f32(k, "X", a.X, n)
	gamma := b.f32(k, "Gamma", a.Gamma, a.C)
	dy := b.f32(k, "DY", a.DY, n)
	mean := b.f32(k, "Mean", a.Mean, a.C)
	invStd := b.f32(k, "InvStd", a.InvStd, a.C)
	dx, betaX, wantX := b.dest(k, "DX", a.DX, n)
	dg, betaG, wantG := b.dest(k, "DGamma", a.DGamma, a.C)
	db, betaB, wantB := b.dest(k, "DBeta", a.DBeta, a.C)
	if a.C == 0 {
		return
	}
	if min(x, gamma, dy, mean, invStd) == 0 && n > 0 {
		backend.Fail(Name, k, "X, Gamma, DY, Mean and InvStd are required")
	}
	if n == 0 {
		for _, d := range []struct {
			p    driver.DevicePtr
			beta float32
			want bool
		}{{dg, betaG, wantG}, {db, betaB, wantB}} {
			if d.want && d.beta == 0 {
				b.fill(k, d.p, a.C, 0)
			}
		}
		return
	}
	// The per-channel sums (β's and γ's gradients) go straight into the
	// destinations when they are overwritten and wanted, else into scratch.
	needSums := wantG || wantB || (wantX && a.Training)
	if !needSums && !wantX {
		return
	}
	var sumG, sumGX driver.DevicePtr
	if needSums {
		var scratch *Buffer
		sumG, sumGX = db, dg
		if !wantB || betaB != 0 || !wantG || betaG != 0 {
			scratch = b.Alloc(backend.Float32, 2*a.C).(*Buffer)
			defer b.Free(scratch)
			sumG, sumGX = scratch.mem.Ptr, at(scratch.mem.Ptr, a.C)
		}
		b.launch(k, "gidedge_bn_backward_reduce", kernels.PerBlock(a.C), ptr(sumG), ptr(sumGX), ptr(dy), ptr(x), ptr(mean), ptr(invStd), i32(a.N), i32(a.C), i32(a.HW))
		if scratch != nil {
			if wantB {
				b.launch(k, "gidedge_copy", elementwise(a.C), ptr(db), ptr(sumG), f32(betaB), i32(a.C))
			}
			if wantG {
				b.launch(k, "gidedge_copy", elementwise(a.C), ptr(dg), ptr(sumGX), f32(betaG), i32(a.C))
			}
		}
	}
	if wantX {
		b.launch(k, "gidedge_bn_backward_data", elementwise(n), ptr(dx), ptr(dy), ptr(x), ptr(mean), ptr(invStd), ptr(gamma), ptr(sumG), ptr(sumGX), i32(boolInt(a.Training)), f32(betaX), i32(a.N), i32(a.C), i32(a.HW))
	}
}

// pool is the kernels' geometry of a checked pooling.
func pool(k string, g backend.PoolGeometry) kernels.Pool {
	ref.CheckPool(Name, k, g)
	return kernels.Pool{Planes: int32(g.N * g.C), H: int32(g.H), W: int32(g.W),
		KH: int32(g.Kernel), KW: int32(g.Kernel), SH: int32(g.Stride), SW: int32(g.Stride), PH: int32(g.Pad), PW: int32(g.Pad),
		OH: int32(g.OutH), OW: int32(g.OutW)}
}

// Pool2d implements backend.Backend.
func (b *Backend) Pool2d(a backend.PoolArgs) {
	const k = "Pool2d"
	g := a.Geometry
	p := pool(k, g)
	nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH*g.OutW
	x := b.f32(k, "X", a.X, nx)
	y := b.f32(k, "Y", a.Y, ny)
	if a.X == nil || a.Y == nil {
		backend.Fail(Name, k, "X and Y are required")
	}
	switch a.Kind {
	case backend.PoolMax:
		var arg driver.DevicePtr
		if a.Argmax != nil {
			ab := b.buffer(k, "Argmax", a.Argmax, backend.Int32, ny)
			ab.setBounds(-1, int32(g.H*g.W-1))
			arg = ab.mem.Ptr
		}
		if ny > 0 {
			b.launch(k, "gidedge_maxpool_forward", elementwise(ny), ptr(y), ptr(arg), ptr(x), p.Arg())
		}
	case backend.PoolAvg:
		if ny > 0 {
			b.launch(k, "gidedge_avgpool_forward", elementwise(ny), ptr(y), ptr(x), p.Arg())
		}
	default:
		backend.Fail(Name, k, "unknown pooling %d", a.Kind)
	}
}

// Pool2dBackward implements backend.Backend: one thread per input element
// gathers the windows that read it (no atomics).
func (b *Backend) Pool2dBackward(a backend.PoolBackwardArgs) {
	const k = "Pool2dBackward"
	g := a.Geometry
	p := pool(k, g)
	nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH*g.OutW
	dy := b.f32(k, "DY", a.DY, ny)
	dx, beta, ok := b.dest(k, "DX", a.DX, nx)
	switch a.Kind {
	case backend.PoolMax:
		if a.Argmax == nil {
			backend.Fail(Name, k, "max pooling's backward pass needs Argmax")
		}
		arg := b.i32(k, "Argmax", a.Argmax, ny)
		if ok && nx > 0 {
			b.launch(k, "gidedge_maxpool_backward", elementwise(nx), ptr(dx), ptr(dy), ptr(arg), f32(beta), p.Arg())
		}
	case backend.PoolAvg:
		if ok && nx > 0 {
			b.launch(k, "gidedge_avgpool_backward", elementwise(nx), ptr(dx), ptr(dy), f32(beta), p.Arg())
		}
	default:
		backend.Fail(Name, k, "unknown pooling %d", a.Kind)
	}
}

// Upsample implements backend.Backend.
func (b *Backend) Upsample(a backend.UpsampleArgs) {
	const k = "Upsample"
	g := a.Geometry
	ref.CheckResize(Name, k, g)
	planes := g.N * g.C
	x := b.f32(k, "X", a.X, planes*g.H*g.W)
	y := b.f32(k, "Y", a.Y, planes*g.OutH*g.OutW)
	if n := planes * g.OutH * g.OutW; n > 0 {
		b.launch(k, "gidedge_upsample_nearest_forward", elementwise(n), ptr(y), ptr(x), i32(planes), i32(g.H), i32(g.W), i32(g.OutH), i32(g.OutW))
	}
}

// UpsampleBackward implements backend.Backend.
func (b *Backend) UpsampleBackward(a backend.UpsampleBackwardArgs) {
	const k = "UpsampleBackward"
	g := a.Geometry
	ref.CheckResize(Name, k, g)
	planes := g.N * g.C
	dy := b.f32(k, "DY", a.DY, planes*g.OutH*g.OutW)
	dx, beta, ok := b.dest(k, "DX", a.DX, planes*g.H*g.W)
	if n := planes * g.H * g.W; ok && n > 0 {
		b.launch(k, "gidedge_upsample_nearest_backward", elementwise(n), ptr(dx), ptr(dy), f32(beta), i32(planes), i32(g.H), i32(g.W), i32(g.OutH), i32(g.OutW))
	}
}

// ResizeLinear implements backend.Backend: each output computes its taps
// from the axes' scale and offset, as ref.LinearTaps does.
func (b *Backend) ResizeLinear(a backend.ResizeLinearArgs) {
	const k = "ResizeLinear"
	g := a.Geometry
	ref.CheckResize(Name, k, g)
	planes := g.N * g.C
	x := b.f32(k, "X", a.X, planes*g.H*g.W)
	y := b.f32(k, "Y", a.Y, planes*g.OutH*g.OutW)
	if n := planes * g.OutH * g.OutW; n > 0 {
		b.launch(k, "gidedge_resize_linear_forward", elementwise(n), append([]driver.Arg{ptr(y), ptr(x)}, resizeArgs(planes, g, a.Rows, a.Cols)...)...)
	}
}

// ResizeLinearBackward implements backend.Backend: each output gradient is
// added to its four inputs atomically (as ROIAlign's backward does), after
// DX is zeroed when it is overwritten.
func (b *Backend) ResizeLinearBackward(a backend.ResizeLinearBackwardArgs) {
	const k = "ResizeLinearBackward"
	g := a.Geometry
	ref.CheckResize(Name, k, g)
	planes := g.N * g.C
	ny, nx := planes*g.OutH*g.OutW, planes*g.H*g.W
	dy := b.f32(k, "DY", a.DY, ny)
	dx, beta, ok := b.dest(k, "DX", a.DX, nx)
	if !ok {
		return
	}
	if beta == 0 {
		b.fill(k, dx, nx, 0)
	}
	if ny > 0 {
		b.launch(k, "gidedge_resize_linear_backward", elementwise(ny), append([]driver.Arg{ptr(dx), ptr(dy)}, resizeArgs(planes, g, a.Rows, a.Cols)...)...)
	}
}

// resizeArgs are the bilinear resize kernels' arguments after their two
// buffers: the geometry and both axes' scale and offset.
func resizeArgs(planes int, g backend.ResizeGeometry, rows, cols backend.LinearAxis) []driver.Arg {
	return []driver.Arg{i32(planes), i32(g.H), i32(g.W), i32(g.OutH), i32(g.OutW),
		f32(rows.Scale), f32(rows.Offset), f32(cols.Scale), f32(cols.Offset)}
}
