package cpu

import "github.com/gidedge/gidedge/engine/backend"

// Reduce implements backend.Backend. Reductions over one contiguous block
// of axes (sums over an axis, over everything, squared norms) run as
// [outer, size, inner] loops; other patterns (several separate blocks, as
// the adjoint of a broadcast over both ends) go to the reference kernel.
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
	square := a.Op == backend.ReduceSumSquares
	write := func(o int, v float32) {
		if acc {
			dst[o] += v
		} else {
			dst[o] = v
		}
	}
	if inner == 1 {
		// Whole rows: accumulate each in float64.
		for o := 0; o < outer; o++ {
			var s float64
			for _, v := range src[o*size : (o+1)*size] {
				if square {
					s += float64(v) * float64(v)
				} else {
					s += float64(v)
				}
			}
			write(o, float32(float64(a.Alpha)*s))
		}
		return
	}
	// Rows of inner values: add contiguous rows in float32.
	row := getZeroed(inner)
	defer putBuf(row)
	for o := 0; o < outer; o++ {
		clear(row)
		for s := 0; s < size; s++ {
			in := src[(o*size+s)*inner : (o*size+s+1)*inner]
			for j, v := range in {
				if square {
					row[j] += v * v
				} else {
					row[j] += v
				}
			}
		}
		for j, v := range row {
			write(o*inner+j, a.Alpha*v)
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
