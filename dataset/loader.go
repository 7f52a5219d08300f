package dataset

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"runtime"
	"sync"
	"time"
)

// LoaderOptions configures a Loader. Width, Height and BatchSize are
// required; the rest has usable zero values.
type LoaderOptions struct {
	Width, Height int // network input size in pixels
	BatchSize     int
	Resize        string  // ResizeLetterbox (default) or ResizeStretch
	PadValue      float32 // fill of letterbox borders and crops, raw 0–255
	// A raw 0–255 RGB value v becomes (v*PixelScale - Mean[c]) / Std[c].
	// PixelScale 0 means 1/255; a Std entry of 0 means 1.
	PixelScale float32
	Mean, Std  [3]float32
	Shuffle    bool   // a new order every epoch, from (Seed, epoch)
	DropLast   bool   // drop a last batch smaller than BatchSize
	Seed       uint64 // seeds the order and the augmentation
	Augment    Augment
	// Workers build batches in parallel (default: GOMAXPROCS, at most 4);
	// Prefetch is how many finished batches may wait for the consumer
	// (default: Workers).
	Workers, Prefetch int
	// Memory, when set, supplies the batches' image buffers: a GPU's
	// page-locked memory, which it uploads from while it computes. The
	// loader reuses them and frees them in Close.
	Memory HostMemory
}

// HostMemory is where a loader's image buffers come from when it is not
// the Go heap.
type HostMemory interface {
	// Alloc returns a buffer of n float32.
	Alloc(n int) ([]float32, error)
	// Reusable returns once nothing reads buf any more (an upload from a
	// released batch), before the loader writes another batch into it.
	Reusable(buf []float32) error
	// Free releases a buffer from Alloc.
	Free(buf []float32) error
}

// Target is one box of a batch, in network-input pixels.
type Target struct {
	Box   Box // x1, y1, x2, y2 in input pixels, inside the input
	Class int
	Crowd bool // train nothing here; evaluation ignores it
}

// Batch is N samples ready for a network. Images is N*3*H*W float32 in NCHW
// order, RGB, normalised as LoaderOptions says.
type Batch struct {
	Epoch, Step int
	Images      []float32
	N, H, W     int
	Targets     [][]Target
	ImageIDs    []int64
	Indices     []int       // positions in Dataset.Images
	Transforms  []Transform // source → input geometry of each sample
	// Wait is how long the consumer blocked in Next for this batch: near
	// zero when the pipeline keeps up, the data-loading stall when not.
	Wait time.Duration
	// Pinned says Images lies in LoaderOptions.Memory.
	Pinned bool

	loader *Loader
}

// Release hands the image buffer back for reuse by later batches. Optional;
// the batch must not be used afterwards.
func (b *Batch) Release() {
	if b.loader != nil && b.Images != nil {
		// A short last batch still owns a full-size buffer.
		b.loader.recycle(b.Images[:cap(b.Images)])
	}
	b.Images = nil
}

// Loader makes batches from a Dataset. It is safe for concurrent use: every
// batch is a pure function of the options, the dataset and its arguments
// (only the image buffers are reused, and Close ends the loader).
type Loader struct {
	ds         *Dataset
	opts       LoaderOptions
	gain, bias [3]float32
	pool       sync.Pool // *[]float32 image buffers of one full batch
	tapPool    sync.Pool // *[]tap scratch

	// Buffers of opts.Memory kept for reuse, and whether Close ran.
	mu     sync.Mutex
	free   [][]float32
	closed bool
}

// NewLoader checks opts and returns a loader over ds.
func NewLoader(ds *Dataset, opts LoaderOptions) (*Loader, error) {
	if ds == nil {
		return nil, fmt.Errorf("dataset: loader: nil dataset")
	}
	if opts.Width <= 0 || opts.Height <= 0 || opts.Width > 8192 || opts.Height > 8192 {
		return nil, fmt.Errorf("dataset: loader: input size %dx%d, want 1..8192 each", opts.Width, opts.Height)
	}
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("dataset: loader: batch size %d, want at least 1", opts.BatchSize)
	}
	switch opts.Resize {
	case "":
		opts.Resize = ResizeLetterbox
	case ResizeLetterbox, ResizeStretch:
	default:
		return nil, fmt.Errorf("dataset: loader: resize %q, want %q or %q", opts.Resize, ResizeLetterbox, ResizeStretch)
	}
	if opts.PixelScale == 0 {
		opts.PixelScale = 1.0 / 255
	}
	if !(opts.PixelScale > 0) || math.IsInf(float64(opts.PixelScale), 0) {
		return nil, fmt.Errorf("dataset: loader: pixel scale %v, want a positive number", opts.PixelScale)
	}
	if err := opts.Augment.validate(); err != nil {
		return nil, err
	}
	if opts.Workers < 0 || opts.Prefetch < 0 {
		return nil, fmt.Errorf("dataset: loader: workers %d and prefetch %d, want >= 0 (0 = default)", opts.Workers, opts.Prefetch)
	}
	if opts.Workers == 0 {
		opts.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = opts.Workers
	}
	l := &Loader{ds: ds, opts: opts}
	for c := range 3 {
		std := opts.Std[c]
		if std == 0 {
			std = 1
		}
		if math.IsNaN(float64(std)) || math.IsInf(float64(std), 0) {
			return nil, fmt.Errorf("dataset: loader: std[%d] is %v, want a finite number", c, std)
		}
		l.gain[c] = opts.PixelScale / std
		l.bias[c] = -opts.Mean[c] / std
	}
	return l, nil
}

// Options returns the options with defaults filled in.
func (l *Loader) Options() LoaderOptions { return l.opts }

// Dataset returns the dataset the loader reads.
func (l *Loader) Dataset() *Dataset { return l.ds }

// StepsPerEpoch is the number of batches in one epoch.
func (l *Loader) StepsPerEpoch() int {
	n, b := len(l.ds.Images), l.opts.BatchSize
	if l.opts.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Order returns the dataset indices of an epoch in visiting order: a pure
// function of (Seed, epoch), identity when not shuffling.
func (l *Loader) Order(epoch int) []int {
	n := len(l.ds.Images)
	if !l.opts.Shuffle {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		return p
	}
	return permutation(newRand(l.opts.Seed, 0x6f72646572, uint64(epoch)), n)
}

// stepIndices are the dataset indices of one step of an epoch.
func (l *Loader) stepIndices(order []int, step int) []int {
	b := l.opts.BatchSize
	lo := step * b
	hi := min(lo+b, len(order))
	return order[lo:hi]
}

// Batch builds one batch synchronously. The pipeline (Iterate) calls it from
// its workers; tests and tools may call it directly.
func (l *Loader) Batch(ctx context.Context, epoch, step int) (*Batch, error) {
	if step < 0 || step >= l.StepsPerEpoch() {
		return nil, fmt.Errorf("dataset: loader: step %d, want 0..%d", step, l.StepsPerEpoch()-1)
	}
	return l.batch(ctx, epoch, step, l.Order(epoch))
}

func (l *Loader) batch(ctx context.Context, epoch, step int, order []int) (*Batch, error) {
	idx := l.stepIndices(order, step)
	w, h := l.opts.Width, l.opts.Height
	per := 3 * w * h
	b := &Batch{
		Epoch: epoch, Step: step, N: len(idx), H: h, W: w,
		Targets:    make([][]Target, len(idx)),
		ImageIDs:   make([]int64, len(idx)),
		Indices:    append([]int(nil), idx...),
		Transforms: make([]Transform, len(idx)),
		Pinned:     l.opts.Memory != nil,
		loader:     l,
	}
	buf, err := l.buffer(per * l.opts.BatchSize)
	if err != nil {
		return nil, err
	}
	b.Images = buf[:per*len(idx)]
	for i, di := range idx {
		if err := ctx.Err(); err != nil {
			b.Release()
			return nil, err
		}
		targets, t, err := l.Sample(epoch, di, b.Images[i*per:(i+1)*per])
		if err != nil {
			b.Release()
			return nil, err
		}
		b.Targets[i] = targets
		b.Transforms[i] = t
		b.ImageIDs[i] = l.ds.Images[di].ID
	}
	return b, nil
}

// buffer returns an image buffer of full float32 for a batch.
func (l *Loader) buffer(full int) ([]float32, error) {
	if l.opts.Memory == nil {
		if v, ok := l.pool.Get().(*[]float32); ok && len(*v) == full {
			return *v, nil
		}
		return make([]float32, full), nil
	}
	l.mu.Lock()
	if n := len(l.free); n > 0 {
		buf := l.free[n-1]
		l.free = l.free[:n-1]
		l.mu.Unlock()
		if err := l.opts.Memory.Reusable(buf); err != nil {
			l.recycle(buf)
			return nil, fmt.Errorf("dataset: loader: batch buffer: %w", err)
		}
		return buf, nil
	}
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errors.New("dataset: loader: closed")
	}
	buf, err := l.opts.Memory.Alloc(full)
	if err != nil {
		return nil, fmt.Errorf("dataset: loader: batch buffer of %d values: %w", full, err)
	}
	return buf[:full], nil
}

// recycle takes back the image buffer of a released batch.
func (l *Loader) recycle(buf []float32) {
	if l.opts.Memory == nil {
		l.pool.Put(&buf)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = l.opts.Memory.Free(buf)
		return
	}
	l.free = append(l.free, buf)
}

// Close frees the image buffers of LoaderOptions.Memory kept for reuse;
// buffers of batches still held are freed when they are released. The
// loader builds no batch afterwards. Without Memory it does nothing.
func (l *Loader) Close() error {
	if l.opts.Memory == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	var errs []error
	for _, buf := range l.free {
		if err := l.opts.Memory.Free(buf); err != nil {
			errs = append(errs, err)
		}
	}
	l.free = nil
	return errors.Join(errs...)
}

// Sample decodes, transforms and augments dataset image index into dst
// (3*Height*Width values, CHW) and returns its targets in input pixels and
// the transform used. The result is a pure function of (Seed, epoch, index).
func (l *Loader) Sample(epoch, index int, dst []float32) ([]Target, Transform, error) {
	w, h := l.opts.Width, l.opts.Height
	if len(dst) != 3*w*h {
		return nil, Transform{}, fmt.Errorf("dataset: loader: destination has %d values, want 3x%dx%d = %d", len(dst), h, w, 3*w*h)
	}
	if index < 0 || index >= len(l.ds.Images) {
		return nil, Transform{}, fmt.Errorf("dataset: loader: image index %d, want 0..%d", index, len(l.ds.Images)-1)
	}
	im := &l.ds.Images[index]
	src, err := DecodeFile(im.Path)
	if err != nil {
		return nil, Transform{}, err
	}
	// An image without an annotated size (a Dataset built from loose
	// files for prediction) takes the decoded one.
	if (im.Width != 0 || im.Height != 0) && (src.Rect.Dx() != im.Width || src.Rect.Dy() != im.Height) {
		return nil, Transform{}, fmt.Errorf("%w: %s is %dx%d but its annotation says %dx%d",
			ErrDecode, im.Path, src.Rect.Dx(), src.Rect.Dy(), im.Width, im.Height)
	}
	t := plainTransform(l.opts.Resize, w, h, src.Rect.Dx(), src.Rect.Dy())
	cm := identityColor
	a := l.opts.Augment
	if a.enabled() {
		r := newRand(l.opts.Seed, 0x617567, uint64(epoch), uint64(index))
		t = planAugment(r, a, t, w, h, im.Objects)
		if a.colorEnabled() {
			cm = planColor(r, a, meanLuma(src))
		}
	}

	var xs, ys []tap
	if v, ok := l.tapPool.Get().(*[]tap); ok && len(*v) >= w+h {
		xs, ys = (*v)[:w], (*v)[w:w+h]
	} else {
		s := make([]tap, w+h)
		xs, ys = s[:w], s[w:]
	}
	render(dst, w, h, src, t, cm, l.opts.PadValue, l.gain, l.bias, xs, ys)
	scratch := xs[:w+h]
	l.tapPool.Put(&scratch)

	targets := make([]Target, 0, len(im.Objects))
	minVis := 0.0
	if a.ScaleMax > 0 {
		minVis = a.minVisible()
	}
	for _, o := range im.Objects {
		in := t.ToInput(o.Box)
		c := in.Clip(float64(w), float64(h))
		if c.Width() < 1 || c.Height() < 1 || c.Area() < minVis*in.Area() {
			continue
		}
		targets = append(targets, Target{Box: c, Class: o.Class, Crowd: o.Crowd})
	}
	return targets, t, nil
}

// meanLuma estimates the mean grey level on a sparse grid; contrast jitter
// pivots around it.
func meanLuma(m *image.RGBA) float64 {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	step := max(1, int(math.Sqrt(float64(w*h)/4096)))
	var sum float64
	n := 0
	for y := 0; y < h; y += step {
		row := m.Pix[y*m.Stride:]
		for x := 0; x < w; x += step {
			p := row[4*x:]
			sum += lumaR*float64(p[0]) + lumaG*float64(p[1]) + lumaB*float64(p[2])
			n++
		}
	}
	return sum / float64(n)
}

// Iterator delivers the batches of one epoch in order while workers build
// the next ones. Next and Close must be called from one goroutine.
type Iterator struct {
	cancel  context.CancelFunc
	ctx     context.Context
	results chan chan result
	wg      sync.WaitGroup
	left    int // batches not yet delivered
	err     error
}

type result struct {
	b   *Batch
	err error
}

type job struct {
	step int
	out  chan result
}

// Iterate starts the pipeline for an epoch at startStep (0 for a fresh
// epoch; the saved step to resume one). The batches are the same as
// Batch(epoch, step) for every step, whatever the worker count. Call Close
// when done, also after an error or io.EOF.
func (l *Loader) Iterate(ctx context.Context, epoch, startStep int) *Iterator {
	ctx, cancel := context.WithCancel(ctx)
	steps := l.StepsPerEpoch()
	startStep = max(0, min(startStep, steps))
	it := &Iterator{
		cancel:  cancel,
		ctx:     ctx,
		results: make(chan chan result, l.opts.Prefetch),
		left:    steps - startStep,
	}
	order := l.Order(epoch)
	jobs := make(chan job)
	it.wg.Add(1 + l.opts.Workers)
	go func() {
		defer it.wg.Done()
		defer close(jobs)
		defer close(it.results)
		for step := startStep; step < steps; step++ {
			out := make(chan result, 1)
			select {
			case it.results <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{step, out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range l.opts.Workers {
		go func() {
			defer it.wg.Done()
			for j := range jobs {
				b, err := l.batch(ctx, epoch, j.step, order)
				j.out <- result{b, err}
			}
		}()
	}
	return it
}

// Next returns the next batch, io.EOF after the last one, or the first
// error (an image that fails to decode, the context's error).
func (it *Iterator) Next() (*Batch, error) {
	if it.err != nil {
		return nil, it.err
	}
	if it.left == 0 {
		return nil, io.EOF
	}
	start := time.Now()
	var r result
	select {
	case out, ok := <-it.results:
		if !ok {
			r.err = it.ctx.Err()
			break
		}
		select {
		case r = <-out:
		case <-it.ctx.Done():
			r.err = it.ctx.Err()
		}
	case <-it.ctx.Done():
		r.err = it.ctx.Err()
	}
	if r.err == nil && r.b == nil {
		r.err = errors.New("dataset: loader: pipeline stopped")
	}
	if r.err != nil {
		it.err = r.err
		it.Close()
		return nil, r.err
	}
	it.left--
	r.b.Wait = time.Since(start)
	return r.b, nil
}

// Close stops the workers and waits for them. Safe to call more than once.
func (it *Iterator) Close() {
	it.cancel()
	it.wg.Wait()
	// The dispatcher has closed results; hand batches built ahead back to
	// the pool.
	for out := range it.results {
		select {
		case r := <-out:
			if r.b != nil {
				r.b.Release()
			}
		default:
		}
	}
}
