package cuda

import (
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
	"github.com/gidedge/gidedge/engine/ref"
)

// pairLosses maps the elementwise losses to gidedge_pair_loss's codes.
var pairLosses = map[backend.LossOp]int{
	backend.LossBCEWithLogits: kernels.LossBCELogits,
	backend.LossL1:            kernels.LossL1,
	backend.LossSmoothL1:      kernels.LossSmoothL1,
	backend.LossMSE:           kernels.LossMSE,
}

// labels checks the Int32 labels of a cross-entropy: each below classes
// (negative labels are ignored rows).
func (b *Backend) labels(k string, buf backend.Buffer, n, classes int) driver.DevicePtr {
	x := b.buffer(k, "Target", buf, backend.Int32, n)
	if n > 0 && (!x.bounded || int(x.hi) >= classes) {
		if !x.bounded {
			backend.Fail(Name, k, "the label buffer holds values the backend cannot bound (not uploaded with FromHostInt32)")
		}
		backend.Fail(Name, k, "a label is %d, outside [0, %d)", x.hi, classes)
	}
	return x.mem.Ptr
}

// Loss implements backend.Backend.
func (b *Backend) Loss(a backend.LossArgs) {
	const k = "Loss"
	nx, nt, isLabels := ref.LossSizes(Name, k, a.Op, a.N, a.Classes)
	x := b.f32(k, "X", a.X, nx)
	y := b.f32(k, "Y", a.Y, a.N)
	var t driver.DevicePtr
	if isLabels {
		t = b.labels(k, a.Target, a.N, a.Classes)
	} else {
		t = b.f32(k, "Target", a.Target, nt)
	}
	if a.N == 0 {
		return
	}
	if x == 0 || y == 0 || t == 0 {
		backend.Fail(Name, k, "X, Target and Y are required")
	}
	switch a.Op {
	case backend.LossCrossEntropy:
		logz := b.Alloc(backend.Float32, a.N).(*Buffer)
		defer b.Free(logz)
		b.launch(k, "gidedge_cross_entropy", kernels.PerBlock(a.N), ptr(y), ptr(logz.mem.Ptr), ptr(x), ptr(t), i32(a.N), i32(a.Classes))
	case backend.LossGIoU:
		b.launch(k, "gidedge_giou_forward", elementwise(a.N), ptr(y), ptr(x), ptr(t), i32(a.N))
	case backend.LossSigmoidFocal:
		b.launch(k, "gidedge_sigmoid_focal_forward", elementwise(a.N), ptr(y), ptr(x), ptr(t), f32(a.Alpha), f32(a.Gamma), i32(a.N))
	default:
		op, ok := pairLosses[a.Op]
		if !ok {
			backend.Fail(Name, k, "unknown loss %d", a.Op)
		}
		b.launch(k, "gidedge_pair_loss", elementwise(a.N), ptr(y), ptr(x), ptr(t), i32(op), f32(a.Beta), i32(a.N))
	}
}

// LossBackward implements backend.Backend.
func (b *Backend) LossBackward(a backend.LossBackwardArgs) {
	const k = "LossBackward"
	nx, nt, isLabels := ref.LossSizes(Name, k, a.Op, a.N, a.Classes)
	x := b.f32(k, "X", a.X, nx)
	dy := b.f32(k, "DY", a.DY, a.N)
	var t driver.DevicePtr
	if isLabels {
		t = b.labels(k, a.Target, a.N, a.Classes)
	} else {
		t = b.f32(k, "Target", a.Target, nt)
	}
	dx, betaX, wantX := b.dest(k, "DX", a.DX, nx)
	dt, betaT, wantT := b.dest(k, "DTarget", a.DTarget, nt)
	if a.N == 0 || (!wantX && !wantT) {
		return
	}
	if x == 0 || dy == 0 || t == 0 {
		backend.Fail(Name, k, "X, Target and DY are required")
	}
	// Targets of these losses take no gradient: a wanted one is zero.
	if (isLabels || a.Op == backend.LossSigmoidFocal) && wantT {
		if isLabels {
			backend.Fail(Name, k, "cross-entropy labels take no gradient")
		}
		if betaT == 0 {
			b.fill(k, dt, nt, 0)
		}
		wantT = false
	}
	switch a.Op {
	case backend.LossCrossEntropy:
		if !wantX {
			return
		}
		scratch := b.Alloc(backend.Float32, 2*a.N).(*Buffer)
		defer b.Free(scratch)
		loss, logz := scratch.mem.Ptr, at(scratch.mem.Ptr, a.N)
		b.launch(k, "gidedge_cross_entropy", kernels.PerBlock(a.N), ptr(loss), ptr(logz), ptr(x), ptr(t), i32(a.N), i32(a.Classes))
		b.launch(k, "gidedge_cross_entropy_backward", elementwise(nx), ptr(dx), ptr(dy), ptr(x), ptr(logz), ptr(t), f32(betaX), i32(a.N), i32(a.Classes))
	case backend.LossSigmoidFocal:
		if wantX {
			b.launch(k, "gidedge_sigmoid_focal_backward", elementwise(a.N), ptr(dx), ptr(dy), ptr(x), ptr(t), f32(a.Alpha), f32(a.Gamma), f32(betaX), i32(a.N))
		}
	case backend.LossGIoU:
		b.pairBackward(dx, betaX, wantX, dt, betaT, wantT, func(gx, gt driver.DevicePtr, beta float32) {
			b.launch(k, "gidedge_giou_backward", elementwise(a.N), ptr(gx), ptr(gt), ptr(dy), ptr(x), ptr(t), f32(beta), i32(a.N))
		})
	default:
		op, ok := pairLosses[a.Op]
		if !ok {
			backend.Fail(Name, k, "unknown loss %d", a.Op)
		}
		b.pairBackward(dx, betaX, wantX, dt, betaT, wantT, func(gx, gt driver.DevicePtr, beta float32) {
			b.launch(k, "gidedge_pair_loss_backward", elementwise(a.N), ptr(gx), ptr(gt), ptr(dy), ptr(x), ptr(t), i32(op), f32(a.Beta), f32(beta), i32(a.N))
		})
	}
}

// pairBackward runs a kernel that writes both gradients of a loss with one
// beta: once when the two destinations agree on accumulating, else once
// per destination.
func (b *Backend) pairBackward(dx driver.DevicePtr, betaX float32, wantX bool, dt driver.DevicePtr, betaT float32, wantT bool, run func(gx, gt driver.DevicePtr, beta float32)) {
	switch {
	case wantX && wantT && betaX == betaT:
		run(dx, dt, betaX)
	default:
		if wantX {
			run(dx, 0, betaX)
		}
		if wantT {
			run(0, dt, betaT)
		}
	}
}

// PairwiseDistance implements backend.Backend.
func (b *Backend) PairwiseDistance(a backend.PairwiseDistanceArgs) {
	const k = "PairwiseDistance"
	if a.K < 0 || a.D < 0 {
		backend.Fail(Name, k, "negative size %d×%d", a.K, a.D)
	}
	x := b.f32(k, "X", a.X, a.K*a.D)
	y := b.f32(k, "Y", a.Y, a.K*a.K)
	if a.K == 0 {
		return
	}
	if a.D == 0 {
		b.fill(k, y, a.K*a.K, 0)
		return
	}
	b.launch(k, "gidedge_pairwise_distance", elementwise(a.K*a.K), ptr(y), ptr(x), i32(a.K), i32(a.D))
}

// PairwiseDistanceBackward implements backend.Backend.
func (b *Backend) PairwiseDistanceBackward(a backend.PairwiseDistanceBackwardArgs) {
	const k = "PairwiseDistanceBackward"
	if a.K < 0 || a.D < 0 {
		backend.Fail(Name, k, "negative size %d×%d", a.K, a.D)
	}
	x := b.f32(k, "X", a.X, a.K*a.D)
	y := b.f32(k, "Y", a.Y, a.K*a.K)
	dy := b.f32(k, "DY", a.DY, a.K*a.K)
	dx, beta, ok := b.dest(k, "DX", a.DX, a.K*a.D)
	if !ok || a.K*a.D == 0 {
		return
	}
	b.launch(k, "gidedge_pairwise_distance_backward", elementwise(a.K*a.D), ptr(dx), ptr(x), ptr(y), ptr(dy), f32(beta), i32(a.K), i32(a.D))
}

// roi is the kernels' geometry of a checked ROIAlign.
func roi(k string, g backend.ROIAlignGeometry) kernels.ROI {
	ref.CheckROI(Name, k, g)
	return kernels.ROI{N: int32(g.N), C: int32(g.C), H: int32(g.H), W: int32(g.W),
		Rois: int32(g.Regions), OH: int32(g.OutH), OW: int32(g.OutW),
		Sampling: int32(g.SamplingRatio), Aligned: int32(boolInt(g.Aligned)), Scale: g.SpatialScale}
}

// ROIAlign implements backend.Backend. The engine checks the regions'
// batch indices; a region with an invalid one would pool zeros.
func (b *Backend) ROIAlign(a backend.ROIAlignArgs) {
	const k = "ROIAlign"
	g := a.Geometry
	r := roi(k, g)
	x := b.f32(k, "X", a.X, g.N*g.C*g.H*g.W)
	rois := b.f32(k, "ROIs", a.ROIs, 5*g.Regions)
	n := g.Regions * g.C * g.OutH * g.OutW
	y := b.f32(k, "Y", a.Y, n)
	if n == 0 {
		return
	}
	b.launch(k, "gidedge_roi_align_forward", elementwise(n), ptr(y), ptr(x), ptr(rois), r.Arg())
}

// ROIAlignBackward implements backend.Backend (atomics, as torchvision's
// CUDA kernel: overlapping regions add into the same pixels).
func (b *Backend) ROIAlignBackward(a backend.ROIAlignBackwardArgs) {
	const k = "ROIAlignBackward"
	g := a.Geometry
	r := roi(k, g)
	rois := b.f32(k, "ROIs", a.ROIs, 5*g.Regions)
	n := g.Regions * g.C * g.OutH * g.OutW
	dy := b.f32(k, "DY", a.DY, n)
	nx := g.N * g.C * g.H * g.W
	dx, beta, ok := b.dest(k, "DX", a.DX, nx)
	if !ok {
		return
	}
	if beta == 0 {
		b.fill(k, dx, nx, 0)
	}
	if n == 0 {
		return
	}
	b.launch(k, "gidedge_roi_align_backward", elementwise(n), ptr(dx), ptr(dy), ptr(rois), r.Arg())
}

// AdamW implements backend.Backend.
func (b *Backend) AdamW(a backend.AdamWArgs) {
	const k = "AdamW"
	if a.N < 0 {
		backend.Fail(Name, k, "negative length %d", a.N)
	}
	p := b.f32(k, "Param", a.Param, a.N)
	g := b.f32(k, "Grad", a.Grad, a.N)
	m := b.f32(k, "ExpAvg", a.ExpAvg, a.N)
	v := b.f32(k, "ExpAvgSq", a.ExpAvgSq, a.N)
	if a.N == 0 {
		return
	}
	if min(p, g, m, v) == 0 {
		backend.Fail(Name, k, "every buffer is required")
	}
	b.launch(k, "gidedge_adamw", elementwise(a.N), ptr(p), ptr(m), ptr(v), ptr(g), f32(a.Shrink), f32(a.Beta1), f32(a.Beta2), f32(a.StepSize), f32(a.InvSqrtBC2), f32(a.Eps), i32(a.N))
}

// SGD implements backend.Backend.
func (b *Backend) SGD(a backend.SGDArgs) {
	const k = "SGD"
	if a.N < 0 {
		backend.Fail(Name, k, "negative length %d", a.N)
	}
	p := b.f32(k, "Param", a.Param, a.N)
	g := b.f32(k, "Grad", a.Grad, a.N)
	var vel driver.DevicePtr
	if a.Momentum != 0 {
		vel = b.f32(k, "Velocity", a.Velocity, a.N)
		if vel == 0 && a.N > 0 {
			backend.Fail(Name, k, "momentum needs a Velocity buffer")
		}
	}
	if a.N == 0 {
		return
	}
	if p == 0 || g == 0 {
		backend.Fail(Name, k, "Param and Grad are required")
	}
	b.launch(k, "gidedge_sgd", elementwise(a.N), ptr(p), ptr(vel), ptr(g), f32(a.LR), f32(a.Momentum), f32(a.WeightDecay), i32(boolInt(a.Nesterov)), i32(a.N))
}
