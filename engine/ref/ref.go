// Package ref is the engine's reference backend: every kernel of
// backend.Backend written as plain, serial Go loops over host memory, with
// no cgo and no cleverness. It is the oracle the conformance suite
// (package backendtest) compares other backends against, and it runs the
// whole engine on any platform Go supports, slowly.
//
// Memory is ordinary Go slices wrapped in *Buffer. Free poisons a buffer,
// so an engine bug that uses a released tensor panics here instead of
// reading stale values. Sums (reductions, GEMM, convolutions, batch-norm
// statistics) accumulate in float64.
//
// The CPU backend (package cpu) shares this package's Buffer type and calls
// its kernels on sub-ranges for the work it splits across goroutines, so
// the two agree exactly on those kernels.
//
// Errors: a kernel given a buffer of another backend, the wrong dtype, a
// freed buffer or too few elements panics with a *backend.Error.
package ref

import (
	"sync/atomic"

	"github.com/gidedge/gidedge/engine/backend"
)

func init() {
	backend.Register("ref", func() (backend.Backend, error) { return New(), nil })
}

// Name is the device name of this backend.
const Name = "ref"

// Buffer is host memory: a float32 or int32 slice.
type Buffer struct {
	f     []float32
	i     []int32
	dtype backend.DType
	n     int
	freed bool
}

// Len implements backend.Buffer.
func (b *Buffer) Len() int { return b.n }

// DType implements backend.Buffer.
func (b *Buffer) DType() backend.DType { return b.dtype }

// Wrap returns a Float32 buffer over data (not copied).
func Wrap(data []float32) *Buffer {
	return &Buffer{f: data, dtype: backend.Float32, n: len(data)}
}

// WrapInt32 returns an Int32 buffer over data (not copied).
func WrapInt32(data []int32) *Buffer {
	return &Buffer{i: data, dtype: backend.Int32, n: len(data)}
}

// Release marks b freed and returns its float32 storage (nil for Int32
// buffers), for a backend that caches storage.
func (b *Buffer) Release() []float32 {
	b.freed = true
	f := b.f
	b.f, b.i = nil, nil
	return f
}

// Floats returns the values of a Float32 host buffer of at least n
// elements, as a slice of length n; nil for a nil buffer. who and kernel
// name the caller in the panic of a bad buffer.
func Floats(who, kernel string, b backend.Buffer, n int) []float32 {
	if b == nil {
		return nil
	}
	hb := host(who, kernel, b, backend.Float32, n)
	return hb.f[:n]
}

// Ints returns the values of an Int32 host buffer of at least n elements.
func Ints(who, kernel string, b backend.Buffer, n int) []int32 {
	if b == nil {
		return nil
	}
	hb := host(who, kernel, b, backend.Int32, n)
	return hb.i[:n]
}

func host(who, kernel string, b backend.Buffer, dtype backend.DType, n int) *Buffer {
	hb, ok := b.(*Buffer)
	switch {
	case !ok:
		backend.Fail(who, kernel, "buffer of type %T belongs to another backend", b)
	case hb.freed:
		backend.Fail(who, kernel, "buffer used after Free")
	case hb.dtype != dtype:
		backend.Fail(who, kernel, "buffer holds %v, want %v", hb.dtype, dtype)
	case hb.n < n || n < 0:
		backend.Fail(who, kernel, "buffer has %d elements, the arguments need %d", hb.n, n)
	}
	return hb
}

// Backend is the reference backend.
type Backend struct {
	fresh atomic.Int64
}

var (
	_ backend.Backend         = (*Backend)(nil)
	_ backend.ActivationFuser = (*Backend)(nil)
)

// New returns a reference backend.
func New() *Backend { return &Backend{} }

// Name implements backend.Backend.
func (r *Backend) Name() string { return Name }

// Describe implements backend.Backend.
func (r *Backend) Describe() string { return "ref: plain Go reference kernels, one goroutine" }

// Alloc implements backend.Backend.
func (r *Backend) Alloc(dtype backend.DType, n int) backend.Buffer {
	if n < 0 {
		backend.Fail(Name, "Alloc", "negative length %d", n)
	}
	r.fresh.Add(int64(n * dtype.Size()))
	switch dtype {
	case backend.Float32:
		return Wrap(make([]float32, n))
	case backend.Int32:
		return WrapInt32(make([]int32, n))
	}
	backend.Fail(Name, "Alloc", "dtype %v is not implemented", dtype)
	return nil
}

// Free implements backend.Backend: the buffer is poisoned.
func (r *Backend) Free(b backend.Buffer) {
	if b == nil {
		return
	}
	hb, ok := b.(*Buffer)
	if !ok {
		backend.Fail(Name, "Free", "buffer of type %T belongs to another backend", b)
	}
	hb.Release()
}

// FromHost implements backend.Backend.
func (r *Backend) FromHost(dst backend.Buffer, src []float32) {
	d := exact(Name, "FromHost", dst, backend.Float32, len(src))
	copy(d.f, src)
}

// FromHostInt32 implements backend.Backend.
func (r *Backend) FromHostInt32(dst backend.Buffer, src []int32) {
	d := exact(Name, "FromHostInt32", dst, backend.Int32, len(src))
	copy(d.i, src)
}

// ToHost implements backend.Backend.
func (r *Backend) ToHost(dst []float32, src backend.Buffer) {
	s := exact(Name, "ToHost", src, backend.Float32, len(dst))
	copy(dst, s.f)
}

// exact checks a transfer: the host slice must match the buffer's length.
func exact(who, kernel string, b backend.Buffer, dtype backend.DType, n int) *Buffer {
	hb := host(who, kernel, b, dtype, n)
	if hb.n != n {
		backend.Fail(who, kernel, "host slice has %d elements, the buffer %d", n, hb.n)
	}
	return hb
}

// Sync implements backend.Backend; the reference backend is synchronous.
func (r *Backend) Sync() error { return nil }

// MemStats implements backend.Backend: every allocation is fresh.
func (r *Backend) MemStats() backend.MemStats {
	return backend.MemStats{FreshBytes: r.fresh.Load()}
}

// Fill implements backend.Backend.
func (r *Backend) Fill(dst backend.Buffer, value float32) {
	d := Floats(Name, "Fill", dst, dst.Len())
	for i := range d {
		d[i] = value
	}
}

// dest returns the slice of a wanted Dest, zeroed unless it accumulates.
func dest(kernel string, d backend.Dest, n int) []float32 {
	if d.Buf == nil {
		return nil
	}
	s := Floats(Name, kernel, d.Buf, n)
	if !d.Accumulate {
		clear(s)
	}
	return s
}

// put writes v into dst[i], or adds it when accumulating.
func put(dst []float32, i int, v float32, accumulate bool) {
	if accumulate {
		dst[i] += v
	} else {
		dst[i] = v
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// checkShape rejects negative dimensions and ranks over backend.MaxRank.
func checkShape(kernel string, shape []int) { CheckShape(Name, kernel, shape) }

// CheckShape rejects negative dimensions and ranks over backend.MaxRank.
func CheckShape(who, kernel string, shape []int) {
	if len(shape) > backend.MaxRank {
		backend.Fail(who, kernel, "rank %d exceeds %d", len(shape), backend.MaxRank)
	}
	for _, d := range shape {
		if d < 0 {
			backend.Fail(who, kernel, "negative dimension in %v", shape)
		}
	}
}

// Extent returns how many elements of its buffer a view spans over shape:
// one past the largest element it addresses (0 for an empty shape).
func Extent(shape []int, v backend.View) int {
	if numel(shape) == 0 {
		return 0
	}
	strides := v.Strides
	if strides == nil {
		strides = backend.DenseStrides(shape)
	}
	last := v.Offset
	for i, d := range shape {
		last += (d - 1) * strides[i]
	}
	return last + 1
}

// viewFloats resolves a view for this backend's kernels.
func viewFloats(kernel, name string, shape []int, v backend.View) ([]float32, []int) {
	return ViewFloats(Name, kernel, name, shape, v)
}

// ViewFloats resolves a view over shape to its buffer's values (long
// enough for every element the view addresses) and its strides, checking
// them; who, kernel and name (the argument) label the panic.
func ViewFloats(who, kernel, name string, shape []int, v backend.View) ([]float32, []int) {
	strides, extent := CheckView(who, kernel, name, shape, v)
	return Floats(who, kernel, v.Buf, extent), strides
}

// CheckView checks a view over shape (strides, offset, buffer) for any
// backend and returns its strides and how many elements of its buffer it
// spans; who, kernel and name (the argument) label the panic.
func CheckView(who, kernel, name string, shape []int, v backend.View) (strides []int, extent int) {
	strides = v.Strides
	if strides == nil {
		strides = backend.DenseStrides(shape)
	}
	if len(strides) != len(shape) {
		backend.Fail(who, kernel, "%s has %d strides for a rank-%d shape", name, len(strides), len(shape))
	}
	for _, s := range strides {
		if s < 0 {
			backend.Fail(who, kernel, "%s has a negative stride in %v", name, strides)
		}
	}
	if v.Offset < 0 {
		backend.Fail(who, kernel, "%s has a negative offset", name)
	}
	if v.Buf == nil {
		backend.Fail(who, kernel, "%s has no buffer", name)
	}
	return strides, Extent(shape, v)
}

// offset is the element index of multi-index idx under strides.
func offset(base int, idx, strides []int) int {
	o := base
	for i, k := range idx {
		o += k * strides[i]
	}
	return o
}

// next advances a row-major multi-index over shape; it returns false after
// the last one.
func next(idx, shape []int) bool {
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d]++
		if idx[d] < shape[d] {
			return true
		}
		idx[d] = 0
	}
	return false
}
