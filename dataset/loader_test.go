package dataset

import (
	"context"
	"errors"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

// redSquares writes n PNG images (w x h, black) each with red rectangles
// that are exactly its objects, so a test can check that pixels and boxes
// move together.
func redSquares(t testing.TB, n, w, h int) *Dataset {
	t.Helper()
	dir := t.TempDir()
	ds := &Dataset{Name: "squares", Root: dir, Categories: []Category{{1, "square"}, {2, "bar"}}}
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for p := 3; p < len(img.Pix); p += 4 {
			img.Pix[p] = 255
		}
		// Two objects at positions that depend on i, one near the left
		// edge so flips and crops matter.
		boxes := []Box{
			{float64(2 + i%5), float64(3 + i%7), float64(2+i%5) + 12, float64(3+i%7) + 10},
			{float64(w/2 + i%9), float64(h/2 - 4), float64(w/2+i%9) + 9, float64(h/2) + 8},
		}
		im := Image{ID: int64(100 + i), Path: filepath.Join(dir, "im"+string(rune('a'+i))+".png"), Width: w, Height: h}
		for k, b := range boxes {
			for y := int(b.Y1); y < int(b.Y2); y++ {
				for x := int(b.X1); x < int(b.X2); x++ {
					img.Set(x, y, color.RGBA{255, 0, 0, 255})
				}
			}
			im.Objects = append(im.Objects, Object{Box: b, Class: k, Area: b.Area()})
		}
		f, err := os.Create(im.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ds.Images = append(ds.Images, im)
	}
	return ds
}

func newLoader(t testing.TB, ds *Dataset, opts LoaderOptions) *Loader {
	t.Helper()
	l, err := NewLoader(ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLetterboxGeometryAndNormalisation(t *testing.T) {
	ds := redSquares(t, 1, 64, 48)
	l := newLoader(t, ds, LoaderOptions{
		Width: 32, Height: 32, BatchSize: 1, PadValue: 255,
		Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25},
	})
	b, err := l.Batch(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr := b.Transforms[0]
	want := Transform{ScaleX: 0.5, ScaleY: 0.5, PadX: 0, PadY: 4, SrcWidth: 64, SrcHeight: 48}
	if tr != want {
		t.Fatalf("transform %+v, want %+v", tr, want)
	}
	// Pad rows hold (255/255 - 0.5)/0.25 = 2 in every channel.
	plane := 32 * 32
	for c := range 3 {
		if v := b.Images[c*plane+0]; v != 2 {
			t.Errorf("pad value in channel %d is %v, want 2", c, v)
		}
	}
	// Boxes are scaled by 0.5 and shifted down by 4.
	o := ds.Images[0].Objects[0].Box
	wantBox := Box{o.X1 * 0.5, o.Y1*0.5 + 4, o.X2 * 0.5, o.Y2*0.5 + 4}
	if got := b.Targets[0][0].Box; got != wantBox {
		t.Errorf("target %+v, want %+v", got, wantBox)
	}
	// Inside the square: red is (1-0.5)/0.25 = 2, green (0-0.5)/0.25 = -2.
	cx, cy := int((wantBox.X1+wantBox.X2)/2), int((wantBox.Y1+wantBox.Y2)/2)
	if r, g := b.Images[cy*32+cx], b.Images[plane+cy*32+cx]; math.Abs(float64(r-2)) > 1e-5 || math.Abs(float64(g+2)) > 1e-5 {
		t.Errorf("square centre is r=%v g=%v, want 2 and -2", r, g)
	}
	// ToSource inverts the mapping.
	if back := tr.ToSource(wantBox); math.Abs(back.X1-o.X1) > 1e-9 || math.Abs(back.Y2-o.Y2) > 1e-9 {
		t.Errorf("ToSource %+v, want %+v", back, o)
	}
	if b.N != 1 || b.H != 32 || b.W != 32 || len(b.Images) != 3*32*32 || b.ImageIDs[0] != 100 {
		t.Errorf("batch shape N=%d H=%d W=%d len=%d id=%d", b.N, b.H, b.W, len(b.Images), b.ImageIDs[0])
	}
}

func TestStretch(t *testing.T) {
	ds := redSquares(t, 1, 64, 48)
	l := newLoader(t, ds, LoaderOptions{Width: 32, Height: 32, BatchSize: 1, Resize: ResizeStretch})
	b, err := l.Batch(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tr := b.Transforms[0]; tr.ScaleX != 0.5 || tr.ScaleY != 32.0/48 || tr.PadX != 0 || tr.PadY != 0 {
		t.Fatalf("stretch transform %+v", tr)
	}
}

// TestAugmentKeepsBoxesOnPixels checks, over many random flips, zooms and
// crops, that the centre of every target box is on a red pixel.
func TestAugmentKeepsBoxesOnPixels(t *testing.T) {
	ds := redSquares(t, 6, 64, 48)
	aug := DefaultAugment()
	aug.Brightness, aug.Contrast, aug.Saturation, aug.Hue = 0, 0, 0, 0
	aug.ScaleMin, aug.ScaleMax = 0.5, 2.5
	l := newLoader(t, ds, LoaderOptions{Width: 40, Height: 40, BatchSize: 3, Augment: aug, Seed: 9, Shuffle: true})
	plane := 40 * 40
	flips, crops, targets := 0, 0, 0
	for epoch := range 12 {
		for step := range l.StepsPerEpoch() {
			b, err := l.Batch(context.Background(), epoch, step)
			if err != nil {
				t.Fatal(err)
			}
			for i := range b.N {
				tr := b.Transforms[i]
				if tr.FlipX {
					flips++
				}
				if tr.ScaleX > 40.0/64 {
					crops++
				}
				img := b.Images[i*3*plane : (i+1)*3*plane]
				for _, tg := range b.Targets[i] {
					targets++
					if tg.Box.X1 < 0 || tg.Box.Y1 < 0 || tg.Box.X2 > 40 || tg.Box.Y2 > 40 {
						t.Fatalf("target %+v outside the input", tg.Box)
					}
					x, y := int((tg.Box.X1+tg.Box.X2)/2), int((tg.Box.Y1+tg.Box.Y2)/2)
					r, g := img[y*40+x], img[plane+y*40+x]
					if r < 0.9 || g > 0.1 {
						t.Fatalf("epoch %d step %d sample %d: target %+v centre (%d,%d) is r=%.2f g=%.2f, not red (transform %+v)",
							epoch, step, i, tg.Box, x, y, r, g, tr)
					}
				}
			}
		}
	}
	if flips == 0 || crops == 0 || targets == 0 {
		t.Fatalf("augmentation never flipped (%d) or zoomed in (%d), or no targets (%d)", flips, crops, targets)
	}
}

func TestColorJitter(t *testing.T) {
	// A mid-tone gradient, so no value sits at a clamp.
	ds := redSquares(t, 1, 32, 32)
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			img.Set(x, y, color.RGBA{uint8(60 + 4*x), uint8(90 + 3*y), uint8(150 - 2*x), 255})
		}
	}
	f, err := os.Create(ds.Images[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	plain := newLoader(t, ds, LoaderOptions{Width: 32, Height: 32, BatchSize: 1})
	jit := newLoader(t, ds, LoaderOptions{Width: 32, Height: 32, BatchSize: 1, Seed: 3,
		Augment: Augment{Brightness: 0.4, Contrast: 0.4, Saturation: 0.5, Hue: 0.1}})
	a, _ := plain.Batch(context.Background(), 0, 0)
	b, err := jit.Batch(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Transforms[0] != b.Transforms[0] || len(a.Targets[0]) != len(b.Targets[0]) || a.Targets[0][0] != b.Targets[0][0] {
		t.Fatal("colour jitter changed the geometry")
	}
	diff := 0
	for i := range a.Images {
		if b.Images[i] < 0 || b.Images[i] > 1 {
			t.Fatalf("jittered value %v outside 0..1", b.Images[i])
		}
		if a.Images[i] != b.Images[i] {
			diff++
		}
	}
	if diff < len(a.Images)/4 {
		t.Fatalf("colour jitter changed only %d of %d values", diff, len(a.Images))
	}
	// The identity jitter is the identity.
	cm := planColor(newRand(1), Augment{Hue: 1e-12, Brightness: 1e-12}, 100)
	for i := range 3 {
		for j := range 4 {
			want := float32(0)
			if i == j {
				want = 1
			}
			if math.Abs(float64(cm[i][j]-want)) > 1e-6 {
				t.Fatalf("near-zero jitter matrix %v is not the identity", cm)
			}
		}
	}
}

func hashBatch(b *Batch) uint64 {
	h := fnv.New64a()
	buf := make([]byte, 4)
	for _, v := range b.Images {
		u := math.Float32bits(v)
		buf[0], buf[1], buf[2], buf[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		h.Write(buf)
	}
	for i, ts := range b.Targets {
		for _, tg := range ts {
			for _, v := range []float64{tg.Box.X1, tg.Box.Y1, tg.Box.X2, tg.Box.Y2, float64(tg.Class)} {
				u := math.Float64bits(v)
				for k := range 8 {
					h.Write([]byte{byte(u >> (8 * k))})
				}
			}
		}
		h.Write([]byte{byte(b.ImageIDs[i])})
	}
	return h.Sum64()
}

func collect(t *testing.T, l *Loader, epoch, start int) []uint64 {
	t.Helper()
	it := l.Iterate(context.Background(), epoch, start)
	defer it.Close()
	var out []uint64
	for {
		b, err := it.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Wait <= 0 {
			t.Errorf("batch %d has no data-wait time", b.Step)
		}
		out = append(out, hashBatch(b))
		b.Release()
	}
}

func TestExactResume(t *testing.T) {
	ds := redSquares(t, 11, 48, 40)
	opts := LoaderOptions{Width: 32, Height: 32, BatchSize: 3, Shuffle: true, Seed: 42, Augment: DefaultAugment(), Workers: 3, Prefetch: 2}
	l := newLoader(t, ds, opts)
	if l.StepsPerEpoch() != 4 {
		t.Fatalf("steps per epoch %d, want 4 (11 images, batches of 3, last one short)", l.StepsPerEpoch())
	}
	full := collect(t, l, 5, 0)
	if len(full) != 4 {
		t.Fatalf("epoch had %d batches, want 4", len(full))
	}
	// Resuming at step 2 of the same epoch, in a new loader with another
	// worker count, replays the same batches.
	opts.Workers, opts.Prefetch = 1, 1
	resumed := collect(t, newLoader(t, ds, opts), 5, 2)
	if len(resumed) != 2 || resumed[0] != full[2] || resumed[1] != full[3] {
		t.Fatalf("resumed batches %x, want %x", resumed, full[2:])
	}
	// Synchronous Batch agrees with the pipeline.
	b, err := l.Batch(context.Background(), 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if hashBatch(b) != full[1] {
		t.Fatal("Batch(5, 1) differs from the pipeline's step 1")
	}
	// Another epoch has another order and other augmentations.
	if other := collect(t, l, 6, 0); other[0] == full[0] {
		t.Fatal("epoch 6 repeats epoch 5's first batch")
	}
	o5, o6 := l.Order(5), l.Order(6)
	seen := make([]bool, len(o5))
	for _, i := range o5 {
		seen[i] = true
	}
	for i, s := range seen {
		if !s {
			t.Fatalf("order of epoch 5 misses image %d: %v", i, o5)
		}
	}
	if equalInts(o5, o6) {
		t.Fatal("epochs 5 and 6 have the same order")
	}
	if !equalInts(o5, newLoader(t, ds, opts).Order(5)) {
		t.Fatal("the order is not a function of (seed, epoch)")
	}
	// Resuming past the end yields nothing.
	if rest := collect(t, l, 5, 4); len(rest) != 0 {
		t.Fatalf("start at the last step+1 gave %d batches", len(rest))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDropLastAndNoShuffle(t *testing.T) {
	ds := redSquares(t, 5, 32, 32)
	l := newLoader(t, ds, LoaderOptions{Width: 16, Height: 16, BatchSize: 2, DropLast: true})
	if l.StepsPerEpoch() != 2 {
		t.Fatalf("steps %d, want 2", l.StepsPerEpoch())
	}
	if o := l.Order(3); !equalInts(o, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("unshuffled order %v", o)
	}
	if _, err := l.Batch(context.Background(), 0, 2); err == nil {
		t.Fatal("Batch past the last step succeeded")
	}
}

func TestPipelineStopsCleanly(t *testing.T) {
	ds := redSquares(t, 12, 32, 32)
	l := newLoader(t, ds, LoaderOptions{Width: 32, Height: 32, BatchSize: 1, Workers: 3, Prefetch: 2, Augment: DefaultAugment()})
	before := runtime.NumGoroutine()

	// Close in the middle of an epoch.
	it := l.Iterate(context.Background(), 0, 0)
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	it.Close()
	it.Close()
	if _, err := it.Next(); err == nil {
		t.Fatal("Next after Close returned a batch")
	}

	// Cancel the caller's context.
	ctx, cancel := context.WithCancel(context.Background())
	it = l.Iterate(ctx, 1, 0)
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	var err error
	for range 20 {
		if _, err = it.Next(); err != nil {
			break
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel Next returned %v, want context.Canceled", err)
	}
	it.Close()

	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

func TestBatchDecodeErrorNamesFile(t *testing.T) {
	ds, err := Load(fixture("voc_corrupt"), "")
	if err != nil {
		t.Fatalf("a corrupt image must fail when decoded, not at load: %v", err)
	}
	l := newLoader(t, ds, LoaderOptions{Width: 16, Height: 16, BatchSize: 1})
	it := l.Iterate(context.Background(), 0, 0)
	defer it.Close()
	_, err = it.Next()
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "bad.jpg") {
		t.Fatalf("error %v, want ErrDecode naming bad.jpg", err)
	}

	wrong := redSquares(t, 1, 32, 32)
	wrong.Images[0].Width = 50
	_, err = newLoader(t, wrong, LoaderOptions{Width: 16, Height: 16, BatchSize: 1}).Batch(context.Background(), 0, 0)
	if err == nil || !strings.Contains(err.Error(), "is 32x32 but its annotation says 50x32") {
		t.Fatalf("size mismatch error %v", err)
	}
	// Without an annotated size the decoded one is used.
	wrong.Images[0].Width, wrong.Images[0].Height = 0, 0
	b, err := newLoader(t, wrong, LoaderOptions{Width: 16, Height: 16, BatchSize: 1}).Batch(context.Background(), 0, 0)
	if err != nil || b.Transforms[0].SrcWidth != 32 || b.Transforms[0].ScaleX != 0.5 {
		t.Fatalf("unsized image: %v, transform %+v", err, b.Transforms)
	}
}

func TestLoaderOptionErrors(t *testing.T) {
	ds := redSquares(t, 1, 8, 8)
	for _, o := range []LoaderOptions{
		{Width: 0, Height: 32, BatchSize: 1},
		{Width: 32, Height: 32},
		{Width: 32, Height: 32, BatchSize: 1, Resize: "crop"},
		{Width: 32, Height: 32, BatchSize: 1, Augment: Augment{ScaleMin: 2, ScaleMax: 1}},
		{Width: 32, Height: 32, BatchSize: 1, Augment: Augment{FlipProb: 1.5}},
	} {
		if _, err := NewLoader(ds, o); err == nil || !strings.HasPrefix(err.Error(), "dataset: ") {
			t.Errorf("options %+v: error %v", o, err)
		}
	}
}

func TestLoaderOnBCCD(t *testing.T) {
	ds, err := Load(sharedtest.Dir(t, "data", "bccd"), "val")
	if err != nil {
		t.Fatal(err)
	}
	ds.Images = ds.Images[:4]
	l := newLoader(t, ds, LoaderOptions{Width: 320, Height: 320, BatchSize: 2, Augment: DefaultAugment(), Seed: 1})
	b, err := l.Batch(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Images) != 2*3*320*320 || len(b.Targets[0]) == 0 {
		t.Fatalf("bccd batch: %d values, %d targets", len(b.Images), len(b.Targets[0]))
	}
}

func BenchmarkSample(b *testing.B) {
	ds := redSquares(b, 1, 640, 480)
	l := newLoader(b, ds, LoaderOptions{Width: 320, Height: 320, BatchSize: 1, Augment: DefaultAugment()})
	dst := make([]float32, 3*320*320)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := l.Sample(i, 0, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// countingMemory is a HostMemory that records what the loader does with
// its buffers.
type countingMemory struct {
	mu                    sync.Mutex
	allocs, reuses, freed int
	live                  map[*float32]bool
}

func (m *countingMemory) Alloc(n int) ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allocs++
	buf := make([]float32, n)
	m.live[&buf[0]] = true
	return buf, nil
}

func (m *countingMemory) Reusable(buf []float32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live[&buf[0]] {
		return errors.New("reusing a buffer that is not live")
	}
	m.reuses++
	return nil
}

func (m *countingMemory) Free(buf []float32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live[&buf[0]] {
		return errors.New("freeing a buffer twice")
	}
	delete(m.live, &buf[0])
	m.freed++
	return nil
}

// TestLoaderHostMemory builds batches in memory from a HostMemory (a GPU's
// page-locked buffers): the same batches as on the Go heap, buffers reused
// after Reusable, and every buffer freed by Close or by a release after it.
func TestLoaderHostMemory(t *testing.T) {
	ds := redSquares(t, 11, 48, 40)
	opts := LoaderOptions{Width: 32, Height: 32, BatchSize: 3, Shuffle: true, Seed: 42, Workers: 2, Prefetch: 1}
	want := collect(t, newLoader(t, ds, opts), 2, 0)
	mem := &countingMemory{live: map[*float32]bool{}}
	opts.Memory = mem
	l := newLoader(t, ds, opts)
	for epoch := 0; epoch < 2; epoch++ {
		got := collect(t, l, 2, 0)
		if !slices.Equal(got, want) {
			t.Fatalf("epoch %d: batches %x in host memory, %x on the heap", epoch, got, want)
		}
	}
	held, err := l.Batch(context.Background(), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !held.Pinned {
		t.Fatal("a batch in host memory is not marked Pinned")
	}
	if mem.reuses == 0 || mem.allocs > 6 {
		t.Fatalf("%d buffers allocated, %d reuses: want a few buffers used again", mem.allocs, mem.reuses)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	held.Release()
	if len(mem.live) != 0 || mem.freed != mem.allocs {
		t.Fatalf("%d of %d buffers freed after Close and the last release", mem.freed, mem.allocs)
	}
	if _, err := l.Batch(context.Background(), 2, 0); err == nil {
		t.Fatal("a closed loader built a batch")
	}
}
