package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/models"
)

// LoaderOptions are the loader settings that feed a detector its input as
// its config says: size×size, the config's resize mode, pad value and
// normalisation, no shuffling and no augmentation.
func LoaderOptions(cfg models.Config, size, batch int) dataset.LoaderOptions {
	return dataset.LoaderOptions{
		Width: size, Height: size, BatchSize: batch,
		Resize: cfg.Input.Resize, PadValue: cfg.Input.PadValue,
		PixelScale: 1.0 / 255, Mean: cfg.Input.Mean, Std: cfg.Input.Std,
	}
}

// EvalOptions configures Detect and Evaluate.
type EvalOptions struct {
	// ImgSize is the input size (default: the config's input.size).
	ImgSize int
	// Batch is the number of images per forward pass (default 8).
	Batch int
	// Workers is the number of decoding goroutines (default: loader's).
	Workers int
}

// CheckClasses reports whether a dataset has the detector's classes in the
// detector's order.
func CheckClasses(d *models.Detector, ds *dataset.Dataset) error {
	names := ds.ClassNames()
	if len(names) != d.Config.NumClasses {
		return fmt.Errorf("train: dataset %s (split %q) has %d classes %v, the model %q has %d %v", ds.Root, ds.Split, len(names), names, d.Config.Name, d.Config.NumClasses, d.Config.ClassNames)
	}
	if len(d.Config.ClassNames) > 0 && !slices.Equal(names, d.Config.ClassNames) {
		return fmt.Errorf("train: dataset %s (split %q) has classes %v, the model %q was trained on %v", ds.Root, ds.Split, names, d.Config.Name, d.Config.ClassNames)
	}
	return nil
}

// Predict runs the detector over every image of ds and returns, per image
// in dataset order, its detections with boxes in original-image pixels.
// ds only needs Categories and Images (ID, Path, Width, Height); the
// objects are not used, so a Dataset built from loose image files works.
func Predict(ctx context.Context, d *models.Detector, ds *dataset.Dataset, opt EvalOptions) ([][]models.Detection, error) {
	if err := CheckClasses(d, ds); err != nil {
		return nil, err
	}
	if opt.ImgSize <= 0 {
		opt.ImgSize = d.Config.Input.Size
	}
	if opt.Batch <= 0 {
		opt.Batch = 8
	}
	lo := LoaderOptions(d.Config, opt.ImgSize, opt.Batch)
	lo.Workers = opt.Workers
	loader, err := dataset.NewLoader(ds, lo)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	it := loader.Iterate(ctx, 0, 0)
	defer it.Close()
	out := make([][]models.Detection, len(ds.Images))
	for {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("train: detect on %s: %w", ds.Root, err)
		}
		var perImage [][]models.Detection
		engine.NoGrad(func() {
			x := engine.FromHost(b.Images, b.N, 3, b.H, b.W)
			perImage = d.Postprocess(d.Forward(x, false))
		})
		for i, list := range perImage {
			kept := make([]models.Detection, 0, len(list))
			for _, det := range list {
				src := b.Transforms[i].ToSource(dataset.Box{X1: float64(det.Box[0]), Y1: float64(det.Box[1]), X2: float64(det.Box[2]), Y2: float64(det.Box[3])})
				if src.Area() <= 0 {
					continue
				}
				det.Box = [4]float32{float32(src.X1), float32(src.Y1), float32(src.X2), float32(src.Y2)}
				kept = append(kept, det)
			}
			out[b.Indices[i]] = kept
		}
		b.Release()
	}
}

// Detect runs the detector over every image of ds and returns its
// detections in COCO form (original-image pixels, dataset category ids).
func Detect(ctx context.Context, d *models.Detector, ds *dataset.Dataset, opt EvalOptions) ([]evaluate.Detection, error) {
	perImage, err := Predict(ctx, d, ds, opt)
	if err != nil {
		return nil, err
	}
	var dets []evaluate.Detection
	for i, list := range perImage {
		for _, det := range list {
			b := dataset.Box{X1: float64(det.Box[0]), Y1: float64(det.Box[1]), X2: float64(det.Box[2]), Y2: float64(det.Box[3])}
			dets = append(dets, evaluate.FromBox(ds.Images[i].ID, ds.Categories[det.Class].ID, b, float64(det.Score)))
		}
	}
	return dets, nil
}

// Evaluate runs Detect and scores the detections with COCO metrics.
func Evaluate(ctx context.Context, d *models.Detector, ds *dataset.Dataset, opt EvalOptions) (*evaluate.Metrics, []evaluate.Detection, error) {
	dets, err := Detect(ctx, d, ds, opt)
	if err != nil {
		return nil, nil, err
	}
	m, err := evaluate.COCO(ds, dets)
	if err != nil {
		return nil, nil, fmt.Errorf("train: evaluate: %w", err)
	}
	return m, dets, nil
}
