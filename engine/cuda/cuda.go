package cuda

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/engine/cuda/kernels"
)

// Name is the device name of this backend.
const Name = "cuda"

// Environment variables read by OptionsFromEnv (the registered device).
const (
	// EnvDevice is the GPU ordinal (default 0), as nvidia-smi numbers them.
	EnvDevice = "GIDEDGE_CUDA_DEVICE"
	// EnvTF32 set to 1 lets GEMMs and cuDNN convolutions use TF32.
	EnvTF32 = "GIDEDGE_CUDA_TF32"
	// EnvCUDNN set to 0 keeps cuDNN unused even where it is installed.
	EnvCUDNN = "GIDEDGE_CUDA_CUDNN"
)

// Options configure Open.
type Options struct {
	// Libraries says where to look for libcuda, cuBLAS and cuDNN.
	Libraries driver.Config
	// Device is the GPU ordinal.
	Device int
	// TF32 lets GEMMs and convolutions round their inputs to TF32 on
	// tensor cores: several times faster, about 10 mantissa bits.
	TF32 bool
	// NoDNN leaves cuDNN unused: convolutions run as im2col + cuBLAS.
	NoDNN bool
}

// OptionsFromEnv reads GIDEDGE_CUDA_LIBS, GIDEDGE_CUDA_DEVICE,
// GIDEDGE_CUDA_TF32 and GIDEDGE_CUDA_CUDNN.
func OptionsFromEnv() (Options, error) {
	o := Options{Libraries: driver.DefaultConfig()}
	if v := strings.TrimSpace(os.Getenv(EnvDevice)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return o, fmt.Errorf("cuda: %s=%q: want a GPU number (0, 1, …)", EnvDevice, v)
		}
		o.Device = n
	}
	var err error
	if o.TF32, err = envBool(EnvTF32, false); err != nil {
		return o, err
	}
	dnn, err := envBool(EnvCUDNN, true)
	o.NoDNN = !dnn
	return o, err
}

func envBool(name string, def bool) (bool, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("cuda: %s=%q: want 1 or 0", name, v)
	}
	return b, nil
}

// Backend is the CUDA implementation of backend.Backend. Its methods are
// meant for one goroutine at a time, except the pinned-memory methods and
// Figures, which any goroutine may call.
type Backend struct {
	drv    *driver.Driver
	ctx    *driver.Context
	stream *driver.Stream // every kernel, copy and GEMM
	alloc  *driver.Allocator
	blas   *driver.BLAS
	dnn    driver.DNN // nil when cuDNN is not used
	noDNN  string     // why cuDNN is not used
	set    *kernels.Set
	tf32   bool

	// gcStep is how much InUseBytes may grow before Alloc runs the
	// garbage collector, whose cleanups return dropped buffers.
	gcStep, gcMark int64

	up     *uploader
	closed bool
	mu     sync.Mutex // up, closed
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.Reporter = (*Backend)(nil)
var _ backend.PinnedHost = (*Backend)(nil)

// Open loads the CUDA libraries, retains the GPU's primary context, loads
// the kernels and creates the compute stream and the cuBLAS (and cuDNN)
// handles. cuBLAS is required; cuDNN is optional.
func Open(o Options) (_ *Backend, err error) {
	drv, err := driver.Open(o.Libraries)
	if err != nil {
		return nil, err
	}
	b := &Backend{drv: drv, tf32: o.TF32}
	defer func() {
		if err != nil {
			_ = b.Close() // what was made so far
		}
	}()
	if b.ctx, err = drv.Context(o.Device); err != nil {
		return nil, err
	}
	if b.stream, err = b.ctx.NewStream(); err != nil {
		return nil, err
	}
	if b.blas, err = b.ctx.BLAS(); err != nil {
		return nil, err
	}
	if err = b.blas.SetStream(b.stream); err != nil {
		return nil, err
	}
	if err = b.blas.SetTF32(o.TF32); err != nil {
		return nil, err
	}
	if b.set, err = kernels.Load(b.ctx); err != nil {
		return nil, err
	}
	b.alloc = driver.NewAllocator(b.ctx)
	switch {
	case o.NoDNN:
		b.noDNN = "turned off (" + EnvCUDNN + "=0)"
	default:
		dnn, derr := b.ctx.DNN(b.alloc)
		if derr != nil {
			if !errors.Is(derr, driver.ErrUnavailable) {
				return nil, derr
			}
			b.noDNN = "not installed"
		} else {
			b.dnn = dnn
		}
	}
	total := int64(b.ctx.Device().TotalMemoryBytes)
	b.gcStep = max(total/16, 64<<20)
	return b, nil
}

// Close releases the GPU's resources; the backend must not be used
// afterwards. Buffers still held are released with the context.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if b.stream != nil {
		add(b.stream.Synchronize())
	}
	if b.up != nil {
		add(b.up.close())
	}
	if b.dnn != nil {
		add(b.dnn.Close())
	}
	if b.blas != nil {
		add(b.blas.Close())
	}
	if b.set != nil {
		add(b.set.Close())
	}
	if b.alloc != nil {
		add(b.alloc.Trim())
	}
	if b.stream != nil {
		add(b.stream.Close())
	}
	if b.ctx != nil {
		add(b.ctx.Close())
	}
	return errors.Join(errs...)
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Describe implements backend.Backend: the GPU, the driver and the
// libraries in use.
func (b *Backend) Describe() string {
	info := b.ctx.Device()
	v := b.drv.Version()
	conv := "convolutions: im2col + cuBLAS (cuDNN " + b.noDNN + ")"
	if b.dnn != nil {
		conv = "convolutions: " + b.dnn.Name()
	}
	math := "FP32"
	if b.tf32 {
		math = "TF32"
	}
	return fmt.Sprintf("cuda: %s (GPU %d), driver CUDA %d.%d, cuBLAS %s %s, %s", info, info.Ordinal, v/1000, v%1000/10, b.blas.Version(), math, conv)
}

// Device describes the GPU.
func (b *Backend) Device() driver.DeviceInfo { return b.ctx.Device() }

// TF32 reports whether GEMMs and convolutions may use TF32.
func (b *Backend) TF32() bool { return b.tf32 }

// SetTF32 switches TF32 math for later GEMMs and convolutions.
func (b *Backend) SetTF32(on bool) error {
	if err := b.blas.SetTF32(on); err != nil {
		return err
	}
	b.tf32 = on
	return nil
}

// Buffer is device memory: Len elements of one dtype. Index buffers
// (Int32) remember the range of the values written into them, so that
// gathers can check their indices without reading device memory.
type Buffer struct {
	owner   *Backend
	mem     driver.Buffer
	n       int
	dtype   backend.DType
	freed   bool
	cleanup runtime.Cleanup
	// lo and hi bound the values of an Int32 buffer when known.
	lo, hi  int32
	bounded bool
}

// Len implements backend.Buffer.
func (x *Buffer) Len() int { return x.n }

// DType implements backend.Buffer.
func (x *Buffer) DType() backend.DType { return x.dtype }

// Ptr is the buffer's device address (0 for an empty buffer).
func (x *Buffer) Ptr() driver.DevicePtr { return x.mem.Ptr }

// setBounds records that every value of an Int32 buffer lies in [lo, hi].
func (x *Buffer) setBounds(lo, hi int32) { x.lo, x.hi, x.bounded = lo, hi, true }

// Alloc implements backend.Backend. Memory comes from the caching
// allocator; a buffer the engine drops without Free goes back to it when
// the garbage collector finds it.
func (b *Backend) Alloc(dtype backend.DType, n int) backend.Buffer {
	if n < 0 {
		backend.Fail(Name, "Alloc", "negative length %d", n)
	}
	if dtype != backend.Float32 && dtype != backend.Int32 {
		backend.Fail(Name, "Alloc", "dtype %v is not implemented", dtype)
	}
	if n > kernels.MaxElements {
		backend.Fail(Name, "Alloc", "%d elements exceed the kernels' limit of %d", n, kernels.MaxElements)
	}
	x := &Buffer{owner: b, n: n, dtype: dtype}
	if n == 0 {
		return x
	}
	mem, err := b.alloc.Alloc(n * dtype.Size())
	for retry := 0; errors.Is(err, driver.ErrOutOfMemory) && retry < 3; retry++ {
		// Buffers the engine dropped may be waiting for the collector.
		runtime.GC()
		time.Sleep(time.Duration(retry+1) * 20 * time.Millisecond)
		mem, err = b.alloc.Alloc(n * dtype.Size())
	}
	if err != nil {
		b.deviceFail("Alloc", err)
	}
	x.mem = mem
	alloc := b.alloc
	x.cleanup = runtime.AddCleanup(x, func(m driver.Buffer) { alloc.Free(m) }, mem)
	if st := b.alloc.Stats(); st.InUseBytes-b.gcMark > b.gcStep {
		b.gcMark = st.InUseBytes
		runtime.GC()
	}
	return x
}

// Free implements backend.Backend: the block goes back to the cache, for
// kernels queued later.
func (b *Backend) Free(buf backend.Buffer) {
	if buf == nil {
		return
	}
	x := b.own("Free", "buffer", buf)
	if x.freed {
		backend.Fail(Name, "Free", "buffer freed twice")
	}
	x.freed = true
	if x.mem.Ptr != 0 {
		x.cleanup.Stop()
		b.alloc.Free(x.mem)
		x.mem = driver.Buffer{}
	}
}

// FromHost implements backend.Backend. It returns once src may be reused
// (the driver stages the copy).
func (b *Backend) FromHost(dst backend.Buffer, src []float32) {
	x := b.exact("FromHost", dst, backend.Float32, len(src))
	if err := driver.CopyToDevice(b.stream, x.mem.Ptr, src); err != nil {
		b.deviceFail("FromHost", err)
	}
}

// FromHostInt32 implements backend.Backend.
func (b *Backend) FromHostInt32(dst backend.Buffer, src []int32) {
	x := b.exact("FromHostInt32", dst, backend.Int32, len(src))
	lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
	for _, v := range src {
		lo, hi = min(lo, v), max(hi, v)
	}
	x.setBounds(lo, hi)
	if err := driver.CopyToDevice(b.stream, x.mem.Ptr, src); err != nil {
		b.deviceFail("FromHostInt32", err)
	}
}

// ToHost implements backend.Backend: it waits for the queued work.
func (b *Backend) ToHost(dst []float32, src backend.Buffer) {
	x := b.exact("ToHost", src, backend.Float32, len(dst))
	if err := driver.CopyFromDevice(b.stream, dst, x.mem.Ptr); err != nil {
		b.deviceFail("ToHost", err)
	}
}

// Sync implements backend.Backend.
func (b *Backend) Sync() error {
	if err := b.stream.Synchronize(); err != nil {
		return deviceError("Sync", err)
	}
	return nil
}

// MemStats implements backend.Backend.
func (b *Backend) MemStats() backend.MemStats {
	st := b.alloc.Stats()
	return backend.MemStats{FreshBytes: st.FreshBytes, ReusedBytes: st.ReusedBytes}
}

// Figures implements backend.Reporter: the caching allocator's counters
// and the GPU's free memory.
func (b *Backend) Figures() []backend.Figure {
	var out []backend.Figure
	for _, f := range b.alloc.Stats().Figures() {
		out = append(out, backend.Figure{Name: f.Name, Value: f.Value})
	}
	if free, total, err := b.ctx.MemInfo(); err == nil {
		out = append(out, backend.Figure{Name: "gidedge_cuda_device_free_bytes", Value: float64(free)},
			backend.Figure{Name: "gidedge_cuda_device_total_bytes", Value: float64(total)})
	}
	return out
}

// deviceErr matches backend.ErrDevice and the driver's sentinel.
type deviceErr struct{ err error }

func (e deviceErr) Error() string   { return e.err.Error() }
func (e deviceErr) Unwrap() []error { return []error{backend.ErrDevice, e.err} }

func deviceError(kernel string, err error) error {
	return &backend.Error{Backend: Name, Kernel: kernel, Detail: "the GPU reported an error", Err: deviceErr{err}}
}

// deviceFail panics with the error of a failed CUDA call. Errors that are
// not the driver's (a launch rejected by the kernels' argument check) are
// programmer errors.
func (b *Backend) deviceFail(kernel string, err error) {
	var de *driver.Error
	if !errors.As(err, &de) {
		backend.Fail(Name, kernel, "%v", err)
	}
	panic(deviceError(kernel, err))
}

// own returns buf as this backend's live buffer.
func (b *Backend) own(kernel, name string, buf backend.Buffer) *Buffer {
	x, ok := buf.(*Buffer)
	switch {
	case !ok:
		backend.Fail(Name, kernel, "%s of type %T belongs to another backend", name, buf)
	case x.owner != b:
		backend.Fail(Name, kernel, "%s belongs to another CUDA backend", name)
	case x.freed:
		backend.Fail(Name, kernel, "%s used after Free", name)
	}
	return x
}

// buffer checks a buffer argument: this backend's, of dtype, with at least
// n elements.
func (b *Backend) buffer(kernel, name string, buf backend.Buffer, dtype backend.DType, n int) *Buffer {
	if buf == nil {
		backend.Fail(Name, kernel, "%s is missing", name)
	}
	x := b.own(kernel, name, buf)
	switch {
	case x.dtype != dtype:
		backend.Fail(Name, kernel, "%s holds %v, want %v", name, x.dtype, dtype)
	case n < 0 || x.n < n:
		backend.Fail(Name, kernel, "%s has %d elements, the arguments need %d", name, x.n, n)
	}
	return x
}

// exact checks a host transfer: the buffer must have n elements.
func (b *Backend) exact(kernel string, buf backend.Buffer, dtype backend.DType, n int) *Buffer {
	x := b.buffer(kernel, "buffer", buf, dtype, n)
	if x.n != n {
		backend.Fail(Name, kernel, "host slice has %d elements, the buffer %d", n, x.n)
	}
	return x
}

// f32 is the device address of a Float32 argument of at least n elements;
// a nil buffer is 0 (C's NULL).
func (b *Backend) f32(kernel, name string, buf backend.Buffer, n int) driver.DevicePtr {
	if buf == nil {
		return 0
	}
	return b.buffer(kernel, name, buf, backend.Float32, n).mem.Ptr
}

// i32 is the device address of an Int32 argument.
func (b *Backend) i32(kernel, name string, buf backend.Buffer, n int) driver.DevicePtr {
	if buf == nil {
		return 0
	}
	return b.buffer(kernel, name, buf, backend.Int32, n).mem.Ptr
}

// dest is the address of a wanted gradient output and the beta of its
// kernel (1 adds, 0 overwrites); 0 and false when it is not wanted.
func (b *Backend) dest(kernel, name string, d backend.Dest, n int) (driver.DevicePtr, float32, bool) {
	if d.Buf == nil {
		return 0, 0, false
	}
	p := b.buffer(kernel, name, d.Buf, backend.Float32, n).mem.Ptr
	if d.Accumulate {
		return p, 1, true
	}
	return p, 0, true
}

// at offsets a device address by n float32 elements.
func at(p driver.DevicePtr, n int) driver.DevicePtr {
	if p == 0 {
		return 0
	}
	return p + driver.DevicePtr(4*n)
}

// launch queues a kernel on the compute stream; a failure panics.
func (b *Backend) launch(kernel, name string, cfg driver.LaunchConfig, args ...driver.Arg) {
	if err := b.set.Launch(b.stream, name, cfg, args...); err != nil {
		b.deviceFail(kernel, err)
	}
}

// Argument helpers for launches.
func ptr(p driver.DevicePtr) driver.Arg { return driver.Pointer(p) }
func i32(v int) driver.Arg              { return driver.Int32(int32(v)) }
func f32(v float32) driver.Arg          { return driver.Float32(v) }

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// elementwise is the launch geometry of a grid-stride kernel over n.
func elementwise(n int) driver.LaunchConfig { return kernels.Elementwise(n) }
