package quantize

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/onnxgraph"
)

// ErrNoImages reports a calibration folder without any image.
var ErrNoImages = errors.New("quantize: calibration folder has no images")

// imageExts are the extensions calibration picks up (case-insensitive).
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

// ListImages returns the .jpg/.jpeg/.png files under dir (recursively, so a
// COCO or VOC dataset folder works as is), sorted by path. When there are
// more than limit (> 0), an evenly spaced subset of limit images is returned
// so the choice is deterministic and spans the whole folder.
func ListImages(dir string, limit int) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("quantize: calibration path %q is a file, want a folder of images", dir)
	}
	var paths []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && imageExts[strings.ToLower(filepath.Ext(path))] {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration folder %q: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: %q has no .jpg, .jpeg or .png files", ErrNoImages, dir)
	}
	sort.Strings(paths)
	if limit > 0 && len(paths) > limit {
		picked := make([]string, limit)
		for i := range picked {
			picked[i] = paths[i*len(paths)/limit]
		}
		paths = picked
	}
	return paths, nil
}

// LoadInput decodes an image file and preprocesses it into a new tensor.
func LoadInput(path string, pre infer.Preprocess) ([]float32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration image: %w", err)
	}
	img, err := infer.DecodeImage(data)
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration image %s: %w", path, err)
	}
	x := make([]float32, pre.TensorLen())
	if _, err := pre.Apply(img, x); err != nil {
		return nil, fmt.Errorf("quantize: calibration image %s: %w", path, err)
	}
	return x, nil
}

// Calibration holds the value histograms of a model's tensors.
type Calibration struct {
	Histograms map[string]*Histogram
	Images     int
}

// Ranges turns every histogram into a range with a method.
func (c *Calibration) Ranges(m Method, percentile float64, act Activations) (map[string]Range, error) {
	out := make(map[string]Range, len(c.Histograms))
	for name, h := range c.Histograms {
		if h.Empty() {
			return nil, fmt.Errorf("quantize: tensor %q saw no finite value during calibration", name)
		}
		r, err := RangeFor(h, m, percentile, act == Int8)
		if err != nil {
			return nil, err
		}
		out[name] = r
	}
	return out, nil
}

// CalibrateOptions configure a calibration run.
type CalibrateOptions struct {
	Preprocess infer.Preprocess
	Threads    int
	Bins       int
	// Progress, when set, is called after each image.
	Progress func(done, total int)
	// Keep, when > 0, keeps the first Keep preprocessed inputs in
	// Calibration's caller-visible slice for later evaluation.
	Keep int
}

// Calibrate runs the prepared float model over the images with the planned
// tensors exposed as outputs and collects a histogram per tensor. Memory is
// bounded by the number of tensors times the bins, whatever the number of
// images. It returns the calibration and the first opts.Keep inputs.
func Calibrate(ctx context.Context, prep *Prepared, tensors []string, images []string, opts CalibrateOptions) (*Calibration, [][]float32, error) {
	if len(images) == 0 {
		return nil, nil, ErrNoImages
	}
	var exposed []string
	feedsInput := false
	for _, t := range tensors {
		if t == prep.Input {
			feedsInput = true
			continue
		}
		exposed = append(exposed, t)
	}
	m, err := onnxgraph.ExposeOutputs(prep.Model, exposed, onnxgraph.Float32)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: %w", err)
	}
	shape := inputShape(prep.InputShape, opts.Preprocess)
	r, err := newRunner(m, prep.Input, shape, exposed, runnerOptions{Threads: opts.Threads})
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	cal := &Calibration{Histograms: make(map[string]*Histogram, len(tensors))}
	for _, t := range tensors {
		cal.Histograms[t] = NewHistogram(opts.Bins)
	}
	var kept [][]float32
	for i, path := range images {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("quantize: calibration: %w", err)
		}
		x, err := LoadInput(path, opts.Preprocess)
		if err != nil {
			return nil, nil, err
		}
		outs, err := r.run(x)
		if err != nil {
			return nil, nil, fmt.Errorf("quantize: calibration image %s: %w", path, err)
		}
		for j, name := range exposed {
			cal.Histograms[name].Add(outs[j])
		}
		if feedsInput {
			cal.Histograms[prep.Input].Add(x)
		}
		if len(kept) < opts.Keep {
			kept = append(kept, x)
		}
		cal.Images++
		if opts.Progress != nil {
			opts.Progress(i+1, len(images))
		}
	}
	return cal, kept, nil
}

// inputShape fills the model's declared input shape with batch 1 and the
// preprocessing's size where the model leaves them open.
func inputShape(declared []int64, pre infer.Preprocess) []int64 {
	s := append([]int64(nil), declared...)
	fill := []int64{1, 3, int64(pre.Height), int64(pre.Width)}
	for i := range s {
		if s[i] <= 0 {
			s[i] = fill[i]
		}
	}
	return s
}
