// Package synth generates the synthetic detection dataset gidedge uses as
// its embedded default for demos and tests: JPEG images with COCO
// annotations, a pure function of the seed.
//
// The set is meant to separate model sizes. Six classes are told apart by
// texture (striped disc, dotted disc, checkered square) or fine shape (ring,
// star, triangle); objects range from 8 pixels to half the image (drawn
// log-uniformly, so small ones are common); plain discs, squares, hexagons,
// ellipses, lines and speckled blobs are clutter that is not an object;
// shapes occlude each other by up to 40% and may hang over the border;
// backgrounds are gradients, smooth noise or faint textures; every image
// gets pixel noise and JPEG compression at a random quality.
//
// Layout written by Generate (the one dataset.Load reads):
//
//	DIR/images/000001.jpg …
//	DIR/annotations/instances_train.json, instances_val.json, instances_test.json
//	DIR/synth.json   the options, classes and counts that made the set
//
// Errors are lowercase, start with "synth:" and wrap their cause with %w.
// The output folder is replaced as a whole: the set is built in a temporary
// sibling folder and renamed into place, so a crash never leaves half a
// dataset.
package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/gidedge/gidedge/dataset"
)

// ErrNotEmpty reports an output folder that holds something other than a
// previous synthetic set.
var ErrNotEmpty = errors.New("synth: output folder is not empty")

// Options say what to generate. Images is required; zero values elsewhere
// take the defaults noted.
type Options struct {
	Images            int     // number of images
	Size              int     // square image side in pixels (default 320)
	Seed              uint64  // everything is a pure function of it
	ValFrac, TestFrac float64 // fractions of images in val and test (rest: train)
	// Preset is the difficulty (default PresetBenchmark; see Preset).
	Preset     Preset
	MinObjects int // objects per image, at least (default: the preset's, 1 for benchmark, 2 for demo)
	MaxObjects int // objects per image, at most (default: the preset's, 8 for benchmark, 6 for demo)
	Workers    int // rendering goroutines (default GOMAXPROCS)
	// Force replaces an output folder that holds other files; a previous
	// synthetic set (it has synth.json) is always replaced.
	Force bool
}

func (o *Options) defaults() (recipe, error) {
	rc, err := o.Preset.recipe()
	if err != nil {
		return rc, err
	}
	if o.Preset == "" {
		o.Preset = PresetBenchmark
	}
	if o.Size == 0 {
		o.Size = 320
	}
	if o.MinObjects == 0 {
		o.MinObjects = rc.minObjects
	}
	if o.MaxObjects == 0 {
		o.MaxObjects = max(rc.maxObjects, o.MinObjects)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case o.Images <= 0 || o.Images > 1_000_000:
		return rc, fmt.Errorf("synth: %d images, want 1..1000000", o.Images)
	case o.Size < 32 || o.Size > 4096:
		return rc, fmt.Errorf("synth: image size %d, want 32..4096", o.Size)
	case o.MinObjects < 0 || o.MaxObjects < o.MinObjects || o.MaxObjects > 100:
		return rc, fmt.Errorf("synth: objects per image %d..%d, want 0 <= min <= max <= 100", o.MinObjects, o.MaxObjects)
	case !(o.ValFrac >= 0 && o.TestFrac >= 0 && o.ValFrac+o.TestFrac <= 1):
		return rc, fmt.Errorf("synth: val fraction %v and test fraction %v, want each >= 0 and together <= 1", o.ValFrac, o.TestFrac)
	}
	return rc, nil
}

// Summary says what Generate wrote.
type Summary struct {
	Dir              string         `json:"-"`
	Images           int            `json:"images"`
	Objects          int            `json:"objects"`
	Train, Val, Test int            `json:"-"`
	Splits           map[string]int `json:"splits"`
	PerClass         map[string]int `json:"per_class"`
	Preset           Preset         `json:"-"`
	Classes          []string       `json:"-"` // the preset's, in class-index order
	Elapsed          time.Duration  `json:"-"`
}

// manifest is synth.json: enough to regenerate the set and to recognise it.
type manifest struct {
	Generator string `json:"generator"`
	// Preset is left out for the benchmark preset, so its synth.json
	// keeps the bytes it had before presets existed.
	Preset   Preset   `json:"preset,omitempty"`
	Seed     uint64   `json:"seed"`
	Size     int      `json:"size"`
	Images   int      `json:"images"`
	ValFrac  float64  `json:"val_frac"`
	TestFrac float64  `json:"test_frac"`
	Objects  [2]int   `json:"objects_per_image"`
	Classes  []string `json:"classes"`
	Counts   Summary  `json:"counts"`
}

// Splits assigns every image index to "train", "val" or "test": a seeded
// shuffle, then the first round(TestFrac*N) go to test and the next
// round(ValFrac*N) to val.
func Splits(n int, seed uint64, valFrac, testFrac float64) []string {
	r := newRand(seed, 0x73706c6974)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(unit(r) * float64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	nTest := int(math.Round(testFrac * float64(n)))
	nVal := min(n-nTest, int(math.Round(valFrac*float64(n))))
	out := make([]string, n)
	for k, i := range perm {
		switch {
		case k < nTest:
			out[i] = "test"
		case k < nTest+nVal:
			out[i] = "val"
		default:
			out[i] = "train"
		}
	}
	return out
}

// Generate writes a synthetic set to dir (see the package comment).
func Generate(ctx context.Context, dir string, opts Options) (*Summary, error) {
	start := time.Now()
	rc, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	classes, err := opts.Preset.Classes()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	if err := checkOutput(dir, opts.Force); err != nil {
		return nil, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	for _, sub := range []string{"images", "annotations"} {
		if err := os.Mkdir(filepath.Join(tmp, sub), 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}

	images, err := renderAll(ctx, tmp, opts, rc)
	if err != nil {
		return nil, err
	}

	splits := Splits(opts.Images, opts.Seed, opts.ValFrac, opts.TestFrac)
	cats := make([]dataset.Category, len(classes))
	for i, c := range classes {
		cats[i] = dataset.Category{ID: int64(i + 1), Name: c}
	}
	sum := &Summary{Dir: dir, Images: opts.Images, Splits: map[string]int{}, PerClass: map[string]int{}, Preset: opts.Preset, Classes: classes}
	for _, name := range []string{"train", "val", "test"} {
		ds := &dataset.Dataset{Name: "gidedge synthetic shapes", Root: tmp, Split: name, Categories: cats}
		for i, im := range images {
			if splits[i] == name {
				ds.Images = append(ds.Images, im)
			}
		}
		sum.Splits[name] = len(ds.Images)
		p := filepath.Join(tmp, "annotations", "instances_"+name+".json")
		if err := dataset.WriteCOCO(p, ds); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}
	for _, im := range images {
		for _, o := range im.Objects {
			sum.Objects++
			sum.PerClass[classes[o.Class]]++
		}
	}
	sum.Train, sum.Val, sum.Test = sum.Splits["train"], sum.Splits["val"], sum.Splits["test"]
	preset := opts.Preset
	if preset == PresetBenchmark {
		preset = ""
	}
	m := manifest{
		Generator: "gidedge data synth", Preset: preset, Seed: opts.Seed, Size: opts.Size, Images: opts.Images,
		ValFrac: opts.ValFrac, TestFrac: opts.TestFrac, Objects: [2]int{opts.MinObjects, opts.MaxObjects},
		Classes: classes, Counts: *sum,
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	if err := writeSynced(filepath.Join(tmp, "synth.json"), append(data, '\n')); err != nil {
		return nil, err
	}
	for _, sub := range []string{"images", "annotations", ""} {
		if err := syncDir(filepath.Join(tmp, sub)); err != nil {
			return nil, err
		}
	}
	if err := replaceDir(tmp, dir); err != nil {
		return nil, err
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// checkOutput refuses to clobber a folder with unrelated content.
func checkOutput(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if len(entries) == 0 || force {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "synth.json")); err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s has %d entries and no synth.json (use --force to replace it)", ErrNotEmpty, dir, len(entries))
}

// renderAll renders and writes every image in parallel; the result does not
// depend on the worker count because each image has its own generator.
func renderAll(ctx context.Context, root string, opts Options, rc recipe) ([]dataset.Image, error) {
	images := make([]dataset.Image, opts.Images)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for i := range next {
				s := rc.render(opts.Seed, i, opts.Size, opts.MinObjects, opts.MaxObjects)
				id := int64(i + 1)
				path := filepath.Join(root, "images", fmt.Sprintf("%06d.jpg", id))
				buf.Reset()
				if err := jpeg.Encode(&buf, s.Image, &jpeg.Options{Quality: s.Quality}); err != nil {
					fail(fmt.Errorf("synth: encode %s: %w", path, err))
					continue
				}
				if err := writeSynced(path, buf.Bytes()); err != nil {
					fail(err)
					continue
				}
				images[i] = dataset.Image{ID: id, Path: path, Width: opts.Size, Height: opts.Size, Objects: s.Objects}
			}
		}()
	}
feed:
	for i := range opts.Images {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	return images, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("synth: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("synth: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("synth: sync %s: %w", dir, err)
	}
	return nil
}

// replaceDir moves the finished set into place. An existing folder is moved
// aside first and removed only after the new one is in place.
func replaceDir(tmp, dir string) error {
	var old string
	if _, err := os.Stat(dir); err == nil {
		o, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".old-")
		if err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		old = filepath.Join(o, "set")
		if err := os.Rename(dir, old); err != nil {
			os.Remove(o)
			return fmt.Errorf("synth: move %s aside: %w", dir, err)
		}
		defer os.RemoveAll(o)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("synth: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

// ClassCounts orders a Summary's per-class counts by class index.
func (s *Summary) ClassCounts() []int {
	out := make([]int, len(s.Classes))
	for i, c := range s.Classes {
		out[i] = s.PerClass[c]
	}
	return out
}
