package kernels

import (
	"encoding/binary"
	"fmt"

	"github.com/gidedge/gidedge/engine/cuda/driver"
)

// Mirrors of types.h. TestTypesMatchC (package emu) checks sizes and
// values against the C compiler's.
const (
	// Block is the thread count of every kernel with a Barrier (GD_BLOCK).
	Block = 256
	// MaxRank is the highest tensor rank of Layout and Reduce (GD_MAX_RANK).
	MaxRank = 8
	// MaxElements bounds every element count and int argument, so that a
	// grid-stride index never overflows a C int.
	MaxElements = 1<<31 - 1<<27
)

// Unary ops of gidedge_unary (a, b are its two scalar parameters).
const (
	UnaryAffine    = 0 // a·x + b
	UnaryExp       = 1
	UnaryLog       = 2
	UnarySqrt      = 3
	UnaryAbs       = 4
	UnaryReLU      = 5
	UnaryLeakyReLU = 6 // a = slope
	UnarySigmoid   = 7
	UnarySiLU      = 8
	UnaryHardSwish = 9
	UnaryTanh      = 10
	UnaryPow       = 11 // a = exponent
	UnaryClamp     = 12 // [a, b]
	UnaryCount     = 13
)

// Binary ops of gidedge_binary.
const (
	BinaryAdd   = 0
	BinarySub   = 1
	BinaryMul   = 2
	BinaryDiv   = 3
	BinaryMax   = 4
	BinaryMin   = 5
	BinaryCount = 6
)

// Reductions of gidedge_reduce.
const (
	ReduceSum   = 0
	ReduceMax   = 1
	ReduceSumSq = 2
	ReduceCount = 3
)

// Losses of gidedge_pair_loss.
const (
	LossBCELogits = 0
	LossL1        = 1
	LossSmoothL1  = 2 // param = beta
	LossMSE       = 3
	LossCount     = 4
)

// Layout is gd_layout: an index space (row-major over Shape[:Rank]) and
// the element strides of up to three operands over it.
type Layout struct {
	Rank, N int32
	Shape   [MaxRank]int32
	Stride  [3][MaxRank]int32
}

// Reduce is gd_reduce: outputs over the kept dimensions, each reducing the
// reduced dimensions (see types.h).
type Reduce struct {
	KeepRank, RedRank int32
	NKeep, NRed       int32
	KeepShape         [MaxRank]int32
	KeepStride        [MaxRank]int32
	RedShape          [MaxRank]int32
	RedStride         [MaxRank]int32
}

// Conv is gd_conv: one 2-D convolution geometry over N images.
type Conv struct {
	N, C, H, W             int32
	KH, KW, SH, SW, PH, PW int32
	DH, DW                 int32
	OH, OW                 int32
	ImageStride            int32
}

// Pool is gd_pool: pooling windows over independent planes.
type Pool struct {
	Planes, H, W           int32
	KH, KW, SH, SW, PH, PW int32
	OH, OW                 int32
}

// ROI is gd_roi: ROIAlign of Rois regions of an [N, C, H, W] map.
type ROI struct {
	N, C, H, W   int32
	Rois, OH, OW int32
	Sampling     int32
	Aligned      int32
	Scale        float32
}

func binarySize(v any) int { return binary.Size(v) }

func structArg(cType string, v any) driver.Arg {
	b, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		panic(fmt.Sprintf("kernels: packing %s: %v", cType, err)) // fixed-size structs cannot fail
	}
	return driver.Struct(cType, b)
}

// Arg passes the layout by value.
func (l Layout) Arg() driver.Arg { return structArg("gd_layout", l) }

// Arg passes the reduction by value.
func (r Reduce) Arg() driver.Arg { return structArg("gd_reduce", r) }

// Arg passes the convolution geometry by value.
func (c Conv) Arg() driver.Arg { return structArg("gd_conv", c) }

// Arg passes the pooling geometry by value.
func (p Pool) Arg() driver.Arg { return structArg("gd_pool", p) }

// Arg passes the ROIAlign geometry by value.
func (r ROI) Arg() driver.Arg { return structArg("gd_roi", r) }

// Strides returns the row-major element strides of a contiguous shape.
func Strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// NewLayout builds a Layout over shape with one stride list per operand
// (at most three, each as long as shape). A rank-0 shape is one element.
func NewLayout(shape []int, strides ...[]int) (Layout, error) {
	var l Layout
	if len(shape) > MaxRank {
		return l, fmt.Errorf("kernels: shape %v has rank %d, more than %d", shape, len(shape), MaxRank)
	}
	if len(strides) > 3 {
		return l, fmt.Errorf("kernels: %d operands, at most 3", len(strides))
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return l, fmt.Errorf("kernels: shape %v has an empty dimension", shape)
		}
		n *= d
		if n > MaxElements {
			return l, fmt.Errorf("kernels: shape %v has more than %d elements", shape, MaxElements)
		}
	}
	if len(shape) == 0 {
		l.Rank, l.N, l.Shape[0] = 1, 1, 1
		return l, nil
	}
	l.Rank, l.N = int32(len(shape)), int32(n)
	for d, v := range shape {
		l.Shape[d] = int32(v)
	}
	for k, st := range strides {
		if len(st) != len(shape) {
			return l, fmt.Errorf("kernels: operand %d has %d strides for shape %v", k, len(st), shape)
		}
		for d, v := range st {
			if v < 0 || v > MaxElements {
				return l, fmt.Errorf("kernels: operand %d stride %d out of range", k, v)
			}
			l.Stride[k][d] = int32(v)
		}
	}
	return l, nil
}

// NewReduce builds the Reduce that reduces the axes of a tensor of the
// given shape and strides; outputs are numbered row-major over the other
// axes (the layout of SumAxis's result).
func NewReduce(shape, strides []int, axes ...int) (Reduce, error) {
	var r Reduce
	if len(shape) != len(strides) {
		return r, fmt.Errorf("kernels: %d strides for shape %v", len(strides), shape)
	}
	reduced := make([]bool, len(shape))
	for _, a := range axes {
		if a < 0 || a >= len(shape) || reduced[a] {
			return r, fmt.Errorf("kernels: axis %d invalid or repeated for shape %v", a, shape)
		}
		reduced[a] = true
	}
	r.NKeep, r.NRed = 1, 1
	for d, size := range shape {
		if size <= 0 {
			return r, fmt.Errorf("kernels: shape %v has an empty dimension", shape)
		}
		if reduced[d] {
			if r.RedRank == MaxRank {
				return r, fmt.Errorf("kernels: more than %d reduced axes", MaxRank)
			}
			r.RedShape[r.RedRank], r.RedStride[r.RedRank] = int32(size), int32(strides[d])
			r.RedRank++
			r.NRed *= int32(size)
		} else {
			if r.KeepRank == MaxRank {
				return r, fmt.Errorf("kernels: more than %d kept axes", MaxRank)
			}
			r.KeepShape[r.KeepRank], r.KeepStride[r.KeepRank] = int32(size), int32(strides[d])
			r.KeepRank++
			r.NKeep *= int32(size)
		}
		if int64(r.NKeep)*int64(r.NRed) > MaxElements {
			return r, fmt.Errorf("kernels: shape %v has more than %d elements", shape, MaxElements)
		}
	}
	return r, nil
}

// ConvOut is the output size of a convolution or pooling window along one
// axis.
func ConvOut(in, kernel, stride, pad, dilation int) int {
	return (in+2*pad-dilation*(kernel-1)-1)/stride + 1
}
