package quantize

import (
	"context"
	"fmt"
	"image"
	"io"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/infer"
)

// evalScoreThreshold keeps low-scoring boxes, as COCO evaluation expects.
const evalScoreThreshold = 0.01

// labelled is a labelled evaluation set, decoded once and kept in memory so
// the fallback search can score many candidate models quickly.
type labelled struct {
	ds     *dataset.Dataset
	images []image.Image
}

// loadLabelled loads a VOC or COCO split, reports what it read to log (nil:
// nowhere) and decodes its images (the first limit when limit > 0).
func loadLabelled(dir, split string, limit int, log io.Writer) (*labelled, error) {
	ds, err := dataset.Load(dir, split)
	if err != nil {
		return nil, fmt.Errorf("quantize: labels: %w", err)
	}
	if log != nil {
		if err := ds.WriteReport(log, "quantize: "); err != nil {
			return nil, err
		}
	}
	if limit > 0 && len(ds.Images) > limit {
		ds.Images = ds.Images[:limit]
	}
	if len(ds.Images) == 0 {
		return nil, fmt.Errorf("quantize: labels %s (split %q) have no images", dir, split)
	}
	l := &labelled{ds: ds, images: make([]image.Image, len(ds.Images))}
	for i, im := range ds.Images {
		img, err := dataset.DecodeFile(im.Path)
		if err != nil {
			return nil, fmt.Errorf("quantize: labels: %w", err)
		}
		l.images[i] = img
	}
	return l, nil
}

// categoryIDs maps each class index of the detector to the dataset category
// of the same name (-1 when the dataset has none).
func (l *labelled) categoryIDs(classNames []string) ([]int64, error) {
	ids := make([]int64, len(classNames))
	matched := 0
	for i, name := range classNames {
		ids[i] = -1
		if k, ok := l.ds.ClassIndex(name); ok {
			ids[i] = l.ds.Categories[k].ID
			matched++
		}
	}
	if matched == 0 {
		return nil, fmt.Errorf("quantize: labels in %s name none of the model's %d classes (first %q, dataset's first %q)",
			l.ds.Root, len(classNames), first(classNames), first(l.ds.ClassNames()))
	}
	return ids, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// averagePrecision runs a detector model over the labelled images and
// returns COCO AP and AP50 in percent.
func (l *labelled) averagePrecision(ctx context.Context, modelPath string, threads int) (ap, ap50 float64, err error) {
	d, err := infer.Open(modelPath, infer.Options{Session: infer.SessionOptions{IntraOpThreads: threads}})
	if err != nil {
		return 0, 0, fmt.Errorf("quantize: evaluate %s: %w", modelPath, err)
	}
	defer d.Close()
	ids, err := l.categoryIDs(d.Describe().ClassNames)
	if err != nil {
		return 0, 0, err
	}
	var dets []evaluate.Detection
	params := infer.Params{ScoreThreshold: evalScoreThreshold, MaxDetections: 100}
	for i, img := range l.images {
		res, err := d.Detect(ctx, img, params)
		if err != nil {
			return 0, 0, fmt.Errorf("quantize: evaluate %s on %s: %w", modelPath, l.ds.Images[i].Path, err)
		}
		for _, det := range res.Detections {
			if det.Class < 0 || det.Class >= len(ids) || ids[det.Class] < 0 {
				continue
			}
			box := dataset.Box{X1: float64(det.Box[0]), Y1: float64(det.Box[1]), X2: float64(det.Box[2]), Y2: float64(det.Box[3])}
			dets = append(dets, evaluate.FromBox(l.ds.Images[i].ID, ids[det.Class], box, float64(det.Score)))
		}
	}
	m, err := evaluate.COCO(l.ds, dets)
	if err != nil {
		return 0, 0, fmt.Errorf("quantize: evaluate %s: %w", modelPath, err)
	}
	return 100 * m.AP, 100 * m.AP50, nil
}
