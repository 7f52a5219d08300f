// Package cpu is the engine's CPU backend: GEMM through OpenBLAS cblas_sgemm
// (cgo, libopenblas-dev), im2col/col2im and a goroutine pool sized to the
// machine. OpenBLAS is pinned to one thread; parallelism comes from the
// engine splitting work across goroutines, which keeps small GEMMs efficient.
package cpu

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
*/
import "C"

import (
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/gidedge/gidedge/engine/backend"
)

func init() {
	backend.LegacyRegister("cpu", func() (backend.Legacy, error) { return New(runtime.GOMAXPROCS(0)), nil })
}

// Backend is the CPU implementation of backend.Legacy.
type Backend struct {
	workers int
}

var _ backend.Legacy = (*Backend)(nil)

var setThreads sync.Once

// New returns a CPU backend that splits work over the given number of workers.
func New(workers int) *Backend {
	if workers < 1 {
		workers = 1
	}
	setThreads.Do(func() { C.openblas_set_num_threads(1) })
	return &Backend{workers: workers}
}

// Name implements backend.Legacy.
func (b *Backend) Name() string { return "cpu" }

// Workers implements backend.Legacy.
func (b *Backend) Workers() int { return b.workers }

// Supports implements backend.Legacy.
func (b *Backend) Supports(c backend.Capability) bool { return c == backend.CapDepthwise }

// OpenBLASConfig returns OpenBLAS's build description (version, core).
func OpenBLASConfig() string {
	return strings.TrimSpace(C.GoString(C.openblas_get_config()))
}

// SetBLASThreads sets OpenBLAS's own thread count (used by the sgemm reference benchmark).
func SetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// Gemm implements backend.Legacy with cblas_sgemm.
func (b *Backend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	aRows, bRows := m, k
	if transA {
		ta = uint32(C.CblasTrans)
		aRows = k
	}
	if transB {
		tb = uint32(C.CblasTrans)
		bRows = n
	}
	// Bounds checks here keep a bad call a Go panic instead of a memory fault.
	_ = a[(aRows-1)*lda]
	_ = bm[(bRows-1)*ldb]
	_ = c[(m-1)*ldc+n-1]
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb),
		C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&bm[0])), C.blasint(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// Parallel implements backend.Legacy.
func (b *Backend) Parallel(n int, fn func(lo, hi int)) {
	w := b.workers
	if w > n {
		w = n
	}
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}

// validRange returns the output columns [lo, hi) whose input column
// ox·stride+off lies inside [0, width).
func validRange(outW, stride, off, width int) (int, int) {
	lo := 0
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	hi := outW
	if last := width - 1 - off; last < 0 {
		hi = 0
	} else if m := last/stride + 1; m < hi {
		hi = m
	}
	return min(lo, hi), hi
}

// Im2Col implements backend.Legacy. Each patch row is built from the valid
// column range of the input row, so the inner loops carry no bounds tests.
func (b *Backend) Im2Col(g backend.LegacyConvGeometry, image, col []float32) {
	ohw := g.OutH * g.OutW
	row := 0
	for c := 0; c < g.Channels; c++ {
		plane := image[c*g.Height*g.Width : (c+1)*g.Height*g.Width]
		for ky := 0; ky < g.KernelH; ky++ {
			offY := ky*g.DilationH - g.PadH
			for kx := 0; kx < g.KernelW; kx++ {
				dst := col[row*ohw : (row+1)*ohw]
				row++
				offX := kx*g.DilationW - g.PadW
				lo, hi := validRange(g.OutW, g.StrideW, offX, g.Width)
				for oy := 0; oy < g.OutH; oy++ {
					d := dst[oy*g.OutW : (oy+1)*g.OutW]
					iy := oy*g.StrideH + offY
					if iy < 0 || iy >= g.Height {
						clear(d)
						continue
					}
					clear(d[:lo])
					clear(d[hi:])
					if lo >= hi {
						// This kernel column falls in the padding for every output.
						continue
					}
					src := plane[iy*g.Width : (iy+1)*g.Width]
					switch g.StrideW {
					case 1:
						copy(d[lo:hi], src[lo+offX:hi+offX])
					case 2:
						s := src[2*lo+offX:]
						dd := d[lo:hi]
						_ = s[2*(len(dd)-1)]
						for j := range dd {
							dd[j] = s[2*j]
						}
					default:
						for ox := lo; ox < hi; ox++ {
							d[ox] = src[ox*g.StrideW+offX]
						}
					}
				}
			}
		}
	}
}

// Col2Im implements backend.Legacy.
func (b *Backend) Col2Im(g backend.LegacyConvGeometry, col, image []float32) {
	ohw := g.OutH * g.OutW
	row := 0
	for c := 0; c < g.Channels; c++ {
		plane := image[c*g.Height*g.Width : (c+1)*g.Height*g.Width]
		for ky := 0; ky < g.KernelH; ky++ {
			offY := ky*g.DilationH - g.PadH
			for kx := 0; kx < g.KernelW; kx++ {
				src := col[row*ohw : (row+1)*ohw]
				row++
				offX := kx*g.DilationW - g.PadW
				lo, hi := validRange(g.OutW, g.StrideW, offX, g.Width)
				if lo >= hi {
					continue
				}
				for oy := 0; oy < g.OutH; oy++ {
					iy := oy*g.StrideH + offY
					if iy < 0 || iy >= g.Height {
						continue
					}
					dst := plane[iy*g.Width : (iy+1)*g.Width]
					s := src[oy*g.OutW+lo : oy*g.OutW+hi]
					switch g.StrideW {
					case 1:
						d := dst[lo+offX : hi+offX]
						d = d[:len(s)]
						for j, v := range s {
							d[j] += v
						}
					case 2:
						d := dst[2*lo+offX:]
						_ = d[2*(len(s)-1)]
						for j, v := range s {
							d[2*j] += v
						}
					default:
						for j, v := range s {
							dst[(lo+j)*g.StrideW+offX] += v
						}
					}
				}
			}
		}
	}
}
