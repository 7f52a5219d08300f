// Package backendtest is the conformance suite every engine backend must
// pass: GEMM in all four transpose combinations with leading dimensions
// larger than the matrices, im2col against a direct reference, col2im as
// im2col's exact adjoint, and Parallel's coverage of its range. A backend
// package runs it from a test:
//
//	func TestConformance(t *testing.T) { backendtest.Run(t, cpu.New(2)) }
package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
)

// Run checks b against the reference semantics of backend.Legacy.
func Run(t *testing.T, b backend.Legacy) {
	t.Run("Gemm", func(t *testing.T) { testGemm(t, b) })
	t.Run("Im2Col", func(t *testing.T) { testIm2Col(t, b) })
	t.Run("Col2ImAdjoint", func(t *testing.T) { testAdjoint(t, b) })
	t.Run("Parallel", func(t *testing.T) { testParallel(t, b) })
	if b.Name() == "" || b.Workers() < 1 {
		t.Errorf("backend name %q and workers %d: want a name and at least one worker", b.Name(), b.Workers())
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// at reads element (i, j) of op(M) for a row-major M with leading dimension ld.
func at(m []float32, ld int, trans bool, i, j int) float32 {
	if trans {
		return m[j*ld+i]
	}
	return m[i*ld+j]
}

func testGemm(t *testing.T, b backend.Legacy) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 70, 27}, {5, 1, 128}, {1, 31, 4}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, beta := range []float32{0, 1, -0.5} {
					name := fmt.Sprintf("m%d_n%d_k%d_ta%v_tb%v_beta%v", m, n, k, ta, tb, beta)
					aRows, aCols := m, k
					if ta {
						aRows, aCols = k, m
					}
					bRows, bCols := k, n
					if tb {
						bRows, bCols = n, k
					}
					lda, ldb, ldc := aCols+2, bCols+1, n+3
					a := randSlice(rng, aRows*lda)
					bm := randSlice(rng, bRows*ldb)
					c := randSlice(rng, m*ldc)
					want := append([]float32(nil), c...)
					const alpha = 1.5
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							var acc float64
							for p := 0; p < k; p++ {
								acc += float64(at(a, lda, ta, i, p)) * float64(at(bm, ldb, tb, p, j))
							}
							want[i*ldc+j] = float32(alpha*acc) + beta*c[i*ldc+j]
						}
					}
					b.Gemm(ta, tb, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < ldc; j++ {
							got, w := c[i*ldc+j], want[i*ldc+j]
							if j >= n {
								if got != w {
									t.Fatalf("%s: padding column (%d, %d) changed to %v", name, i, j, got)
								}
								continue
							}
							if math.Abs(float64(got-w)) > 1e-4*math.Sqrt(float64(k))*max(1, math.Abs(float64(w))) {
								t.Fatalf("%s: C[%d][%d] = %v, want %v", name, i, j, got, w)
							}
						}
					}
				}
			}
		}
	}
}

var geometries = []backend.LegacyConvGeometry{
	{Channels: 3, Height: 7, Width: 5, KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1},
	{Channels: 2, Height: 9, Width: 8, KernelH: 3, KernelW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilationH: 1, DilationW: 1},
	{Channels: 4, Height: 6, Width: 7, KernelH: 1, KernelW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1},
	{Channels: 2, Height: 8, Width: 9, KernelH: 3, KernelW: 2, StrideH: 1, StrideW: 3, PadH: 2, PadW: 0, DilationH: 2, DilationW: 1},
	{Channels: 1, Height: 5, Width: 5, KernelH: 5, KernelW: 5, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilationH: 1, DilationW: 1},
	{Channels: 3, Height: 11, Width: 4, KernelH: 3, KernelW: 3, StrideH: 3, StrideW: 1, PadH: 0, PadW: 2, DilationH: 1, DilationW: 2},
}

func withOutput(g backend.LegacyConvGeometry) backend.LegacyConvGeometry {
	g.OutH = (g.Height+2*g.PadH-g.DilationH*(g.KernelH-1)-1)/g.StrideH + 1
	g.OutW = (g.Width+2*g.PadW-g.DilationW*(g.KernelW-1)-1)/g.StrideW + 1
	return g
}

func testIm2Col(t *testing.T, b backend.Legacy) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, g := range geometries {
		g = withOutput(g)
		img := randSlice(rng, g.Channels*g.Height*g.Width)
		col := randSlice(rng, g.ColRows()*g.ColCols()) // garbage the kernel must overwrite
		b.Im2Col(g, img, col)
		for c := 0; c < g.Channels; c++ {
			for ky := 0; ky < g.KernelH; ky++ {
				for kx := 0; kx < g.KernelW; kx++ {
					row := (c*g.KernelH+ky)*g.KernelW + kx
					for oy := 0; oy < g.OutH; oy++ {
						for ox := 0; ox < g.OutW; ox++ {
							iy := oy*g.StrideH - g.PadH + ky*g.DilationH
							ix := ox*g.StrideW - g.PadW + kx*g.DilationW
							var want float32
							if iy >= 0 && iy < g.Height && ix >= 0 && ix < g.Width {
								want = img[(c*g.Height+iy)*g.Width+ix]
							}
							if got := col[row*g.ColCols()+oy*g.OutW+ox]; got != want {
								t.Fatalf("%+v: col[%d][%d,%d] = %v, want %v", g, row, oy, ox, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func testAdjoint(t *testing.T, b backend.Legacy) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, g := range geometries {
		g = withOutput(g)
		img := randSlice(rng, g.Channels*g.Height*g.Width)
		col := randSlice(rng, g.ColRows()*g.ColCols())
		im2col := make([]float32, len(col))
		b.Im2Col(g, img, im2col)
		base := randSlice(rng, len(img))
		col2im := append([]float32(nil), base...)
		b.Col2Im(g, col, col2im) // adds into col2im
		var lhs, rhs float64
		for i, v := range im2col {
			lhs += float64(v) * float64(col[i])
		}
		for i, v := range col2im {
			rhs += float64(v-base[i]) * float64(img[i])
		}
		if math.Abs(lhs-rhs) > 1e-3*max(1, math.Abs(lhs)) {
			t.Fatalf("%+v: <im2col(x), c> = %v but <x, col2im(c)> = %v", g, lhs, rhs)
		}
	}
}

func testParallel(t *testing.T, b backend.Legacy) {
	for _, n := range []int{0, 1, 2, 3, b.Workers(), b.Workers() + 1, 1000} {
		var mu sync.Mutex
		hits := make([]int, n)
		calls := 0
		b.Parallel(n, func(lo, hi int) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if lo >= hi {
				t.Errorf("n=%d: empty chunk [%d, %d)", n, lo, hi)
			}
			for i := lo; i < hi; i++ {
				hits[i]++
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, h)
			}
		}
		if calls > max(b.Workers(), 1) {
			t.Fatalf("n=%d: %d chunks for %d workers", n, calls, b.Workers())
		}
	}
}
