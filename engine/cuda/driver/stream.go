package driver

import (
	"time"
	"unsafe"
)

// Stream is an ordered queue of device work. Streams are created
// non-blocking: they do not synchronise with the legacy default stream, so
// every copy and launch gidedge makes names its stream.
type Stream struct {
	c *Context
	h unsafe.Pointer
}

// NewStream creates a stream.
func (c *Context) NewStream() (*Stream, error) {
	h, rc := c.d.native.streamCreate(c.h, 1) // CU_STREAM_NON_BLOCKING
	if err := c.d.cudaError("cuStreamCreate", rc, ""); err != nil {
		return nil, err
	}
	return &Stream{c: c, h: h}, nil
}

// Context is the stream's context.
func (s *Stream) Context() *Context { return s.c }

// Close waits for the stream's work and destroys it.
func (s *Stream) Close() error {
	if s.h == nil {
		return nil
	}
	err := s.Synchronize()
	if e := s.c.d.cudaError("cuStreamDestroy_v2", s.c.d.native.streamDestroy(s.c.h, s.h), ""); err == nil {
		err = e
	}
	s.h = nil
	return err
}

// Synchronize waits until the stream's work is done, returning any error it
// left behind.
func (s *Stream) Synchronize() error {
	return s.c.d.cudaError("cuStreamSynchronize", s.c.d.native.streamSynchronize(s.c.h, s.h), "")
}

// WaitEvent makes work queued on s after this call wait for e.
func (s *Stream) WaitEvent(e *Event) error {
	return s.c.d.cudaError("cuStreamWaitEvent", s.c.d.native.streamWaitEvent(s.c.h, s.h, e.h), "")
}

// Element is a type whose slices copy to and from device memory as raw
// bytes.
type Element interface {
	~float32 | ~int32 | ~uint32 | ~uint8
}

func sliceBytes[T Element](s []T) (unsafe.Pointer, uint64) {
	if len(s) == 0 {
		return nil, 0
	}
	var zero T
	return unsafe.Pointer(&s[0]), uint64(len(s)) * uint64(unsafe.Sizeof(zero))
}

// CopyToDevice copies src into device memory at dst, ordered on s. It
// returns once src may be reused (the driver stages pageable memory), not
// when the copy has reached the device.
func CopyToDevice[T Element](s *Stream, dst DevicePtr, src []T) error {
	p, n := sliceBytes(src)
	if n == 0 {
		return nil
	}
	if dst == 0 {
		return argError("cuMemcpyHtoDAsync_v2", "null destination for %d bytes", n)
	}
	return s.c.d.cudaError("cuMemcpyHtoDAsync_v2", s.c.d.native.memcpyHtoD(s.c.h, dst, p, n, s.h), formatBytes(n))
}

// CopyFromDevice copies device memory at src into dst after the work queued
// on s, and waits for it: dst holds the data when it returns.
func CopyFromDevice[T Element](s *Stream, dst []T, src DevicePtr) error {
	p, n := sliceBytes(dst)
	if n == 0 {
		return nil
	}
	if src == 0 {
		return argError("cuMemcpyDtoHAsync_v2", "null source for %d bytes", n)
	}
	if err := s.c.d.cudaError("cuMemcpyDtoHAsync_v2", s.c.d.native.memcpyDtoH(s.c.h, p, src, n, s.h), formatBytes(n)); err != nil {
		return err
	}
	return s.Synchronize()
}

// CopyDeviceToDevice copies bytes from src to dst on s.
func (s *Stream) CopyDeviceToDevice(dst, src DevicePtr, bytes int) error {
	if bytes <= 0 || dst == 0 || src == 0 {
		return argError("cuMemcpyDtoDAsync_v2", "dst %#x, src %#x, %d bytes", dst, src, bytes)
	}
	return s.c.d.cudaError("cuMemcpyDtoDAsync_v2", s.c.d.native.memcpyDtoD(s.c.h, dst, src, uint64(bytes), s.h), formatBytes(uint64(bytes)))
}

// Fill32 sets count 4-byte words at dst to value (math.Float32bits for a
// float) on s.
func (s *Stream) Fill32(dst DevicePtr, value uint32, count int) error {
	if count <= 0 || dst == 0 || dst%4 != 0 {
		return argError("cuMemsetD32Async", "dst %#x, %d words", dst, count)
	}
	return s.c.d.cudaError("cuMemsetD32Async", s.c.d.native.memsetD32(s.c.h, dst, value, uint64(count), s.h), "")
}

// HostBuffer is page-locked (pinned) host memory: copies between it and
// the device run asynchronously, overlapping compute. It lives outside the
// Go heap; Free it when done.
type HostBuffer struct {
	c *Context
	p unsafe.Pointer
	n int
}

// AllocHost allocates bytes of pinned host memory.
func (c *Context) AllocHost(bytes int) (*HostBuffer, error) {
	if bytes <= 0 {
		return nil, argError("cuMemAllocHost_v2", "%d bytes requested, want a positive size", bytes)
	}
	p, rc := c.d.native.memAllocHost(c.h, uint64(bytes))
	if err := c.d.cudaError("cuMemAllocHost_v2", rc, formatBytes(uint64(bytes))); err != nil {
		return nil, err
	}
	return &HostBuffer{c: c, p: p, n: bytes}, nil
}

// Len is the buffer's size in bytes.
func (h *HostBuffer) Len() int { return h.n }

// Bytes views the buffer as bytes (valid until Free).
func (h *HostBuffer) Bytes() []byte { return unsafe.Slice((*byte)(h.p), h.n) }

// Float32s views the buffer as float32 values (valid until Free).
func (h *HostBuffer) Float32s() []float32 { return unsafe.Slice((*float32)(h.p), h.n/4) }

// Free releases the buffer; no copy into or out of it may be pending.
func (h *HostBuffer) Free() error {
	if h.p == nil {
		return nil
	}
	err := h.c.d.cudaError("cuMemFreeHost", h.c.d.native.memFreeHost(h.c.h, h.p), "")
	h.p, h.n = nil, 0
	return err
}

func (h *HostBuffer) span(call string, offset, bytes int) (unsafe.Pointer, error) {
	if h.p == nil {
		return nil, argError(call, "host buffer already freed")
	}
	if offset < 0 || bytes <= 0 || offset+bytes > h.n {
		return nil, argError(call, "bytes [%d, %d) outside the %d-byte host buffer", offset, offset+bytes, h.n)
	}
	return unsafe.Add(h.p, offset), nil
}

// UploadAsync queues a copy of src[offset:offset+bytes] to dst on s and
// returns at once; src must not change until the stream passes the copy.
func (s *Stream) UploadAsync(dst DevicePtr, src *HostBuffer, offset, bytes int) error {
	p, err := src.span("cuMemcpyHtoDAsync_v2", offset, bytes)
	if err != nil {
		return err
	}
	if dst == 0 {
		return argError("cuMemcpyHtoDAsync_v2", "null destination")
	}
	return s.c.d.cudaError("cuMemcpyHtoDAsync_v2", s.c.d.native.memcpyHtoD(s.c.h, dst, p, uint64(bytes), s.h), formatBytes(uint64(bytes)))
}

// DownloadAsync queues a copy of bytes at src into dst[offset:] on s and
// returns at once; read dst only after synchronising.
func (s *Stream) DownloadAsync(dst *HostBuffer, offset int, src DevicePtr, bytes int) error {
	p, err := dst.span("cuMemcpyDtoHAsync_v2", offset, bytes)
	if err != nil {
		return err
	}
	if src == 0 {
		return argError("cuMemcpyDtoHAsync_v2", "null source")
	}
	return s.c.d.cudaError("cuMemcpyDtoHAsync_v2", s.c.d.native.memcpyDtoH(s.c.h, p, src, uint64(bytes), s.h), formatBytes(uint64(bytes)))
}

// Event marks a point in a stream: to wait for, to order other streams
// after, or to time.
type Event struct {
	c *Context
	h unsafe.Pointer
}

// NewEvent creates an event; timing events can measure elapsed time, the
// others are cheaper.
func (c *Context) NewEvent(timing bool) (*Event, error) {
	flags := uint32(2) // CU_EVENT_DISABLE_TIMING
	if timing {
		flags = 0
	}
	h, rc := c.d.native.eventCreate(c.h, flags)
	if err := c.d.cudaError("cuEventCreate", rc, ""); err != nil {
		return nil, err
	}
	return &Event{c: c, h: h}, nil
}

// Record marks the current end of s's queue.
func (e *Event) Record(s *Stream) error {
	return e.c.d.cudaError("cuEventRecord", e.c.d.native.eventRecord(e.c.h, e.h, s.h), "")
}

// Synchronize waits until the stream passes the recorded point.
func (e *Event) Synchronize() error {
	return e.c.d.cudaError("cuEventSynchronize", e.c.d.native.eventSynchronize(e.c.h, e.h), "")
}

// Since is the device time between start and e (both recorded with timing,
// e completed).
func (e *Event) Since(start *Event) (time.Duration, error) {
	ms, rc := e.c.d.native.eventElapsed(e.c.h, start.h, e.h)
	if err := e.c.d.cudaError("cuEventElapsedTime", rc, ""); err != nil {
		return 0, err
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

// Close destroys the event.
func (e *Event) Close() error {
	if e.h == nil {
		return nil
	}
	err := e.c.d.cudaError("cuEventDestroy_v2", e.c.d.native.eventDestroy(e.c.h, e.h), "")
	e.h = nil
	return err
}
