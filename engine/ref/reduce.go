package ref

import (
	"math"

	"github.com/gidedge/gidedge/engine/backend"
)

// KeptShape returns the dimensions of shape not marked in axes.
func KeptShape(shape []int, axes []bool) []int {
	var kept []int
	for i, d := range shape {
		if !axes[i] {
			kept = append(kept, d)
		}
	}
	return kept
}

// Reduce implements backend.Backend.
func (r *Backend) Reduce(a backend.ReduceArgs) {
	const k = "Reduce"
	checkShape(k, a.Shape)
	if len(a.Axes) != len(a.Shape) {
		backend.Fail(Name, k, "%d axis flags for a rank-%d shape", len(a.Axes), len(a.Shape))
	}
	kept := KeptShape(a.Shape, a.Axes)
	nOut := numel(kept)
	if a.Dst.Buf == nil {
		backend.Fail(Name, k, "no destination")
	}
	dst := Floats(Name, k, a.Dst.Buf, nOut)
	src := Floats(Name, k, a.Src, numel(a.Shape))
	keptStrides := make([]int, len(a.Shape)) // stride in dst of each source dimension
	acc := 1
	for i := len(a.Shape) - 1; i >= 0; i-- {
		if !a.Axes[i] {
			keptStrides[i] = acc
			acc *= a.Shape[i]
		}
	}
	sums := make([]float64, nOut)
	var index []int32
	if a.Op == backend.ReduceMax {
		if nOut > 0 && len(src) == 0 {
			backend.Fail(Name, k, "maximum over an empty axis of %v", a.Shape)
		}
		index = make([]int32, nOut)
		for i := range index {
			index[i] = -1
		}
	}
	if len(src) > 0 {
		idx := make([]int, len(a.Shape))
		for i := 0; ; i++ {
			o := offset(0, idx, keptStrides)
			v := float64(src[i])
			switch a.Op {
			case backend.ReduceSum:
				sums[o] += v
			case backend.ReduceSumSquares:
				sums[o] += v * v
			case backend.ReduceMax:
				// NaN wins over every number; the first maximum is kept.
				if best := sums[o]; index[o] < 0 || v > best || (v != v && best == best) {
					sums[o], index[o] = v, int32(i)
				}
			default:
				backend.Fail(Name, k, "unknown op %d", a.Op)
			}
			if !next(idx, a.Shape) {
				break
			}
		}
	}
	for o := range dst {
		put(dst, o, float32(float64(a.Alpha)*sums[o]), a.Dst.Accumulate)
	}
	if a.Index != nil && index != nil {
		copy(Ints(Name, k, a.Index, nOut), index)
	}
}

// Softmax implements backend.Backend.
func (r *Backend) Softmax(a backend.SoftmaxArgs) {
	const k = "Softmax"
	n := a.Outer * a.Size * a.Inner
	x := Floats(Name, k, a.X, n)
	y := Floats(Name, k, a.Y, n)
	for o := 0; o < a.Outer; o++ {
		for in := 0; in < a.Inner; in++ {
			at := func(s int) int { return (o*a.Size+s)*a.Inner + in }
			m := math.Inf(-1)
			for s := 0; s < a.Size; s++ {
				m = max(m, float64(x[at(s)]))
			}
			var z float64
			for s := 0; s < a.Size; s++ {
				z += math.Exp(float64(x[at(s)]) - m)
			}
			for s := 0; s < a.Size; s++ {
				v := float64(x[at(s)]) - m
				if a.Log {
					y[at(s)] = float32(v - math.Log(z))
				} else {
					y[at(s)] = float32(math.Exp(v) / z)
				}
			}
		}
	}
}

// SoftmaxBackward implements backend.Backend.
func (r *Backend) SoftmaxBackward(a backend.SoftmaxBackwardArgs) {
	const k = "SoftmaxBackward"
	n := a.Outer * a.Size * a.Inner
	y := Floats(Name, k, a.Y, n)
	dy := Floats(Name, k, a.DY, n)
	dx := dest(k, a.DX, n)
	if dx == nil {
		return
	}
	for o := 0; o < a.Outer; o++ {
		for in := 0; in < a.Inner; in++ {
			at := func(s int) int { return (o*a.Size+s)*a.Inner + in }
			var sum float64
			for s := 0; s < a.Size; s++ {
				if a.Log {
					sum += float64(dy[at(s)])
				} else {
					sum += float64(dy[at(s)]) * float64(y[at(s)])
				}
			}
			for s := 0; s < a.Size; s++ {
				i := at(s)
				if a.Log {
					dx[i] += float32(float64(dy[i]) - math.Exp(float64(y[i]))*sum)
				} else {
					dx[i] += float32(float64(y[i]) * (float64(dy[i]) - sum))
				}
			}
		}
	}
}

// matrixLen is the number of elements a Gemm operand spans.
func matrixLen(m backend.Matrix, rows, cols, batch int) int {
	if rows == 0 || cols == 0 || batch == 0 {
		return 0
	}
	return m.Offset + (batch-1)*m.BatchStride + (rows-1)*m.LD + cols
}

// at reads element (i, j) of op(M).
func at(v []float32, m backend.Matrix, base, i, j int) float32 {
	if m.Trans {
		return v[base+j*m.LD+i]
	}
	return v[base+i*m.LD+j]
}

// CheckGemm validates Gemm arguments and returns how many elements of A,
// B and C they span.
func CheckGemm(who, kernel string, a backend.GemmArgs) (na, nb, nc int) {
	if a.M < 0 || a.N < 0 || a.K < 0 || a.Batch < 0 {
		backend.Fail(who, kernel, "negative size m=%d n=%d k=%d batch=%d", a.M, a.N, a.K, a.Batch)
	}
	if a.C.Trans {
		backend.Fail(who, kernel, "C cannot be transposed")
	}
	if a.M == 0 || a.N == 0 || a.Batch == 0 {
		return 0, 0, 0
	}
	if a.Batch > 1 && a.C.BatchStride < a.M*a.C.LD {
		backend.Fail(who, kernel, "C batch stride %d would overlap results of %d×%d (ld %d)", a.C.BatchStride, a.M, a.N, a.C.LD)
	}
	rowsA, colsA := a.M, a.K
	if a.A.Trans {
		rowsA, colsA = a.K, a.M
	}
	rowsB, colsB := a.K, a.N
	if a.B.Trans {
		rowsB, colsB = a.N, a.K
	}
	if a.K > 0 && (a.A.LD < max(colsA, 1) || a.B.LD < max(colsB, 1)) || a.C.LD < a.N {
		backend.Fail(who, kernel, "leading dimensions %d, %d, %d below the row lengths %d, %d, %d", a.A.LD, a.B.LD, a.C.LD, colsA, colsB, a.N)
	}
	if a.A.Offset < 0 || a.B.Offset < 0 || a.C.Offset < 0 || a.A.BatchStride < 0 || a.B.BatchStride < 0 {
		backend.Fail(who, kernel, "negative offset or batch stride")
	}
	return matrixLen(a.A, rowsA, colsA, a.Batch), matrixLen(a.B, rowsB, colsB, a.Batch), matrixLen(a.C, a.M, a.N, a.Batch)
}

// Gemm implements backend.Backend.
func (r *Backend) Gemm(a backend.GemmArgs) {
	const k = "Gemm"
	na, nb, nc := CheckGemm(Name, k, a)
	if a.M == 0 || a.N == 0 || a.Batch == 0 {
		return
	}
	av := Floats(Name, k, a.A.Buf, na)
	bv := Floats(Name, k, a.B.Buf, nb)
	cv := Floats(Name, k, a.C.Buf, nc)
	for b := 0; b < a.Batch; b++ {
		baseA := a.A.Offset + b*a.A.BatchStride
		baseB := a.B.Offset + b*a.B.BatchStride
		baseC := a.C.Offset + b*a.C.BatchStride
		for i := 0; i < a.M; i++ {
			for j := 0; j < a.N; j++ {
				var acc float64
				for p := 0; p < a.K; p++ {
					acc += float64(at(av, a.A, baseA, i, p)) * float64(at(bv, a.B, baseB, p, j))
				}
				c := &cv[baseC+i*a.C.LD+j]
				v := float64(a.Alpha) * acc
				if a.Beta != 0 {
					v += float64(a.Beta) * float64(*c)
				}
				*c = float32(v)
			}
		}
	}
}
