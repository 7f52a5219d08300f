package cuda

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cuda/driver"
)

// uploader copies from pinned host memory on a stream of its own, so the
// copy of the next batch overlaps the kernels of the current step. Its
// copies land in staging slots of device memory it owns, never in blocks
// of the caching allocator (which are reused in the compute stream's
// order only); the compute stream waits for a slot's copy, copies the slot
// into the destination, and records when the slot may be written again.
type uploader struct {
	ctx    *driver.Context
	copy   *driver.Stream
	slots  [2]slot
	next   int
	mu     sync.Mutex
	pinned map[uintptr]*pinnedBlock // by base address
}

// slot is one staging area of device memory with its events.
type slot struct {
	ptr    driver.DevicePtr
	bytes  int
	copied *driver.Event // recorded on the copy stream after the upload
	free   *driver.Event // recorded on the compute stream after the slot is read
	used   bool          // free has been recorded
}

// pinnedBlock is one AllocPinned allocation and the event of the last
// upload from it.
type pinnedBlock struct {
	host *driver.HostBuffer
	last *driver.Event // nil before the first upload
}

// uploads returns the uploader, creating it on first use.
func (b *Backend) uploads() (*uploader, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("cuda: the backend is closed")
	}
	if b.up != nil {
		return b.up, nil
	}
	s, err := b.ctx.NewStream()
	if err != nil {
		return nil, err
	}
	u := &uploader{ctx: b.ctx, copy: s, pinned: map[uintptr]*pinnedBlock{}}
	for i := range u.slots {
		if u.slots[i].copied, err = b.ctx.NewEvent(false); err == nil {
			u.slots[i].free, err = b.ctx.NewEvent(false)
		}
		if err != nil {
			_ = u.close()
			return nil, err
		}
	}
	b.up = u
	return u, nil
}

// AllocPinned implements backend.PinnedHost.
func (b *Backend) AllocPinned(n int) ([]float32, error) {
	if n <= 0 {
		return nil, fmt.Errorf("cuda: AllocPinned(%d): want a positive length", n)
	}
	u, err := b.uploads()
	if err != nil {
		return nil, err
	}
	h, err := b.ctx.AllocHost(4 * n)
	if err != nil {
		return nil, err
	}
	p := h.Float32s()[:n]
	u.mu.Lock()
	u.pinned[uintptr(unsafe.Pointer(&p[0]))] = &pinnedBlock{host: h}
	u.mu.Unlock()
	return p, nil
}

// block finds the pinned allocation holding p and p's byte offset in it.
func (u *uploader) block(p []float32) (*pinnedBlock, int, bool) {
	if len(p) == 0 {
		return nil, 0, false
	}
	addr := uintptr(unsafe.Pointer(&p[0]))
	for base, blk := range u.pinned {
		if addr >= base && addr+uintptr(4*len(p)) <= base+uintptr(blk.host.Len()) {
			return blk, int(addr - base), true
		}
	}
	return nil, 0, false
}

// FreePinned implements backend.PinnedHost.
func (b *Backend) FreePinned(p []float32) error {
	u, err := b.uploads()
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(p) == 0 {
		return errors.New("cuda: FreePinned: empty slice")
	}
	base := uintptr(unsafe.Pointer(&p[0]))
	blk, ok := u.pinned[base]
	if !ok {
		return errors.New("cuda: FreePinned: the memory does not come from AllocPinned")
	}
	if blk.last != nil {
		if err := blk.last.Synchronize(); err != nil {
			return err
		}
		_ = blk.last.Close()
	}
	delete(u.pinned, base)
	return blk.host.Free()
}

// UploadPinned implements backend.PinnedHost.
func (b *Backend) UploadPinned(dst backend.Buffer, src []float32) {
	const k = "UploadPinned"
	x := b.exact(k, dst, backend.Float32, len(src))
	if len(src) == 0 {
		return
	}
	u, err := b.uploads()
	if err != nil {
		b.deviceFail(k, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	blk, offset, ok := u.block(src)
	if !ok {
		backend.Fail(Name, k, "the source does not lie in memory from AllocPinned")
	}
	bytes := 4 * len(src)
	s := &u.slots[u.next]
	u.next = (u.next + 1) % len(u.slots)
	if err := u.upload(b.stream, s, blk, offset, bytes, x.mem.Ptr); err != nil {
		b.deviceFail(k, err)
	}
}

// upload runs one staged copy: host → slot on the copy stream, slot → dst
// on the compute stream.
func (u *uploader) upload(compute *driver.Stream, s *slot, blk *pinnedBlock, offset, bytes int, dst driver.DevicePtr) error {
	if s.bytes < bytes {
		// A larger batch than before: replace the slot once nothing reads it.
		if s.used {
			if err := s.free.Synchronize(); err != nil {
				return err
			}
		}
		if s.ptr != 0 {
			if err := u.ctx.Free(s.ptr); err != nil {
				return err
			}
			s.ptr, s.bytes = 0, 0
		}
		p, err := u.ctx.Alloc(bytes)
		if err != nil {
			return err
		}
		s.ptr, s.bytes, s.used = p, bytes, false
	}
	if s.used {
		if err := u.copy.WaitEvent(s.free); err != nil {
			return err
		}
	}
	if err := u.copy.UploadAsync(s.ptr, blk.host, offset, bytes); err != nil {
		return err
	}
	if err := s.copied.Record(u.copy); err != nil {
		return err
	}
	if blk.last == nil {
		ev, err := u.ctx.NewEvent(false)
		if err != nil {
			return err
		}
		blk.last = ev
	}
	if err := blk.last.Record(u.copy); err != nil {
		return err
	}
	if err := compute.WaitEvent(s.copied); err != nil {
		return err
	}
	if err := compute.CopyDeviceToDevice(dst, s.ptr, bytes); err != nil {
		return err
	}
	if err := s.free.Record(compute); err != nil {
		return err
	}
	s.used = true
	return nil
}

// WaitPinned implements backend.PinnedHost.
func (b *Backend) WaitPinned(src []float32) error {
	u, err := b.uploads()
	if err != nil {
		return err
	}
	u.mu.Lock()
	blk, _, ok := u.block(src)
	var ev *driver.Event
	if ok {
		ev = blk.last
	}
	u.mu.Unlock()
	if !ok {
		return errors.New("cuda: WaitPinned: the memory does not come from AllocPinned")
	}
	if ev == nil {
		return nil
	}
	if err := ev.Synchronize(); err != nil {
		return deviceError("WaitPinned", err)
	}
	return nil
}

// close releases the stream, the slots and any pinned memory left.
func (u *uploader) close() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(u.copy.Close())
	for i := range u.slots {
		s := &u.slots[i]
		if s.ptr != 0 {
			add(u.ctx.Free(s.ptr))
		}
		for _, e := range []*driver.Event{s.copied, s.free} {
			if e != nil {
				add(e.Close())
			}
		}
	}
	for base, blk := range u.pinned {
		if blk.last != nil {
			add(blk.last.Close())
		}
		add(blk.host.Free())
		delete(u.pinned, base)
	}
	return errors.Join(errs...)
}
