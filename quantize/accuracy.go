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

// agreementImages is how many calibration images the AP-against-fp32
// comparison uses when no labelled images are given.
const agreementImages = 50

// agreement fills the int8 model's AP against the float model's own
// detections: the float model's detections above its default score
// threshold (after NMS) are the ground truth, the int8 model's detections
// down to evalScoreThreshold are scored against them with COCO AP. It needs
// no labels, so it works for any model an infer adapter decodes; models no
// adapter knows are skipped.
func (j *job) agreement(ctx context.Context, qPath string) error {
	var images []image.Image
	var names []string
	switch {
	case j.labels != nil:
		images = j.labels.images
		for _, im := range j.labels.ds.Images {
			names = append(names, im.Path)
		}
	case len(j.images) > 0:
		paths := j.images
		if len(paths) > agreementImages {
			picked := make([]string, agreementImages)
			for i := range picked {
				picked[i] = paths[i*len(paths)/agreementImages]
			}
			paths = picked
		}
		for _, p := range paths {
			img, err := dataset.DecodeFile(p)
			if err != nil {
				return fmt.Errorf("quantize: %s: %w", p, err)
			}
			images = append(images, img)
			names = append(names, p)
		}
	default:
		return nil
	}
	ref, err := infer.Open(j.opts.Model, infer.Options{Session: infer.SessionOptions{IntraOpThreads: j.opts.Threads}})
	if err != nil {
		return nil // no adapter decodes this model: nothing to compare
	}
	defer ref.Close()
	ap, gt, err := agreementAP(ctx, ref, qPath, images, names, j.opts.Threads)
	if err != nil {
		return err
	}
	if gt == 0 {
		j.rep.Notes = append(j.rep.Notes, fmt.Sprintf("AP against fp32 not computed: the float model detects nothing above its score threshold %.2g on %d images", ref.Describe().Defaults.ScoreThreshold, len(images)))
		return nil
	}
	j.rep.INT8.APvsFP32 = &ap
	j.logf("int8 AP %.2f against the fp32 model's %d detections on %d images", ap, gt, len(images))
	return nil
}

// agreementAP scores the detector at qPath against ref's detections on the
// images and returns COCO AP in percent and the number of reference boxes.
func agreementAP(ctx context.Context, ref *infer.Detector, qPath string, images []image.Image, names []string, threads int) (float64, int, error) {
	q, err := infer.Open(qPath, infer.Options{Session: infer.SessionOptions{IntraOpThreads: threads}})
	if err != nil {
		return 0, 0, fmt.Errorf("quantize: evaluate %s: %w", qPath, err)
	}
	defer q.Close()
	classes := ref.Describe().ClassNames
	ds := &dataset.Dataset{Name: "fp32 detections", Format: "coco"}
	for i, name := range classes {
		ds.Categories = append(ds.Categories, dataset.Category{ID: int64(i + 1), Name: name})
	}
	var dets []evaluate.Detection
	boxes := 0
	low := infer.Params{ScoreThreshold: evalScoreThreshold, MaxDetections: 100}
	for i, img := range images {
		want, err := ref.Detect(ctx, img, infer.Params{})
		if err != nil {
			return 0, 0, fmt.Errorf("quantize: fp32 detections on %s: %w", names[i], err)
		}
		b := img.Bounds()
		im := dataset.Image{ID: int64(i + 1), Path: names[i], Width: b.Dx(), Height: b.Dy()}
		for _, d := range want.Detections {
			if d.Class < 0 || d.Class >= len(classes) {
				continue
			}
			box := dataset.Box{X1: float64(d.Box[0]), Y1: float64(d.Box[1]), X2: float64(d.Box[2]), Y2: float64(d.Box[3])}
			im.Objects = append(im.Objects, dataset.Object{Box: box, Class: d.Class, Area: (box.X2 - box.X1) * (box.Y2 - box.Y1)})
			boxes++
		}
		ds.Images = append(ds.Images, im)
		got, err := q.Detect(ctx, img, low)
		if err != nil {
			return 0, 0, fmt.Errorf("quantize: int8 detections on %s: %w", names[i], err)
		}
		for _, d := range got.Detections {
			if d.Class < 0 || d.Class >= len(classes) {
				continue
			}
			box := dataset.Box{X1: float64(d.Box[0]), Y1: float64(d.Box[1]), X2: float64(d.Box[2]), Y2: float64(d.Box[3])}
			dets = append(dets, evaluate.FromBox(im.ID, int64(d.Class+1), box, float64(d.Score)))
		}
	}
	if boxes == 0 {
		return 0, 0, nil
	}
	m, err := evaluate.COCO(ds, dets)
	if err != nil {
		return 0, 0, fmt.Errorf("quantize: AP against fp32: %w", err)
	}
	return 100 * m.AP, boxes, nil
}
