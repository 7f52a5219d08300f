package cpu

// The memory-bound kernels in C (loops.c), vectorised by the compiler.
// ISO C (-std=c11) keeps GCC from contracting a·b + c into fused
// multiply-adds, as it does in its GNU dialects, so every vector width
// computes the same numbers as the scalar baseline.

/*
#cgo CFLAGS: -O3 -std=c11
#cgo LDFLAGS: -lm
#include "loops.h"
*/
import "C"

import (
	"unsafe"

	"github.com/gidedge/gidedge/engine/backend"
)

// ptr returns the address of s[0] for C (nil for an empty or nil slice).
func ptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func geom(g planeGeom) C.gd_geom {
	return C.gd_geom{
		h: C.long(g.Height), w: C.long(g.Width), oh: C.long(g.OutH), ow: C.long(g.OutW),
		kh: C.long(g.KernelH), kw: C.long(g.KernelW), sh: C.long(g.StrideH), sw: C.long(g.StrideW),
		ph: C.long(g.PadH), pw: C.long(g.PadW), dh: C.long(g.DilationH), dw: C.long(g.DilationW),
	}
}

// depthwiseForward convolves each channel of x [n, c, H, W] with its own
// filter into out, adding bias (may be nil).
func (b *Backend) depthwiseForward(x, w, bias, out []float32, n, c int, g planeGeom) {
	cg := geom(g)
	b.parallel(n*c, func(lo, hi int) {
		scratch := getBuf(int(C.gd_dw_scratch(cg)))
		C.gd_dw_forward(ptr(x), ptr(w), ptr(bias), ptr(out), C.long(lo), C.long(hi), C.long(c), cg, ptr(scratch))
		putBuf(scratch)
	})
}

// depthwiseBackward computes the input gradient gx (nil: not wanted; added
// to unless overwrite) and the weight gradient gw (nil: not wanted; added
// to unless overwriteW), split across workers by channel so each owns its
// filters' gradients.
func (b *Backend) depthwiseBackward(x, w, dy, gx []float32, overwrite bool, gw []float32, overwriteW bool, n, c int, g planeGeom) {
	if gx == nil && gw == nil {
		return
	}
	cg := geom(g)
	b.parallel(c, func(lo, hi int) {
		scratch := getBuf(int(C.gd_dw_scratch(cg)))
		C.gd_dw_backward(ptr(x), ptr(w), ptr(dy), ptr(gx), cbool(!overwrite), ptr(gw), cbool(!overwriteW),
			C.long(lo), C.long(hi), C.long(n), C.long(c), cg, ptr(scratch))
		putBuf(scratch)
	})
}

// fusedAct is loops.c's code for an activation fused into batch norm.
func fusedAct(op backend.UnaryOp) C.int {
	switch op {
	case backend.UnaryReLU:
		return 1
	case backend.UnaryClamp:
		return 2
	}
	return 0
}

// batchNormTrain normalises x [n, c, hw] with its batch statistics into y,
// applying the activation act, and returns each channel's biased variance;
// mean and invStd receive the statistics used.
func (b *Backend) batchNormTrain(x, y, gamma, beta, mean, invStd []float32, n, c, hw int, eps float32, act backend.UnaryOp, lo, hi float32) []float64 {
	variance := make([]float64, c)
	b.parallel(c, func(c0, c1 int) {
		C.gd_bn_train(ptr(x), ptr(y), ptr(gamma), ptr(beta), C.long(n), C.long(c), C.long(hw), C.long(c0), C.long(c1),
			C.float(eps), (*C.double)(unsafe.Pointer(&variance[0])), ptr(mean), ptr(invStd), fusedAct(act), C.float(lo), C.float(hi))
	})
	return variance
}

// batchNormApply writes y = act(x·scale[ch] + shift[ch]) over [n, c, hw].
func (b *Backend) batchNormApply(x, y, scale, shift []float32, n, c, hw int, act backend.UnaryOp, lo, hi float32) {
	if hw == 0 {
		return
	}
	b.parallel(n*c, func(t0, t1 int) {
		C.gd_bn_apply(ptr(x), ptr(y), ptr(scale), ptr(shift), C.long(t0), C.long(t1), C.long(c), C.long(hw), fusedAct(act), C.float(lo), C.float(hi))
	})
}

// batchNormBackward returns Σ g and Σ g·x̂ per channel, g being dy through
// the fused activation's derivative, and writes the input gradient into gx
// when it is not nil (added to with accumulate).
func (b *Backend) batchNormBackward(a backend.BatchNormBackwardArgs, x, dy, gx []float32, accumulate bool, gamma, beta, mean, invStd []float32) (sumG, sumGX []float64) {
	n, c, hw := a.N, a.C, a.HW
	sumG, sumGX = make([]float64, c), make([]float64, c)
	b.parallel(c, func(c0, c1 int) {
		C.gd_bn_backward(ptr(x), ptr(dy), ptr(gx), cbool(accumulate), ptr(gamma), ptr(beta), ptr(mean), ptr(invStd),
			C.long(n), C.long(c), C.long(hw), C.long(c0), C.long(c1), cbool(a.Training),
			(*C.double)(unsafe.Pointer(&sumG[0])), (*C.double)(unsafe.Pointer(&sumGX[0])), fusedAct(a.Act), C.float(a.ActAlpha), C.float(a.ActBeta))
	})
	return sumG, sumGX
}

// activation runs ReLU or clamp (in place allowed) on element ranges.
func (b *Backend) activation(op backend.UnaryOp, y, x []float32, lo, hi float32) {
	b.parallelRange(len(x), func(s, e int) {
		switch op {
		case backend.UnaryReLU:
			C.gd_relu(ptr(y[s:e]), ptr(x[s:e]), C.long(e-s))
		case backend.UnaryClamp:
			C.gd_clamp(ptr(y[s:e]), ptr(x[s:e]), C.long(e-s), C.float(lo), C.float(hi))
		}
	})
}

// activationGrad is activation's backward pass: ReLU reads its output y,
// clamp its input x.
func (b *Backend) activationGrad(op backend.UnaryOp, dx, dy, x, y []float32, lo, hi float32, accumulate bool) {
	b.parallelRange(len(dy), func(s, e int) {
		switch op {
		case backend.UnaryReLU:
			C.gd_relu_grad(ptr(dx[s:e]), ptr(dy[s:e]), ptr(y[s:e]), C.long(e-s), cbool(accumulate))
		case backend.UnaryClamp:
			C.gd_clamp_grad(ptr(dx[s:e]), ptr(dy[s:e]), ptr(x[s:e]), C.long(e-s), C.float(lo), C.float(hi), cbool(accumulate))
		}
	})
}
