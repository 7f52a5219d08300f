package cpu

/*
#include "loops.h"
*/
import "C"

import "github.com/gidedge/gidedge/engine/backend"

// Reduce implements backend.Backend. Reductions over one contiguous block
// of axes (sums over an axis, over everything, squared norms, and the
// adjoint of a broadcast that added nothing: no axis) run as
// [outer, size, inner] loops in C (loops.c): whole rows in double from
// float lanes, split across workers when there are few rows (partial sums
// added in worker order); columns in float, split by column. Other
// patterns (several separate blocks, as the adjoint of a broadcast over
// both ends) and maxima go to the reference kernel.
func (b *Backend) Reduce(a backend.ReduceArgs) {
	const k = "Reduce"
	outer, size, inner, ok := reduceBlock(a.Shape, a.Axes)
	if !ok || a.Op == backend.ReduceMax {
		b.ref.Reduce(a)
		return
	}
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	src := floats(k, a.Src, outer*size*inner)
	dst, acc := dest(k, a.Dst, outer*inner)
	square := cbool(a.Op == backend.ReduceSumSquares)
	write := func(o int, v float64) {
		if acc {
			dst[o] += float32(float64(a.Alpha) * v)
		} else {
			dst[o] = float32(float64(a.Alpha) * v)
		}
	}
	switch {
	case outer*inner == 0:
		return
	case size == 0:
		for o := range dst {
			write(o, 0)
		}
	case size == 1 && a.Op == backend.ReduceSum:
		// Nothing is reduced: a scaled copy.
		b.parallelRange(len(dst), func(lo, hi int) {
			C.gd_scale(ptr(dst[lo:hi]), ptr(src[lo:hi]), C.long(hi-lo), C.float(a.Alpha), cbool(acc))
		})
	case inner == 1 && outer >= b.workers:
		b.parallel(outer, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				write(o, float64(C.gd_sum(ptr(src[o*size:(o+1)*size]), C.long(size), square)))
			}
		})
	case inner == 1:
		// Few long rows (a whole-tensor sum, a squared norm): each row is
		// split across the workers.
		for o := 0; o < outer; o++ {
			row := src[o*size : (o+1)*size]
			parts := make([]float64, b.workers)
			per := (size + b.workers - 1) / b.workers
			b.parallel(b.workers, func(lo, hi int) {
				for w := lo; w < hi; w++ {
					s, e := min(size, w*per), min(size, (w+1)*per)
					if s < e {
						parts[w] = float64(C.gd_sum(ptr(row[s:e]), C.long(e-s), square))
					}
				}
			})
			var total float64
			for _, p := range parts {
				total += p
			}
			write(o, total)
		}
	default:
		for o := 0; o < outer; o++ {
			block, out := src[o*size*inner:(o+1)*size*inner], dst[o*inner:(o+1)*inner]
			b.parallelColumns(inner, func(c0, c1 int) {
				C.gd_colsum(ptr(block), ptr(out), C.long(size), C.long(inner), C.long(c0), C.long(c1), C.float(a.Alpha), cbool(acc), square)
			})
		}
	}
}

// reduceBlock views shape as [outer, size, inner] when the axes marked in
// axes (ignoring size-1 dimensions) form one contiguous block; no marked
// axis gives size 1.
func reduceBlock(shape []int, axes []bool) (outer, size, inner int, ok bool) {
	if len(axes) != len(shape) {
		return 0, 0, 0, false
	}
	outer, size, inner = 1, 1, 1
	stage := 0 // 0: before the block, 1: inside it, 2: after it
	for i, d := range shape {
		if d < 0 {
			return 0, 0, 0, false
		}
		if d == 1 {
			continue
		}
		switch {
		case axes[i] && stage == 2:
			return 0, 0, 0, false
		case axes[i]:
			stage = 1
			size *= d
		case stage == 0:
			outer *= d
		default:
			stage = 2
			inner *= d
		}
	}
	return outer, size, inner, true
}
