// Package inproc is benchlat's in-process target: a detector from package
// infer run in this process (decode, preprocess, ONNX Runtime, decode and
// NMS), and its COCO accuracy on a labelled dataset.
//
// Errors start with "inproc:" and name the model or image at fault.
package inproc

import (
	"context"
	"fmt"
	"os"

	"github.com/gidedge/gidedge/benchlat"
	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/infer"
)

// Target runs a detector in this process.
type Target struct {
	det *infer.Detector
}

var _ benchlat.Target = (*Target)(nil)

// Open loads model with the given detector options.
func Open(model string, opts infer.Options) (*Target, error) {
	det, err := infer.Open(model, opts)
	if err != nil {
		return nil, fmt.Errorf("inproc: %w", err)
	}
	return &Target{det: det}, nil
}

// Describe says what the detector runs.
func (t *Target) Describe() infer.Description { return t.det.Describe() }

// Name is the model's file name without extension.
func (t *Target) Name() string { return t.det.Describe().Name }

// Mode is "in-process".
func (t *Target) Mode() string { return "in-process" }

// Detect decodes the image and runs the whole detection pipeline, as the
// server does for one request (infer.Detector.DetectEncoded), without HTTP.
func (t *Target) Detect(ctx context.Context, image []byte) (benchlat.Sample, error) {
	res, err := t.det.DetectEncoded(ctx, image, infer.Params{})
	if err != nil {
		return benchlat.Sample{}, err
	}
	return benchlat.Sample{Session: res.Timing.Infer}, nil
}

// RSS is this process's resident memory.
func (t *Target) RSS(context.Context) (int64, error) { return benchlat.SelfRSS() }

// Close frees the detector.
func (t *Target) Close() error { return t.det.Close() }

// EvalParams are the post-processing settings for accuracy: a low score
// threshold and 100 detections per image, as COCO evaluation expects.
var EvalParams = infer.Params{ScoreThreshold: 0.05, MaxDetections: 100}

// Accuracy runs the detector on every image of ds and scores the result
// with COCO mAP. Model classes map to dataset categories by name.
func Accuracy(ctx context.Context, t *Target, ds *dataset.Dataset) (*evaluate.Metrics, error) {
	names := t.det.Describe().ClassNames
	catOf := make([]int64, len(names))
	matched := 0
	for i, n := range names {
		catOf[i] = -1
		if idx, ok := ds.ClassIndex(n); ok {
			catOf[i] = ds.Categories[idx].ID
			matched++
		}
	}
	if matched == 0 {
		return nil, fmt.Errorf("inproc: model %s classes (%d, first %q) share no name with dataset %s categories; mAP needs the same class names",
			t.Name(), len(names), names[0], ds.Name)
	}
	var dets []evaluate.Detection
	for _, im := range ds.Images {
		data, err := os.ReadFile(im.Path)
		if err != nil {
			return nil, fmt.Errorf("inproc: %w", err)
		}
		res, err := t.det.DetectEncoded(ctx, data, EvalParams)
		if err != nil {
			return nil, fmt.Errorf("inproc: image %s: %w", im.Path, err)
		}
		for _, d := range res.Detections {
			if cat := catOf[d.Class]; cat >= 0 {
				dets = append(dets, evaluate.FromBox(im.ID, cat,
					dataset.Box{X1: float64(d.Box[0]), Y1: float64(d.Box[1]), X2: float64(d.Box[2]), Y2: float64(d.Box[3])}, float64(d.Score)))
			}
		}
	}
	m, err := evaluate.COCO(ds, dets)
	if err != nil {
		return nil, fmt.Errorf("inproc: evaluate %s: %w", t.Name(), err)
	}
	return m, nil
}
