// Package backendtest is the conformance suite every engine backend must
// pass: each kernel of backend.Backend is run on the backend under test and
// on the reference backend (package ref) with the same inputs, and the
// outputs must agree. The cases cover odd shapes, broadcasting, strides 1,
// 2 and 3, groups, depthwise and dilated convolutions, empty and
// one-element tensors, NaN and ±Inf, accumulating and overwriting
// destinations (an overwritten destination starts as NaN garbage, so a
// missed element shows), the aliasing rules of package backend, and the
// typed panic of a kernel given a too-short buffer. A backend package runs
// it from a test:
//
//	func TestConformance(t *testing.T) { backendtest.Run(t, cpu.New(2)) }
package backendtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/ref"
)

// Run checks b against the reference backend, kernel family by family.
func Run(t *testing.T, b backend.Backend) {
	if b.Name() == "" || b.Describe() == "" {
		t.Errorf("backend name %q and description %q: want both", b.Name(), b.Describe())
	}
	families := []struct {
		name string
		fn   func(h *harness)
	}{
		{"Memory", testMemory},
		{"Copy", testCopy},
		{"Gather", testGather},
		{"Unary", testUnary},
		{"Binary", testBinary},
		{"Where", testWhere},
		{"Reduce", testReduce},
		{"Softmax", testSoftmax},
		{"Gemm", testGemm},
		{"Conv2d", testConv},
		{"BatchNorm", testBatchNorm},
		{"Pool2d", testPool},
		{"Upsample", testUpsample},
		{"ResizeLinear", testResizeLinear},
		{"ROIAlign", testROIAlign},
		{"Loss", testLoss},
		{"PairwiseDistance", testPairwise},
		{"Optimizers", testOptimizers},
		{"Errors", testErrors},
	}
	for i, f := range families {
		t.Run(f.name, func(t *testing.T) {
			f.fn(&harness{t: t, dut: b, ref: ref.New(), rng: rand.New(rand.NewPCG(uint64(i), 99))})
		})
	}
}

// harness runs one family: the backend under test (side 0) and the
// reference (side 1).
type harness struct {
	t        *testing.T
	dut, ref backend.Backend
	rng      *rand.Rand
}

// twin is one argument held by both backends.
type twin [2]backend.Buffer

func (h *harness) sides() [2]backend.Backend { return [2]backend.Backend{h.dut, h.ref} }

// both runs fn on each backend with its side index.
func (h *harness) both(fn func(be backend.Backend, s int)) {
	for s, be := range h.sides() {
		fn(be, s)
	}
}

// floats uploads v to both backends.
func (h *harness) floats(v []float32) twin {
	var tw twin
	for s, be := range h.sides() {
		tw[s] = be.Alloc(backend.Float32, len(v))
		be.FromHost(tw[s], v)
	}
	return tw
}

// ints uploads v to both backends as Int32.
func (h *harness) ints(v []int32) twin {
	var tw twin
	for s, be := range h.sides() {
		tw[s] = be.Alloc(backend.Int32, len(v))
		be.FromHostInt32(tw[s], v)
	}
	return tw
}

// randn returns n normal samples scaled by std.
func (h *harness) randn(n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(h.rng.NormFloat64() * std)
	}
	return v
}

// random uploads n normal samples.
func (h *harness) random(n int) twin { return h.floats(h.randn(n, 1)) }

// garbage is a destination filled with NaN: a kernel told to overwrite it
// must write every element.
func (h *harness) garbage(n int) twin {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return h.floats(v)
}

// dest returns a destination: random values to add to, or NaN garbage.
func (h *harness) dest(n int, accumulate bool) (twin, [2]backend.Dest) {
	var tw twin
	if accumulate {
		tw = h.random(n)
	} else {
		tw = h.garbage(n)
	}
	return tw, [2]backend.Dest{{Buf: tw[0], Accumulate: accumulate}, {Buf: tw[1], Accumulate: accumulate}}
}

// want returns a Dest pair for an optional output.
func want(tw twin, wanted, accumulate bool) [2]backend.Dest {
	if !wanted {
		return [2]backend.Dest{}
	}
	return [2]backend.Dest{{Buf: tw[0], Accumulate: accumulate}, {Buf: tw[1], Accumulate: accumulate}}
}

// host reads side s of a twin.
func (h *harness) host(tw twin, s int) []float32 {
	v := make([]float32, tw[s].Len())
	h.sides()[s].ToHost(v, tw[s])
	return v
}

// check compares the two sides of an output: NaN must meet NaN, ±Inf the
// same infinity, and other values agree within tol·max(1, |want|).
func (h *harness) check(what string, out twin, tol float64) {
	h.t.Helper()
	compare(h.t, what, h.host(out, 0), h.host(out, 1), tol)
}

func compare(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference %d", what, len(got), len(want))
	}
	bad := 0
	for i, w := range want {
		g := got[i]
		wf, gf := float64(w), float64(g)
		var ok bool
		switch {
		case math.IsNaN(wf):
			ok = math.IsNaN(gf)
		case math.IsInf(wf, 0):
			ok = g == w
		default:
			ok = !math.IsNaN(gf) && math.Abs(gf-wf) <= tol*max(1, math.Abs(wf))
		}
		if !ok {
			if bad < 3 {
				t.Errorf("%s: element %d is %v, reference %v", what, i, g, w)
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d elements differ", what, bad, len(want))
	}
}

// Tolerances: elementwise kernels agree to a few ulps; sums to a relative
// error that grows with the square root of the number of terms.
const elemTol = 4e-6

func sumTol(terms int) float64 { return 2e-6 * math.Sqrt(float64(max(terms, 1))) * 8 }

// specials appends NaN (with either sign bit: x86 makes negative ones),
// ±Inf, zeros and kink points to v: ten values, then extra.
func specials(v []float32, extra ...float32) []float32 {
	nan, negNaN, inf := float32(math.NaN()), math.Float32frombits(0xffc00000), float32(math.Inf(1))
	return append(append(v, nan, negNaN, inf, -inf, 0, float32(math.Copysign(0, -1)), 1, -1, 3, -3), extra...)
}

func name(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func testMemory(h *harness) {
	for _, n := range []int{0, 1, 7, 1000} {
		v := h.randn(n, 1)
		buf := h.dut.Alloc(backend.Float32, n)
		if buf.Len() != n || buf.DType() != backend.Float32 {
			h.t.Fatalf("Alloc(%d) gave %d elements of %v", n, buf.Len(), buf.DType())
		}
		h.dut.FromHost(buf, v)
		got := make([]float32, n)
		h.dut.ToHost(got, buf)
		compare(h.t, name("round trip of %d", n), got, v, 0)
		h.dut.Fill(buf, 2.5)
		h.dut.ToHost(got, buf)
		for i, x := range got {
			if x != 2.5 {
				h.t.Fatalf("Fill: element %d is %v", i, x)
			}
		}
		h.dut.Free(buf)
		ib := h.dut.Alloc(backend.Int32, n)
		if ib.Len() != n || ib.DType() != backend.Int32 {
			h.t.Fatalf("Alloc(Int32, %d) gave %d elements of %v", n, ib.Len(), ib.DType())
		}
		h.dut.FromHostInt32(ib, make([]int32, n))
		h.dut.Free(ib)
	}
	if err := h.dut.Sync(); err != nil {
		h.t.Fatalf("Sync: %v", err)
	}
	st := h.dut.MemStats()
	if st.FreshBytes < 0 || st.ReusedBytes < 0 {
		h.t.Fatalf("MemStats %+v", st)
	}
}

func testCopy(h *harness) {
	cases := []struct {
		shape          []int
		dst, src       []int // strides; nil = dense
		dstOff, srcOff int
		dstLen, srcLen int
	}{
		{shape: []int{7}, dstLen: 7, srcLen: 7},
		{shape: []int{}, dstLen: 1, srcLen: 1},
		{shape: []int{0, 3}, dstLen: 0, srcLen: 0},
		{shape: []int{3, 4, 5}, src: []int{1, 15, 3}, dstLen: 60, srcLen: 60},             // permutation
		{shape: []int{2, 3, 4}, src: []int{0, 4, 1}, dstLen: 24, srcLen: 12},              // broadcast source
		{shape: []int{3, 1}, src: []int{0, 0}, dstLen: 3, srcLen: 1},                      // scalar broadcast
		{shape: []int{2, 3}, dst: []int{7, 1}, dstOff: 2, dstLen: 14, srcLen: 6},          // into a slab
		{shape: []int{2, 3}, src: []int{9, 2}, srcOff: 1, dstLen: 6, srcLen: 18},          // strided slice
		{shape: []int{2, 2, 2, 2, 3}, src: []int{1, 2, 4, 8, 16}, dstLen: 48, srcLen: 48}, // rank 5
		{shape: []int{4, 9000}, dstLen: 36000, srcLen: 36000},                             // large, contiguous
	}
	for _, c := range cases {
		for _, acc := range []bool{false, true} {
			src := h.random(c.srcLen)
			var dst twin
			if acc {
				dst = h.random(c.dstLen)
			} else {
				dst = h.floats(make([]float32, c.dstLen)) // untouched elements must stay
			}
			h.both(func(be backend.Backend, s int) {
				be.Copy(backend.CopyArgs{Shape: c.shape, Dst: backend.View{Buf: dst[s], Offset: c.dstOff, Strides: c.dst},
					Src: backend.View{Buf: src[s], Offset: c.srcOff, Strides: c.src}, Accumulate: acc})
			})
			h.check(name("Copy %v dst %v src %v accumulate %v", c.shape, c.dst, c.src, acc), dst, 0)
		}
	}
}

func testGather(h *harness) {
	cases := []struct {
		outer, size, inner int
		idx                []int32
	}{
		{1, 5, 1, []int32{4, 0, 0, 2}},
		{3, 4, 7, []int32{3, 1, 3}},
		{2, 6, 1, nil},
		{1, 1, 3, []int32{0}},
		{4, 9, 5, []int32{8, 8, 8, 0, 1, 2, 3}},
	}
	for _, c := range cases {
		idx := h.ints(c.idx)
		count := len(c.idx)
		for _, acc := range []bool{false, true} {
			src := h.random(c.outer * c.size * c.inner)
			out, dst := h.dest(c.outer*count*c.inner, acc)
			h.both(func(be backend.Backend, s int) {
				be.Gather(backend.GatherArgs{Outer: c.outer, Size: c.size, Inner: c.inner, Count: count, Index: idx[s], Src: src[s], Dst: dst[s]})
			})
			h.check(name("Gather %+v accumulate %v", c, acc), out, elemTol)
			src2 := h.random(c.outer * count * c.inner)
			out2, dst2 := h.dest(c.outer*c.size*c.inner, acc)
			h.both(func(be backend.Backend, s int) {
				be.ScatterAdd(backend.GatherArgs{Outer: c.outer, Size: c.size, Inner: c.inner, Count: count, Index: idx[s], Src: src2[s], Dst: dst2[s]})
			})
			h.check(name("ScatterAdd %+v accumulate %v", c, acc), out2, elemTol)
		}
	}
}

var unaryOps = []struct {
	op          backend.UnaryOp
	alpha, beta float32
	positive    bool // domain x > 0
}{
	{backend.UnaryScale, -1.5, 0.25, false},
	{backend.UnaryScale, 1, 2.5, false},
	{backend.UnaryExp, 0, 0, false},
	{backend.UnaryLog, 0, 0, true},
	{backend.UnarySqrt, 0, 0, true},
	{backend.UnaryAbs, 0, 0, false},
	{backend.UnaryPow, 2, 0, false},
	{backend.UnaryPow, -1.5, 0, true},
	{backend.UnaryPow, 0.5, 0, true},
	{backend.UnaryClamp, -0.5, 0.8, false},
	{backend.UnaryClamp, 0, 6, false},
	{backend.UnaryReLU, 0, 0, false},
	{backend.UnaryLeakyReLU, 0.1, 0, false},
	{backend.UnarySigmoid, 0, 0, false},
	{backend.UnarySiLU, 0, 0, false},
	{backend.UnaryHardSwish, 0, 0, false},
	{backend.UnaryTanh, 0, 0, false},
}

func testUnary(h *harness) {
	for _, u := range unaryOps {
		for _, n := range []int{0, 1, 37, 70001} {
			xv := h.randn(n, 2)
			if n > 12 {
				xv = specials(xv[:n-12], -0.5, 0.8)
			}
			if u.positive {
				for i, v := range xv {
					if !math.IsNaN(float64(v)) {
						xv[i] = float32(math.Abs(float64(v))) + 0.1
					}
				}
			}
			x := h.floats(xv)
			y := h.garbage(n)
			label := name("%v(α=%v, β=%v) n=%d", u.op, u.alpha, u.beta, n)
			h.both(func(be backend.Backend, s int) {
				be.Unary(backend.UnaryArgs{Op: u.op, N: n, X: x[s], Y: y[s], Alpha: u.alpha, Beta: u.beta})
			})
			h.check(label, y, elemTol)
			for _, acc := range []bool{false, true} {
				dy := h.random(n)
				out, dx := h.dest(n, acc)
				h.both(func(be backend.Backend, s int) {
					be.UnaryBackward(backend.UnaryBackwardArgs{Op: u.op, N: n, X: x[s], Y: y[s], DY: dy[s], DX: dx[s], Alpha: u.alpha, Beta: u.beta})
				})
				h.check(label+name(" backward accumulate %v", acc), out, elemTol)
			}
			// In place: Y = X, and DX = DY.
			inPlace := h.floats(xv)
			h.dut.Unary(backend.UnaryArgs{Op: u.op, N: n, X: inPlace[0], Y: inPlace[0], Alpha: u.alpha, Beta: u.beta})
			compare(h.t, label+" in place", h.host(inPlace, 0), h.host(y, 1), elemTol)
			g := h.random(n)
			want := h.garbage(n)
			h.dut.UnaryBackward(backend.UnaryBackwardArgs{Op: u.op, N: n, X: x[0], Y: y[0], DY: g[0], DX: backend.Dest{Buf: g[0]}, Alpha: u.alpha, Beta: u.beta})
			h.ref.UnaryBackward(backend.UnaryBackwardArgs{Op: u.op, N: n, X: x[1], Y: y[1], DY: g[1], DX: backend.Dest{Buf: want[1]}, Alpha: u.alpha, Beta: u.beta})
			compare(h.t, label+" backward in place", h.host(g, 0), h.host(want, 1), elemTol)
		}
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func testBinary(h *harness) {
	cases := [][3][]int{ // a, b, out
		{{3, 4}, {3, 4}, {3, 4}},
		{{2, 3, 4}, {4}, {2, 3, 4}},
		{{2, 1, 5}, {3, 1}, {2, 3, 5}},
		{{1}, {3, 2}, {3, 2}},
		{{2, 3, 1, 1}, {1, 3, 4, 5}, {2, 3, 4, 5}},
		{{}, {}, {}},
		{{0, 3}, {3}, {0, 3}},
		{{5, 1}, {1, 7}, {5, 7}},
		{{40000}, {40000}, {40000}},
	}
	for _, op := range []backend.BinaryOp{backend.BinaryAdd, backend.BinarySub, backend.BinaryMul, backend.BinaryDiv} {
		for _, c := range cases {
			av := h.randn(numel(c[0]), 1)
			bv := h.randn(numel(c[1]), 1)
			if len(av) > 12 {
				av = specials(av[:len(av)-10])
			}
			if op == backend.BinaryDiv && len(bv) > 4 {
				bv[1], bv[3] = 0, float32(math.Copysign(0, -1))
			}
			a, b := h.floats(av), h.floats(bv)
			sa, sb := backend.BroadcastStrides(c[0], c[2]), backend.BroadcastStrides(c[1], c[2])
			for _, acc := range []bool{false, true} {
				out, dst := h.dest(numel(c[2]), acc)
				h.both(func(be backend.Backend, s int) {
					be.Binary(backend.BinaryArgs{Op: op, Shape: c[2], A: backend.View{Buf: a[s], Strides: sa}, B: backend.View{Buf: b[s], Strides: sb}, Dst: dst[s]})
				})
				h.check(name("%v %v %v accumulate %v", op, c[0], c[1], acc), out, elemTol)
				if acc || numel(c[0]) != numel(c[2]) {
					continue
				}
				// In place: Dst is A (same dense layout).
				inPlace := h.floats(av)
				h.dut.Binary(backend.BinaryArgs{Op: op, Shape: c[2], A: backend.View{Buf: inPlace[0]}, B: backend.View{Buf: b[0], Strides: sb}, Dst: backend.Dest{Buf: inPlace[0]}})
				compare(h.t, name("%v %v %v in place", op, c[0], c[1]), h.host(inPlace, 0), h.host(out, 1), elemTol)
			}
		}
	}
	// Offsets into both operands.
	a, b := h.random(20), h.random(20)
	out, dst := h.dest(6, false)
	h.both(func(be backend.Backend, s int) {
		be.Binary(backend.BinaryArgs{Op: backend.BinaryMul, Shape: []int{2, 3}, A: backend.View{Buf: a[s], Offset: 3, Strides: []int{5, 2}}, B: backend.View{Buf: b[s], Offset: 7, Strides: []int{0, 3}}, Dst: dst[s]})
	})
	h.check("Mul with offsets and strides", out, elemTol)
}

func testWhere(h *harness) {
	for _, n := range []int{0, 1, 33} {
		mv := h.randn(n, 1)
		for i := range mv {
			if i%3 == 0 {
				mv[i] = 0
			}
		}
		if n > 2 {
			mv[1] = float32(math.NaN()) // non-zero: selects A
		}
		mask, a, b := h.floats(mv), h.random(n), h.random(n)
		for _, v := range []struct{ useA, useB, acc bool }{{true, true, false}, {true, false, true}, {false, true, false}, {true, true, true}} {
			out, dst := h.dest(n, v.acc)
			h.both(func(be backend.Backend, s int) {
				args := backend.WhereArgs{N: n, Mask: mask[s], Dst: dst[s]}
				if v.useA {
					args.A = a[s]
				}
				if v.useB {
					args.B = b[s]
				}
				be.Where(args)
			})
			h.check(name("Where n=%d %+v", n, v), out, 0)
		}
	}
}

func testReduce(h *harness) {
	cases := []struct {
		shape []int
		axes  []bool
	}{
		{[]int{7}, []bool{true}},
		{[]int{3, 5}, []bool{false, true}},
		{[]int{3, 5}, []bool{true, false}},
		{[]int{2, 3, 4}, []bool{false, true, false}},
		{[]int{2, 3, 4}, []bool{false, false, false}},
		{[]int{2, 3, 4}, []bool{true, true, true}},
		{[]int{2, 3, 4, 5}, []bool{true, false, true, true}},
		{[]int{2, 1, 4, 5}, []bool{false, true, true, false}},
		{[]int{}, []bool{}},
		{[]int{0, 4}, []bool{false, true}},
		{[]int{4, 0}, []bool{false, true}},
		{[]int{3, 20000}, []bool{false, true}},
	}
	for _, op := range []backend.ReduceOp{backend.ReduceSum, backend.ReduceSumSquares, backend.ReduceMax} {
		for _, c := range cases {
			n := numel(c.shape)
			kept, size := 1, 1
			for i, d := range c.shape {
				if c.axes[i] {
					size *= d
				} else {
					kept *= d
				}
			}
			if op == backend.ReduceMax && size == 0 && kept > 0 {
				continue // a maximum over nothing is not allowed
			}
			xv := h.randn(n, 1)
			if n > 20 {
				xv[3], xv[11] = float32(math.NaN()), float32(math.Inf(1))
			}
			x := h.floats(xv)
			for _, acc := range []bool{false, true} {
				out, dst := h.dest(kept, acc)
				var index twin
				if op == backend.ReduceMax {
					index = h.ints(make([]int32, kept))
				}
				h.both(func(be backend.Backend, s int) {
					be.Reduce(backend.ReduceArgs{Op: op, Shape: c.shape, Axes: c.axes, Src: x[s], Dst: dst[s], Index: index[s], Alpha: 0.75})
				})
				label := name("Reduce %d %v over %v accumulate %v", op, c.shape, c.axes, acc)
				h.check(label, out, sumTol(size))
				if op == backend.ReduceMax && kept > 0 {
					// The indices, seen through a scatter of ones.
					ones := make([]float32, kept)
					for i := range ones {
						ones[i] = 1
					}
					src := h.floats(ones)
					hits, hitDst := h.dest(n, false)
					h.both(func(be backend.Backend, s int) {
						be.ScatterAdd(backend.GatherArgs{Outer: 1, Size: n, Inner: 1, Count: kept, Index: index[s], Src: src[s], Dst: hitDst[s]})
					})
					h.check(label+" argmax", hits, 0)
				}
			}
		}
	}
}

func testSoftmax(h *harness) {
	for _, g := range [][3]int{{1, 5, 1}, {3, 4, 2}, {2, 1, 3}, {1, 7, 6}, {0, 3, 2}} {
		n := g[0] * g[1] * g[2]
		xv := h.randn(n, 3)
		if n > 10 {
			xv[4] = float32(math.NaN())
		}
		x := h.floats(xv)
		for _, log := range []bool{false, true} {
			y := h.garbage(n)
			h.both(func(be backend.Backend, s int) {
				be.Softmax(backend.SoftmaxArgs{Outer: g[0], Size: g[1], Inner: g[2], X: x[s], Y: y[s], Log: log})
			})
			label := name("Softmax %v log %v", g, log)
			h.check(label, y, 1e-5)
			for _, acc := range []bool{false, true} {
				dy := h.random(n)
				out, dx := h.dest(n, acc)
				h.both(func(be backend.Backend, s int) {
					be.SoftmaxBackward(backend.SoftmaxBackwardArgs{Outer: g[0], Size: g[1], Inner: g[2], Y: y[s], DY: dy[s], DX: dx[s], Log: log})
				})
				h.check(label+name(" backward accumulate %v", acc), out, 1e-5)
			}
		}
	}
}

func testGemm(h *harness) {
	type shape struct{ m, n, k, batch int }
	shapes := []shape{{1, 1, 1, 1}, {3, 5, 7, 1}, {17, 9, 33, 1}, {64, 70, 27, 1}, {5, 1, 128, 1}, {1, 31, 4, 1},
		{4, 3, 5, 3}, {0, 4, 3, 1}, {4, 0, 3, 1}, {4, 3, 0, 1}, {3, 4, 5, 0}, {70, 300, 40, 1}}
	for _, sh := range shapes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, beta := range []float32{0, 1, -0.5} {
					for _, sharedB := range []bool{false, true} {
						if sharedB && sh.batch < 2 {
							continue
						}
						aRows, aCols := sh.m, sh.k
						if ta {
							aRows, aCols = sh.k, sh.m
						}
						bRows, bCols := sh.k, sh.n
						if tb {
							bRows, bCols = sh.n, sh.k
						}
						A := backend.Matrix{LD: aCols + 2, Offset: 1, Trans: ta}
						B := backend.Matrix{LD: bCols + 1, Trans: tb}
						C := backend.Matrix{LD: sh.n + 3, Offset: 2}
						A.BatchStride = aRows*A.LD + 5
						if !sharedB {
							B.BatchStride = bRows*B.LD + 1
						}
						C.BatchStride = sh.m*C.LD + 4
						batches := max(sh.batch, 1)
						a := h.random(A.Offset + batches*A.BatchStride)
						b := h.random(bRows*B.LD + batches*B.BatchStride)
						cv := h.randn(C.Offset+batches*C.BatchStride, 1)
						if beta == 0 && len(cv) > 0 {
							for i := range cv {
								cv[i] = float32(math.NaN()) // not read when β = 0
							}
							for i := 0; i < C.Offset; i++ {
								cv[i] = 0 // outside the matrices: must stay
							}
						}
						c := h.floats(cv)
						h.both(func(be backend.Backend, s int) {
							args := backend.GemmArgs{M: sh.m, N: sh.n, K: sh.k, Batch: sh.batch, Alpha: 1.5, Beta: beta, A: A, B: B, C: C}
							args.A.Buf, args.B.Buf, args.C.Buf = a[s], b[s], c[s]
							be.Gemm(args)
						})
						h.check(name("Gemm %+v ta %v tb %v β %v shared B %v", sh, ta, tb, beta, sharedB), c, sumTol(sh.k))
					}
				}
			}
		}
	}
}

// convGeometries covers strides 1/2/3, padding, dilation, groups,
// depthwise, pointwise, rectangular kernels and maps wide and deep enough
// for a CPU's shifted-GEMM path.
var convGeometries = []backend.ConvGeometry{
	{N: 2, C: 3, H: 7, W: 5, Cout: 4, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 1, C: 4, H: 9, W: 9, Cout: 6, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 3, C: 2, H: 6, W: 7, Cout: 5, KernelH: 1, KernelW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 2, C: 4, H: 8, W: 9, Cout: 4, KernelH: 3, KernelW: 2, StrideH: 1, StrideW: 3, PadH: 2, PadW: 0, DilationH: 2, DilationW: 1, Groups: 2},
	{N: 1, C: 6, H: 11, W: 4, Cout: 6, KernelH: 3, KernelW: 3, StrideH: 3, StrideW: 1, PadH: 0, PadW: 2, DilationH: 1, DilationW: 2, Groups: 6},
	{N: 2, C: 5, H: 9, W: 8, Cout: 5, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 5},
	{N: 1, C: 3, H: 5, W: 5, Cout: 2, KernelH: 5, KernelW: 5, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 2, C: 8, H: 17, W: 20, Cout: 6, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 2, C: 16, H: 18, W: 34, Cout: 8, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 2},
	{N: 1, C: 8, H: 20, W: 40, Cout: 4, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilationH: 2, DilationW: 2, Groups: 1},
	{N: 1, C: 9, H: 19, W: 36, Cout: 3, KernelH: 5, KernelW: 5, StrideH: 3, StrideW: 3, PadH: 2, PadW: 2, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 1, C: 1, H: 1, W: 1, Cout: 1, KernelH: 1, KernelW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 0, C: 8, H: 17, W: 20, Cout: 6, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 0, C: 3, H: 5, W: 5, Cout: 3, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 3},
}

func withOutput(g backend.ConvGeometry) backend.ConvGeometry {
	g.OutH = (g.H+2*g.PadH-g.DilationH*(g.KernelH-1)-1)/g.StrideH + 1
	g.OutW = (g.W+2*g.PadW-g.DilationW*(g.KernelW-1)-1)/g.StrideW + 1
	return g
}

// winogradGeometries are dense 3×3 stride-1 layers with at least 8
// channels on both sides and 64 or more output positions (a CPU's
// Winograd path): odd sizes (partial tiles), paddings 0, 1 and 2 (also
// unequal), batches that a backend groups into blocks.
var winogradGeometries = []backend.ConvGeometry{
	{N: 2, C: 8, H: 9, W: 9, Cout: 10, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 3, C: 9, H: 11, W: 10, Cout: 8, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 1, C: 12, H: 6, W: 11, Cout: 9, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 2, C: 8, H: 8, W: 9, Cout: 8, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 2, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 2, C: 16, H: 20, W: 21, Cout: 16, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
	{N: 7, C: 8, H: 8, W: 9, Cout: 11, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 1},
}

// depthwiseGeometries are depthwise layers of the kinds a MobileNet is
// made of, beyond convGeometries: wide rows (partial vector chunks), odd
// sizes with stride 2, stride 3, a 5×5 kernel, dilation, padding 0 and
// padding larger than the kernel reaches.
var depthwiseGeometries = []backend.ConvGeometry{
	{N: 2, C: 7, H: 13, W: 37, Cout: 7, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 7},
	{N: 3, C: 5, H: 11, W: 21, Cout: 5, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 5},
	{N: 1, C: 4, H: 10, W: 12, Cout: 4, KernelH: 3, KernelW: 3, StrideH: 3, StrideW: 3, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 4},
	{N: 2, C: 4, H: 9, W: 10, Cout: 4, KernelH: 5, KernelW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilationH: 1, DilationW: 1, Groups: 4},
	{N: 1, C: 4, H: 12, W: 13, Cout: 4, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilationH: 2, DilationW: 2, Groups: 4},
	{N: 2, C: 3, H: 8, W: 8, Cout: 3, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Groups: 3},
	{N: 1, C: 3, H: 6, W: 7, Cout: 3, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilationH: 1, DilationW: 1, Groups: 3},
	{N: 2, C: 6, H: 1, W: 1, Cout: 6, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1, Groups: 6},
}

func testConv(h *harness) {
	all := append(append(append([]backend.ConvGeometry{}, convGeometries...), winogradGeometries...), depthwiseGeometries...)
	for _, g := range all {
		g = withOutput(g)
		convCase(h, g, h.randn(g.N*g.C*g.H*g.W, 1), false)
	}
	// NaN of either sign in the input reaches exactly the outputs whose
	// window holds it; in the weight gradient it reaches the filters
	// (output, input channel pairs) that read it, where a backend may
	// spread it over the filter's taps (Winograd mixes them).
	nanCases := append(append([]backend.ConvGeometry{}, winogradGeometries[:4]...), depthwiseGeometries...)
	nanCases = append(nanCases, convGeometries[0], convGeometries[5])
	for _, g := range nanCases {
		g = withOutput(g)
		nx := g.N * g.C * g.H * g.W
		xv := h.randn(nx, 1)
		for k := range max(1, nx/40) {
			xv[h.rng.IntN(nx)] = []float32{float32(math.NaN()), math.Float32frombits(0xffc00000)}[k%2]
		}
		xv[0] = float32(math.NaN())
		convCase(h, g, xv, true)
	}
}

// compareFilters is compare for a weight gradient computed from an input
// with NaN: element by element, except that in a filter (taps consecutive
// elements) where the reference has a NaN, every other element may be
// NaN too.
func compareFilters(t *testing.T, what string, got, want []float32, taps int, tol float64) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	for f := 0; f+taps <= len(w); f += taps {
		nan := false
		for _, v := range w[f : f+taps] {
			nan = nan || math.IsNaN(float64(v))
		}
		if !nan {
			continue
		}
		for k := f; k < f+taps; k++ {
			if math.IsNaN(float64(g[k])) && !math.IsNaN(float64(w[k])) {
				g[k] = w[k]
			}
		}
	}
	compare(t, what, g, w, tol)
}

// convCase checks Conv2d (with and without bias) and Conv2dBackward (every
// combination of wanted, accumulated and overwritten gradients) of one
// geometry on input xv, which holds NaN when nanInput is set.
func convCase(h *harness, g backend.ConvGeometry, xv []float32, nanInput bool) {
	label := ""
	if nanInput {
		label = " NaN input"
	}
	nx := g.N * g.C * g.H * g.W
	nw := g.Cout * (g.C / g.Groups) * g.KernelH * g.KernelW
	ny := g.N * g.Cout * g.OutH * g.OutW
	terms := (g.C / g.Groups) * g.KernelH * g.KernelW
	x, w, bias := h.floats(xv[:nx]), h.random(nw), h.random(g.Cout)
	for _, withBias := range []bool{false, true} {
		y := h.garbage(ny)
		h.both(func(be backend.Backend, s int) {
			args := backend.ConvArgs{Geometry: g, X: x[s], W: w[s], Y: y[s]}
			if withBias {
				args.Bias = bias[s]
			}
			be.Conv2d(args)
		})
		h.check(name("Conv2d %+v bias %v%s", g, withBias, label), y, sumTol(terms))
	}
	dy := h.random(ny)
	for _, v := range []struct{ dx, dw, db, acc bool }{
		{true, true, true, false}, {true, true, true, true}, {true, false, false, false}, {false, true, false, true}, {false, false, true, false},
	} {
		ox, dx := h.dest(nx, v.acc)
		ow, dw := h.dest(nw, v.acc)
		ob, db := h.dest(g.Cout, v.acc)
		h.both(func(be backend.Backend, s int) {
			args := backend.ConvBackwardArgs{Geometry: g, X: x[s], W: w[s], DY: dy[s]}
			if v.dx {
				args.DX = dx[s]
			}
			if v.dw {
				args.DW = dw[s]
			}
			if v.db {
				args.DBias = db[s]
			}
			be.Conv2dBackward(args)
		})
		lbl := name("Conv2dBackward %+v %+v%s", g, v, label)
		if v.dx {
			h.check(lbl+" dx", ox, sumTol(g.Cout*g.KernelH*g.KernelW))
		}
		if v.dw && !nanInput {
			h.check(lbl+" dw", ow, sumTol(g.N*g.OutH*g.OutW))
		}
		if v.dw && nanInput {
			compareFilters(h.t, lbl+" dw", h.host(ow, 0), h.host(ow, 1), g.KernelH*g.KernelW, sumTol(g.N*g.OutH*g.OutW))
		}
		if v.db {
			h.check(lbl+" db", ob, sumTol(g.N*g.OutH*g.OutW))
		}
		// Unwanted outputs are left alone: compare them too (both
		// sides still hold the same initial values).
		if !v.dx && v.acc {
			h.check(lbl+" untouched dx", ox, 0)
		}
	}
}

// fusedActivations are the activations testBatchNorm runs inside batch
// norm on a backend that fuses them (backend.ActivationFuser): ReLU and
// ReLU6, whose kinks the normalised values reach.
var fusedActivations = []struct {
	op          backend.UnaryOp
	alpha, beta float32
}{{backend.UnaryReLU, 0, 0}, {backend.UnaryClamp, 0, 6}, {backend.UnaryClamp, -0.5, 0.5}}

func testBatchNorm(h *harness) {
	acts := []struct {
		op          backend.UnaryOp
		alpha, beta float32
	}{{}}
	if f, ok := h.dut.(backend.ActivationFuser); ok {
		for _, a := range fusedActivations {
			if f.FusesActivation(a.op) {
				acts = append(acts, a)
			}
		}
	}
	for _, act := range acts {
		batchNormCases(h, act.op, act.alpha, act.beta)
	}
}

func batchNormCases(h *harness, act backend.UnaryOp, actAlpha, actBeta float32) {
	for _, g := range [][3]int{{2, 3, 5}, {1, 4, 9}, {4, 1, 1}, {3, 2, 40}, {8, 6, 1000}, {2, 3, 37}} {
		n, c, hw := g[0], g[1], g[2]
		total := n * c * hw
		xv := h.randn(total, 2)
		for i := range xv {
			xv[i] += float32(i % 3) // a per-position offset: means differ per channel
		}
		x := h.floats(xv)
		gamma, beta := h.random(c), h.random(c)
		varv := h.randn(c, 1)
		for i := range varv {
			varv[i] = float32(math.Abs(float64(varv[i]))) + 0.5
		}
		for _, training := range []bool{true, false} {
			rm, rv := h.random(c), h.floats(varv)
			y, mean, invStd := h.garbage(total), h.garbage(c), h.garbage(c)
			h.both(func(be backend.Backend, s int) {
				be.BatchNorm(backend.BatchNormArgs{N: n, C: c, HW: hw, X: x[s], Y: y[s], Gamma: gamma[s], Beta: beta[s],
					RunningMean: rm[s], RunningVar: rv[s], Mean: mean[s], InvStd: invStd[s], Training: training, Momentum: 0.1, Eps: 1e-5,
					Act: act, ActAlpha: actAlpha, ActBeta: actBeta})
			})
			label := name("BatchNorm %v training %v act %v(%v, %v)", g, training, act, actAlpha, actBeta)
			h.check(label+" y", y, sumTol(n*hw))
			h.check(label+" mean", mean, sumTol(n*hw))
			h.check(label+" inverse std", invStd, sumTol(n*hw))
			h.check(label+" running mean", rm, sumTol(n*hw))
			h.check(label+" running var", rv, sumTol(n*hw))
			dy := h.random(total)
			for _, v := range []struct{ dx, dg, db, acc bool }{{true, true, true, false}, {true, true, true, true}, {true, false, false, false}, {false, true, true, true}} {
				ox, _ := h.dest(total, v.acc)
				og, _ := h.dest(c, v.acc)
				ob, _ := h.dest(c, v.acc)
				h.both(func(be backend.Backend, s int) {
					be.BatchNormBackward(backend.BatchNormBackwardArgs{N: n, C: c, HW: hw, X: x[s], Gamma: gamma[s], DY: dy[s],
						Mean: mean[s], InvStd: invStd[s], DX: want(ox, v.dx, v.acc)[s], DGamma: want(og, v.dg, v.acc)[s], DBeta: want(ob, v.db, v.acc)[s], Training: training,
						Beta: beta[s], Act: act, ActAlpha: actAlpha, ActBeta: actBeta})
				})
				tol := sumTol(n * hw)
				h.check(label+name(" backward %+v dx", v), ox, tol)
				h.check(label+name(" backward %+v dgamma", v), og, tol)
				h.check(label+name(" backward %+v dbeta", v), ob, tol)
			}
		}
	}
}

func testPool(h *harness) {
	geoms := []backend.PoolGeometry{
		{N: 2, C: 3, H: 7, W: 6, Kernel: 2, Stride: 2},
		{N: 1, C: 2, H: 7, W: 6, Kernel: 3, Stride: 2, Pad: 1},
		{N: 2, C: 2, H: 5, W: 5, Kernel: 3, Stride: 1, Pad: 1},
		{N: 1, C: 4, H: 9, W: 11, Kernel: 5, Stride: 3, Pad: 2},
		{N: 1, C: 1, H: 1, W: 1, Kernel: 1, Stride: 1},
	}
	for _, g := range geoms {
		g.OutH = (g.H+2*g.Pad-g.Kernel)/g.Stride + 1
		g.OutW = (g.W+2*g.Pad-g.Kernel)/g.Stride + 1
		nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH*g.OutW
		// Distinct values (no ties), a NaN, and an infinity.
		xv := make([]float32, nx)
		for i, k := range h.rng.Perm(nx) {
			xv[i] = 0.05 * float32(k-nx/2)
		}
		if nx > 10 {
			xv[7], xv[2] = float32(math.NaN()), float32(math.Inf(-1))
		}
		x := h.floats(xv)
		for _, kind := range []backend.PoolKind{backend.PoolMax, backend.PoolAvg} {
			y := h.garbage(ny)
			var arg twin
			if kind == backend.PoolMax {
				arg = h.ints(make([]int32, ny))
			}
			h.both(func(be backend.Backend, s int) {
				be.Pool2d(backend.PoolArgs{Kind: kind, Geometry: g, X: x[s], Y: y[s], Argmax: arg[s]})
			})
			label := name("Pool2d %d %+v", kind, g)
			h.check(label, y, elemTol)
			for _, acc := range []bool{false, true} {
				dy := h.random(ny)
				out, dx := h.dest(nx, acc)
				h.both(func(be backend.Backend, s int) {
					be.Pool2dBackward(backend.PoolBackwardArgs{Kind: kind, Geometry: g, DY: dy[s], Argmax: arg[s], DX: dx[s]})
				})
				h.check(label+name(" backward accumulate %v", acc), out, elemTol)
			}
		}
	}
}

func testUpsample(h *harness) {
	for _, g := range []backend.ResizeGeometry{
		{N: 2, C: 3, H: 4, W: 5, OutH: 8, OutW: 10},
		{N: 1, C: 2, H: 5, W: 3, OutH: 7, OutW: 7},
		{N: 1, C: 1, H: 7, W: 6, OutH: 3, OutW: 4},
		{N: 3, C: 1, H: 1, W: 1, OutH: 2, OutW: 3},
	} {
		nx, ny := g.N*g.C*g.H*g.W, g.N*g.C*g.OutH*g.OutW
		x := h.random(nx)
		y := h.garbage(ny)
		h.both(func(be backend.Backend, s int) { be.Upsample(backend.UpsampleArgs{Geometry: g, X: x[s], Y: y[s]}) })
		h.check(name("Upsample %+v", g), y, 0)
		for _, acc := range []bool{false, true} {
			dy := h.random(ny)
			out, dx := h.dest(nx, acc)
			h.both(func(be backend.Backend, s int) {
				be.UpsampleBackward(backend.UpsampleBackwardArgs{Geometry: g, DY: dy[s], DX: dx[s]})
			})
			h.check(name("UpsampleBackward %+v accumulate %v", g, acc), out, elemTol)
		}
	}
}

func testROIAlign(h *harness) {
	rois := []float32{
		0, 1, 1, 6, 5,
		1, 0.5, 2.25, 3.75, 7.5,
		0, -3, -2, 2, 3, // partly outside
		1, 9, 9, 14, 12, // beyond the map
		0, 2, 2, 2, 2, // empty
		1, 0, 0, 16, 16,
	}
	for _, g := range []backend.ROIAlignGeometry{
		{N: 2, C: 3, H: 8, W: 9, OutH: 2, OutW: 3, SpatialScale: 1, SamplingRatio: 2, Aligned: true},
		{N: 2, C: 2, H: 8, W: 9, OutH: 3, OutW: 3, SpatialScale: 0.5, SamplingRatio: 0, Aligned: false},
		{N: 2, C: 1, H: 5, W: 4, OutH: 1, OutW: 1, SpatialScale: 0.25, SamplingRatio: 0, Aligned: true},
	} {
		g.Regions = len(rois) / 5
		nx, ny := g.N*g.C*g.H*g.W, g.Regions*g.C*g.OutH*g.OutW
		x, r := h.random(nx), h.floats(rois)
		y := h.garbage(ny)
		h.both(func(be backend.Backend, s int) {
			be.ROIAlign(backend.ROIAlignArgs{Geometry: g, X: x[s], ROIs: r[s], Y: y[s]})
		})
		h.check(name("ROIAlign %+v", g), y, 1e-5)
		for _, acc := range []bool{false, true} {
			dy := h.random(ny)
			out, dx := h.dest(nx, acc)
			h.both(func(be backend.Backend, s int) {
				be.ROIAlignBackward(backend.ROIAlignBackwardArgs{Geometry: g, ROIs: r[s], DY: dy[s], DX: dx[s]})
			})
			h.check(name("ROIAlignBackward %+v accumulate %v", g, acc), out, 1e-5)
		}
	}
}

func testLoss(h *harness) {
	type lossCase struct {
		op                 backend.LossOp
		alpha, gamma, beta float32
	}
	cases := []lossCase{
		{op: backend.LossBCEWithLogits}, {op: backend.LossL1}, {op: backend.LossMSE},
		{op: backend.LossSmoothL1, beta: 0.5}, {op: backend.LossSmoothL1, beta: 0},
		{op: backend.LossSigmoidFocal, alpha: 0.25, gamma: 2}, {op: backend.LossSigmoidFocal, alpha: -1, gamma: 1}, {op: backend.LossSigmoidFocal, alpha: 0.25, gamma: 0},
		{op: backend.LossGIoU}, {op: backend.LossCrossEntropy},
	}
	for _, c := range cases {
		for _, n := range []int{0, 1, 9, 40} {
			classes := 5
			nx, nt := n, n
			var xv, tv []float32
			var labels []int32
			switch c.op {
			case backend.LossGIoU:
				nx, nt = 4*n, 4*n
				xv, tv = boxes(h, n), boxes(h, n)
				if n > 2 {
					copy(tv[4:8], xv[4:8]) // identical boxes
					copy(tv[8:12], []float32{1, 1, 1, 1})
				}
			case backend.LossCrossEntropy:
				nx = n * classes
				xv = h.randn(nx, 2)
				for i := 0; i < n; i++ {
					labels = append(labels, int32(h.rng.IntN(classes+1)-1)) // −1 ignored
				}
			default:
				xv = h.randn(n, 2)
				tv = make([]float32, n)
				for i := range tv {
					tv[i] = h.rng.Float32()
				}
				if n > 5 {
					tv[2] = xv[2] // d = 0, the kink of L1 and smooth L1
					xv[4] = float32(math.NaN())
				}
			}
			x := h.floats(xv)
			var target twin
			if labels != nil || c.op == backend.LossCrossEntropy {
				target = h.ints(labels)
			} else {
				target = h.floats(tv)
			}
			y := h.garbage(n)
			label := name("Loss %v %+v n=%d", c.op, c, n)
			h.both(func(be backend.Backend, s int) {
				be.Loss(backend.LossArgs{Op: c.op, N: n, Classes: classes, X: x[s], Target: target[s], Y: y[s], Alpha: c.alpha, Gamma: c.gamma, Beta: c.beta})
			})
			h.check(label, y, 1e-5)
			targetGrad := c.op != backend.LossCrossEntropy && c.op != backend.LossSigmoidFocal
			for _, acc := range []bool{false, true} {
				dyv := h.randn(n, 1)
				if n > 3 {
					dyv[3] = 0
				}
				dy := h.floats(dyv)
				ox, dx := h.dest(nx, acc)
				ot, dt := h.dest(nt, acc)
				h.both(func(be backend.Backend, s int) {
					args := backend.LossBackwardArgs{Op: c.op, N: n, Classes: classes, X: x[s], Target: target[s], DY: dy[s], DX: dx[s], Alpha: c.alpha, Gamma: c.gamma, Beta: c.beta}
					if targetGrad {
						args.DTarget = dt[s]
					}
					be.LossBackward(args)
				})
				h.check(label+name(" backward accumulate %v dx", acc), ox, 1e-5)
				if targetGrad {
					h.check(label+name(" backward accumulate %v dtarget", acc), ot, 1e-5)
				}
			}
		}
	}
}

// boxes returns n random boxes (x1, y1, x2, y2) with x1 < x2, y1 < y2.
func boxes(h *harness, n int) []float32 {
	v := make([]float32, 0, 4*n)
	for i := 0; i < n; i++ {
		x, y := 20*h.rng.Float32(), 20*h.rng.Float32()
		v = append(v, x, y, x+1+10*h.rng.Float32(), y+1+10*h.rng.Float32())
	}
	return v
}

func testPairwise(h *harness) {
	for _, kd := range [][2]int{{0, 3}, {1, 4}, {5, 7}, {6, 1}, {4, 300}} {
		k, d := kd[0], kd[1]
		xv := h.randn(k*d, 1)
		if k > 3 {
			copy(xv[3*d:4*d], xv[1*d:2*d]) // two equal rows: a zero distance off the diagonal
		}
		x := h.floats(xv)
		y := h.garbage(k * k)
		h.both(func(be backend.Backend, s int) {
			be.PairwiseDistance(backend.PairwiseDistanceArgs{K: k, D: d, X: x[s], Y: y[s]})
		})
		h.check(name("PairwiseDistance %v", kd), y, sumTol(d))
		for _, acc := range []bool{false, true} {
			dy := h.random(k * k)
			out, dx := h.dest(k*d, acc)
			h.both(func(be backend.Backend, s int) {
				be.PairwiseDistanceBackward(backend.PairwiseDistanceBackwardArgs{K: k, D: d, X: x[s], Y: y[s], DY: dy[s], DX: dx[s]})
			})
			h.check(name("PairwiseDistanceBackward %v accumulate %v", kd, acc), out, sumTol(k))
		}
	}
}

func testOptimizers(h *harness) {
	for _, n := range []int{0, 1, 50, 70001} {
		g := h.floats(specials(h.randn(max(n-10, 0), 1))[:n])
		p, m := h.random(n), h.random(n)
		vv := h.randn(n, 1)
		for i := range vv {
			vv[i] = vv[i] * vv[i]
		}
		v := h.floats(vv)
		h.both(func(be backend.Backend, s int) {
			be.AdamW(backend.AdamWArgs{N: n, Param: p[s], Grad: g[s], ExpAvg: m[s], ExpAvgSq: v[s], Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Shrink: 0.999, StepSize: 0.01, InvSqrtBC2: 1.2})
		})
		for what, tw := range map[string]twin{"param": p, "exp_avg": m, "exp_avg_sq": v} {
			h.check(name("AdamW n=%d %s", n, what), tw, elemTol)
		}
		for _, cfg := range []struct {
			momentum float32
			nesterov bool
		}{{0, false}, {0.9, false}, {0.9, true}} {
			p, vel := h.random(n), h.random(n)
			h.both(func(be backend.Backend, s int) {
				be.SGD(backend.SGDArgs{N: n, Param: p[s], Grad: g[s], Velocity: vel[s], LR: 0.1, Momentum: cfg.momentum, WeightDecay: 0.01, Nesterov: cfg.nesterov})
			})
			h.check(name("SGD n=%d %+v param", n, cfg), p, elemTol)
			h.check(name("SGD n=%d %+v velocity", n, cfg), vel, elemTol)
		}
	}
}

// testErrors checks that kernels given a buffer too short for their
// arguments panic with a *backend.Error instead of faulting.
func testErrors(h *harness) {
	short := h.dut.Alloc(backend.Float32, 3)
	long := h.dut.Alloc(backend.Float32, 100)
	g := withOutput(convGeometries[0])
	calls := map[string]func(){
		"Unary": func() { h.dut.Unary(backend.UnaryArgs{Op: backend.UnaryReLU, N: 10, X: short, Y: long}) },
		"Copy": func() {
			h.dut.Copy(backend.CopyArgs{Shape: []int{4}, Dst: backend.View{Buf: long}, Src: backend.View{Buf: short}})
		},
		"Gemm": func() {
			h.dut.Gemm(backend.GemmArgs{M: 4, N: 4, K: 4, Batch: 1, Alpha: 1, A: backend.Matrix{Buf: short, LD: 4}, B: backend.Matrix{Buf: long, LD: 4}, C: backend.Matrix{Buf: long, LD: 4}})
		},
		"Conv2d": func() { h.dut.Conv2d(backend.ConvArgs{Geometry: g, X: short, W: long, Y: long}) },
		"AdamW":  func() { h.dut.AdamW(backend.AdamWArgs{N: 50, Param: long, Grad: short, ExpAvg: long, ExpAvgSq: long}) },
		"Gather": func() {
			idx := h.dut.Alloc(backend.Int32, 1)
			h.dut.FromHostInt32(idx, []int32{7})
			h.dut.Gather(backend.GatherArgs{Outer: 1, Size: 3, Inner: 1, Count: 1, Index: idx, Src: short, Dst: backend.Dest{Buf: long}})
		},
	}
	for kernel, call := range calls {
		func() {
			defer func() {
				r := recover()
				e, ok := r.(*backend.Error)
				if !ok || !errors.Is(e, backend.ErrArgument) {
					h.t.Errorf("%s with a bad buffer panicked with %T %v, want a *backend.Error wrapping ErrArgument", kernel, r, r)
				}
			}()
			call()
		}()
	}
}
